module containers-from-scratch

// go 1.24 is what Debian 13 ships as golang-go, so a fresh Debian or the
// workshop VM builds the course without downloading a toolchain.
go 1.24.0

require (
	github.com/stretchr/testify v1.12.1
	golang.org/x/sys v0.40.0
)

require go.yaml.in/yaml/v3 v3.0.5
