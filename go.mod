module containers-from-scratch

// go 1.24 is what Debian 13 ships as golang-go, so a fresh Debian or the
// workshop VM builds the course without downloading a toolchain.
go 1.24.0

require (
	github.com/stretchr/testify v1.12.1
	// step09-net sets up its network with netlink, the kernel's interface
	// that ip uses. vishvananda/netlink is the package that Docker and most
	// Go runtimes use for it: hand-packed netlink messages would bury the
	// lesson.
	github.com/vishvananda/netlink v1.3.1
	golang.org/x/sys v0.40.0
)

require (
	github.com/vishvananda/netns v0.0.5 // indirect
	go.yaml.in/yaml/v3 v3.0.5
)
