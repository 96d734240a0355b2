package steptest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// --- step10: user namespace ---

// hostIDs returns the uid and gid lines of process pid's status, as the
// host sees them: real, effective, saved and file system ids.
func hostIDs(t *testing.T, pid int) (uid, gid string) {
	t.Helper()
	for _, line := range strings.Split(readFile(t, fmt.Sprintf("/proc/%d/status", pid)), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			uid = strings.Join(strings.Fields(v), " ")
		}
		if v, ok := strings.CutPrefix(line, "Gid:"); ok {
			gid = strings.Join(strings.Fields(v), " ")
		}
	}
	return uid, gid
}

// hostGroups returns the supplementary groups of process pid, as the host
// sees them.
func hostGroups(t *testing.T, pid int) string {
	t.Helper()
	for _, line := range strings.Split(readFile(t, fmt.Sprintf("/proc/%d/status", pid)), "\n") {
		if v, ok := strings.CutPrefix(line, "Groups:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// RootInsideIsTheOwnerOutside checks, as root, that the container's
// command is root inside and the root filesystem's owner on the host, not
// root, and that every file of the root filesystem belongs to root inside.
func RootInsideIsTheOwnerOutside(t *testing.T, s *Step) {
	RequireRoot(t)
	p := Start(t, s.Command(t, s.RunArgs("sh", "-c", "id -u; id -g; ls -lnd /bin/dash /etc/passwd /usr; exec sleep 60")...))
	assert.Equal(t, "0", p.ReadLine(t))
	assert.Equal(t, "0", p.ReadLine(t))
	for range 3 {
		f := strings.Fields(p.ReadLine(t))
		require.Len(t, f, 9)
		assert.Equal(t, []string{"0", "0"}, f[2:4], "the owner of %s inside", f[8])
	}
	command := ChildPID(t, p.Cmd.Process.Pid)
	require.Eventually(t, func() bool { return strings.HasPrefix(Cmdline(command), "sleep") }, patience, time.Millisecond)
	owner := strconv.Itoa(Owner)
	uid, gid := hostIDs(t, command)
	assert.Equal(t, strings.Repeat(owner+" ", 3)+owner, uid, "the command's uids on the host")
	assert.Equal(t, strings.Repeat(owner+" ", 3)+owner, gid, "the command's gids on the host")
	assert.Equal(t, "", hostGroups(t, command), "the command's supplementary groups on the host (run's, the host root's, dropped)")
	require.NoError(t, unix.Kill(command, unix.SIGKILL))
	p.Wait(t)
}

// HostRootPowersAre checks what the container's root may do that only the
// host's root may: write a kernel setting (the value it has, so that
// nothing changes). Until step09 it may; from step10 on it may not, with
// the error the page shows.
func HostRootPowersAre(t *testing.T, s *Step, allowed bool) {
	RequireRoot(t)
	r := s.Run(t, "sh", "-c", "cat /proc/sys/kernel/printk_ratelimit >/proc/sys/kernel/printk_ratelimit && echo written")
	if allowed {
		assert.Equal(t, 0, r.Status, r.Stderr)
		assert.Equal(t, "written\n", r.Stdout)
		return
	}
	assert.Equal(t, 2, r.Status)
	assert.Equal(t, "sh: 1: cannot create /proc/sys/kernel/printk_ratelimit: Permission denied\n", r.Stderr)
}

// asUser prepares the step's program to run as uid and gid Owner, with no
// other group: a normal user, without sudo.
func (s *Step) asUser(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := s.Command(t, args...)
	id := strconv.Itoa(Owner)
	cmd.Args = append([]string{"env", "--default-signal", "setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups"}, cmd.Args[2:]...)
	return cmd
}

// RunsWithoutRoot runs the container as a normal user, the owner of the
// root filesystem: root, the hostname, PID 1 and only its own processes
// inside; its writes in its own layer, not in the root filesystem; one
// line for each feature left out; and nothing left behind, not even what
// the container made read only.
func RunsWithoutRoot(t *testing.T, s *Step) {
	RequireRoot(t) // to become the normal user
	noCables(t)
	before := hostNetwork(t)
	scratchDir := filepath.Join(scratch(t, s), "containers")
	require.NoError(t, os.Mkdir(scratchDir, 0o700))
	require.NoError(t, os.Chown(scratchDir, Owner, Owner))
	cmd := s.asUser(t, "run", "-rootfs", s.Rootfs, "-scratch", scratchDir,
		"sh", "-c", "id -u; hostname; echo $$; ps -o pid=,comm=; echo changed >/etc/motd; cat /etc/motd >/dev/null; cat /etc/motd; mkdir -m 555 /d && touch /d/f")
	r := Finish(t, cmd)
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Regexp(t, `^0
container
1
 +1 sh
 +\d+ ps
changed
$`, r.Stdout)
	assert.Equal(t, s.Name+": cgroup limits left out: they need the host's root (sudo)\n"+
		s.Name+": the cable to the host left out: a veth pair needs the host's root (sudo); the container has lo only\n", r.Stderr)
	assert.NoFileExists(t, filepath.Join(s.Rootfs, "etc/motd"), "a write reached the root filesystem")
	assert.Empty(t, containerDirs(t, scratchDir), "left in the scratch directory")
	assert.Equal(t, before, hostNetwork(t))
}

// RootOwnedRootfsIsRefused checks that a root filesystem of root's, which
// would make the container's root the host's root, is refused in one line
// that says how to fix it, with status 1.
func RootOwnedRootfsIsRefused(t *testing.T, s *Step) {
	RequireRoot(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(dir+"/README", []byte("a root filesystem of root's\n"), 0o644))
	r := s.Exec(t, s.args("run", dir, "true")...)
	assert.Equal(t, 1, r.Status)
	OneLine(t, r.Stderr)
	assert.Equal(t, fmt.Sprintf("%s: %s belongs to root (its user or its group), who would then be the container's root: build the root filesystem as yourself (go run ./mkrootfs, without sudo), or give it to yourself: sudo chown -R $USER: %s\n", s.Name, dir, dir), r.Stderr)
}

// UserNamespaceWallsAreExplained makes the mounts that a user namespace
// restricts fail, with strace, and checks that each error says in one line
// what it means: the overlay (before Linux 5.11, or out of reach), /proc,
// and a user namespace whose root the machine gives no powers (Ubuntu).
func UserNamespaceWallsAreExplained(t *testing.T, s *Step) {
	errorsAreExplained(t, s, "mount:error=%s:when=2", map[string]string{
		"EPERM":  regexp.QuoteMeta("mount overlay: operation not permitted: this kernel mounts no overlay in a user namespace: Linux 5.11 and later do"),
		"EACCES": regexp.QuoteMeta("mount overlay: permission denied: the container's root, you on the host, cannot get to the root filesystem or the -scratch directory"),
	})
	errorsAreExplained(t, s, "sethostname:error=%s:when=1", map[string]string{
		"EPERM": regexp.QuoteMeta("the container's root has no powers in its user namespace: operation not permitted"),
	})
	errorsAreExplained(t, s, "mount:error=%s:when=3", map[string]string{
		"EPERM": regexp.QuoteMeta("mount proc on /proc: operation not permitted: in a user namespace, only where the host's /proc has nothing mounted over parts of it"),
	})
}
