package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// debianSources is this kind of machine's own /etc/apt/sources.list.d/debian.sources,
// with a mirror of its own.
const debianSources = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.lan/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.lan/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`

// TestDebianURI checks vm/apt-sources.sh's debian_uri, with which .ci/run
// takes bookworm-backports from the mirror the machine already uses: apt,
// pointed at sources files of the test's own, reads them in both formats,
// and the URI is the one of the entry for bookworm's main, or nothing.
func TestDebianURI(t *testing.T) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("debian_uri asks Debian's apt-get, which this machine lacks")
	}
	for _, c := range []struct {
		name  string
		files map[string]string // under /etc/apt
		want  string
	}{
		{"deb822, as on this kind of machine", map[string]string{"sources.list.d/debian.sources": debianSources},
			"http://mirror.lan/debian/"},
		{"one-line, with options, after a CD-ROM, a source entry, security and another suite", map[string]string{"sources.list": `
# deb http://commented.out/debian bookworm main
deb cdrom:[Debian GNU/Linux 12.0.0 _Bookworm_ - Official amd64 DVD Binary-1 20230610-10:23]/ bookworm contrib main
deb-src http://sources.only/debian bookworm main
deb http://security.debian.org/debian-security bookworm-security main
deb http://proxy.lan:3142/debian trixie main
deb [ arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg ] http://proxy.lan:3142/debian bookworm main contrib non-free-firmware
`}, "http://proxy.lan:3142/debian/"},
		{"one-line in sources.list.d", map[string]string{"sources.list.d/mirror.list": "deb https://mirror.lan/debian/ bookworm main\n"},
			"https://mirror.lan/debian/"},
		{"a disabled entry and one without main come first", map[string]string{
			"sources.list.d/a-old.sources":     "Types: deb\nURIs: http://old.lan/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n",
			"sources.list.d/b-contrib.sources": "Types: deb\nURIs: http://contrib.lan/debian\nSuites: bookworm\nComponents: contrib\n",
			"sources.list.d/debian.sources":    debianSources,
		}, "http://mirror.lan/debian/"},
		{"apt's mirror method, as in Debian's cloud images", map[string]string{"sources.list": "deb mirror+file:/etc/apt/mirrors/debian.list bookworm main\n"},
			"mirror+file:/etc/apt/mirrors/debian.list/"},
		{"only trixie", map[string]string{"sources.list.d/debian.sources": strings.ReplaceAll(debianSources, "bookworm", "trixie")}, ""},
		{"no sources", map[string]string{}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			etc := t.TempDir()
			require.NoError(t, os.Mkdir(filepath.Join(etc, "sources.list.d"), 0o755))
			for name, text := range c.files {
				require.NoError(t, os.WriteFile(filepath.Join(etc, name), []byte(text), 0o644))
			}
			out, err := exec.Command("bash", "-c", `set -euo pipefail; . ./apt-sources.sh; debian_uri "$@"`, "test", "bookworm",
				"-o", "Dir::Etc="+etc, "-o", "Dir::Etc::SourceList=sources.list", "-o", "Dir::Etc::SourceParts=sources.list.d",
				"-o", "Dir::State::Lists="+t.TempDir()).CombinedOutput()
			require.NoError(t, err, "%s", out)
			assert.Equal(t, c.want, strings.TrimSuffix(string(out), "\n"))
		})
	}
}

// TestCIBackportsFromTheMachinesMirror checks that .ci/run writes the
// bookworm-backports source with the URI debian_uri finds, and Debian's own
// mirror only when it finds none.
func TestCIBackportsFromTheMachinesMirror(t *testing.T) {
	data, err := os.ReadFile("../.ci/run")
	require.NoError(t, err)
	lines := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		lines[strings.TrimSpace(line)] = true
	}
	for _, line := range []string{
		". vm/apt-sources.sh",
		"mirror=$(debian_uri bookworm)",
		"URIs: ${mirror:-http://deb.debian.org/debian}",
		"Suites: bookworm-backports",
	} {
		assert.True(t, lines[line], ".ci/run lacks the line %q", line)
	}
	assert.Equal(t, 1, strings.Count(string(data), "deb.debian.org"), "Debian's mirror only as the fallback")
}
