package steptest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The checks below treat the root filesystem as an attacker's image: what
// it holds (a symbolic link, a "..", a link through /proc) must never lead
// run's setup out of it, onto the host's files.

// hostileImage makes a copy of the step's root filesystem for one test
// (see copyRootfs), and a directory of the host's, owned by Owner, that the test aims the
// image's links at: the folder of the user whose image it is, where a
// naive setup would write. The image holds the same path, so that a link
// resolved inside it leads somewhere.
func hostileImage(t *testing.T, s *Step) (image, host string) {
	t.Helper()
	dir := t.TempDir()
	image, host = filepath.Join(dir, "image"), filepath.Join(dir, "host")
	copyRootfs(t, s, image)
	require.NoError(t, os.Mkdir(host, 0o755))
	require.NoError(t, os.MkdirAll(image+host, 0o755))
	if s.UsesUserns {
		require.NoError(t, chownTree(host, Owner, Owner))
		require.NoError(t, chownTree(filepath.Join(image, strings.Split(host, "/")[1]), Owner, Owner))
	}
	s.reachable(host)
	return image, host
}

// copyRootfs copies the step's root filesystem to dst for one test: with
// hard links where dst is on the same file system (fast, and no test writes
// to a file the copy shares), whole files where it is not (on Debian 13 /tmp
// is a tmpfs of its own, and the root filesystem is under /var/tmp).
func copyRootfs(t *testing.T, s *Step, dst string) {
	t.Helper()
	if exec.Command("cp", "-al", s.Rootfs, dst).Run() == nil {
		return
	}
	require.NoError(t, os.RemoveAll(dst))
	out, err := exec.Command("cp", "-a", s.Rootfs, dst).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// link replaces name in the image by a symbolic link to target.
func link(t *testing.T, image, name, target string) {
	t.Helper()
	require.NoError(t, os.RemoveAll(filepath.Join(image, name)))
	require.NoError(t, os.Symlink(target, filepath.Join(image, name)))
}

// climbOut is a relative link target that climbs out of any directory the
// image is in, then down to path: resolved on the host, it is path.
func climbOut(path string) string {
	return strings.Repeat("../", 32) + strings.TrimPrefix(path, "/")
}

// ProcLinkStaysInTheImage checks that an image whose /proc is a symbolic
// link, absolute or climbing out with "..", gets its procfs where the link
// leads inside the image, as the container itself would resolve it, and
// never on the host's directory of the same name.
func ProcLinkStaysInTheImage(t *testing.T, s *Step) {
	RequireRoot(t)
	for name, target := range map[string]func(host string) string{
		"absolute":      func(host string) string { return host },
		"climbing out":  climbOut,
		"through a dir": func(host string) string { return "/etc/../" + host },
	} {
		t.Run(name, func(t *testing.T) {
			image, host := hostileImage(t, s)
			link(t, image, "proc", target(host))
			r := s.Exec(t, s.RunIn(image, "sh", "-c", "cat /proc/1/comm; ls /proc/self/ns")...)
			assert.Equal(t, 0, r.Status, r.Stderr)
			assert.True(t, strings.HasPrefix(r.Stdout, "sh\n"), "the container's /proc, through the link: %q", r.Stdout)
			entries, err := os.ReadDir(host)
			require.NoError(t, err)
			assert.Empty(t, entries, "the host's directory changed")
		})
	}
}

// DevLinksStayInTheImage checks that the host's device files, which a
// container in a user namespace gets bound onto its /dev before
// pivot_root, go where the image's links lead inside it: an image whose
// /dev, or /dev/tty, is a link out of it makes nothing in the host's
// directory it names, and a link through /proc/self/root, which leads to
// the host's / until pivot_root, is refused in one line.
func DevLinksStayInTheImage(t *testing.T, s *Step) {
	RequireRoot(t)
	works := "test -c /dev/null && echo x >/dev/null && test -c /dev/tty && test -c /dev/urandom && echo devices"
	for _, c := range []struct {
		name, link string
		target     func(host string) string
		refused    string // the line, when run refuses; "" when the container starts
	}{
		{"dev absolute", "dev", func(host string) string { return host }, ""},
		{"dev climbing out", "dev", climbOut, ""},
		{"dev through /proc/self/root", "dev", func(host string) string { return "/proc/self/root" + host }, "make /dev/null: too many levels of symbolic links"},
		{"dev/tty absolute", "dev/tty", func(host string) string { return host + "/tty" }, ""},
		{"dev/tty climbing out", "dev/tty", func(host string) string { return climbOut(host + "/tty") }, ""},
		{"dev/tty through /proc/self/root", "dev/tty", func(host string) string { return "/proc/self/root" + host + "/tty" }, "make /dev/tty: too many levels of symbolic links"},
	} {
		t.Run(c.name, func(t *testing.T) {
			image, host := hostileImage(t, s)
			link(t, image, c.link, c.target(host))
			r := s.Exec(t, s.RunIn(image, "sh", "-c", works)...)
			if c.refused == "" {
				assert.Equal(t, 0, r.Status, r.Stderr)
				assert.Equal(t, "devices\n", r.Stdout)
			} else {
				assert.Equal(t, 1, r.Status, r.Stderr)
				OneLine(t, r.Stderr)
				assert.Contains(t, r.Stderr, c.refused)
				assert.Empty(t, r.Stdout, "the command ran")
			}
			entries, err := os.ReadDir(host)
			require.NoError(t, err)
			assert.Empty(t, entries, "the setup made files in the host's directory that the image's link names")
		})
	}
}

// RacedLookupIsTriedAgain checks that the setup tries a path in the image
// again when the kernel answers EAGAIN, as openat2 may whenever a ".." is
// walked while anything on the machine is renamed or mounted: on a busy
// machine, a container must not fail for that. strace makes the first
// lookups fail so.
func RacedLookupIsTriedAgain(t *testing.T, s *Step) {
	RequireRoot(t)
	cmd, _ := s.straced(t, "openat2:error=EAGAIN:when=1..3", s.RunArgs("cat", "/proc/1/comm")...)
	r := Finish(t, cmd)
	assert.Equal(t, 0, r.Status, r.Stderr)
	assert.Equal(t, "cat\n", r.Stdout)
}
