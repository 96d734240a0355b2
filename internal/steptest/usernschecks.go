package steptest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
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
	refused := "Permission denied"
	if s.UsesLockdown { // and before that, /proc/sys is read-only
		refused = "Read-only file system"
	}
	assert.Equal(t, "sh: 1: cannot create /proc/sys/kernel/printk_ratelimit: "+refused+"\n", r.Stderr)
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
	scratchDir := userScratch(t, s)
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
	assert.Equal(t, s.Name+": cgroup limits left out: they need the host's root (sudo), or a cgroup v2 delegated to run alone (systemd-run --user --scope -p Delegate=yes)\n"+
		s.Name+": the cable to the host left out: a veth pair needs the host's root (sudo); the container has lo only\n", r.Stderr)
	assert.NoFileExists(t, filepath.Join(s.Rootfs, "etc/motd"), "a write reached the root filesystem")
	assert.Empty(t, containerDirs(t, scratchDir), "left in the scratch directory")
	assert.Equal(t, before, hostNetwork(t))
}

// ScratchDefaultsWithoutHome runs the container as a normal user, without
// -scratch, in an environment without HOME, as a service or env -i has:
// its scratch directory is in XDG_DATA_HOME when that is an absolute path,
// else in the home that HOME or the password database names; with no home
// at all, run says in one line to pass -scratch, and makes nothing. The
// password database is a copy of the machine's, with a line for Owner or
// none, bound over /etc/passwd in a mount namespace of the test's own.
func ScratchDefaultsWithoutHome(t *testing.T, s *Step) {
	RequireRoot(t) // to become the normal user
	dir := scratch(t, s)
	for _, d := range []string{"data", "home", "pwhome"} {
		require.NoError(t, os.Mkdir(filepath.Join(dir, d), 0o700))
		require.NoError(t, os.Chown(filepath.Join(dir, d), Owner, Owner))
	}
	const ours = "containers-from-scratch/containers"
	cases := []struct {
		name     string
		env      []string // the whole environment
		pwHome   string   // Owner's home in the password database, if any
		expected string   // the scratch directory, if any
	}{
		{"XDG_DATA_HOME", []string{"XDG_DATA_HOME=" + dir + "/data"}, "", dir + "/data/" + ours},
		{"HOME, and a relative XDG_DATA_HOME", []string{"HOME=" + dir + "/home", "XDG_DATA_HOME=data"}, "", dir + "/home/.local/share/" + ours},
		{"the password database's home", nil, dir + "/pwhome", dir + "/pwhome/.local/share/" + ours},
		{"no home", nil, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var passwd []string
			for _, line := range strings.Split(strings.TrimSpace(readFile(t, "/etc/passwd")), "\n") {
				if f := strings.Split(line, ":"); len(f) < 3 || f[2] != strconv.Itoa(Owner) {
					passwd = append(passwd, line)
				}
			}
			if c.pwHome != "" {
				passwd = append(passwd, fmt.Sprintf("learner:x:%d:%d::%s:/bin/sh", Owner, Owner, c.pwHome))
			}
			file := filepath.Join(t.TempDir(), "passwd")
			require.NoError(t, os.WriteFile(file, []byte(strings.Join(passwd, "\n")+"\n"), 0o644))
			before := tree(t, dir)
			cmd := s.asUser(t, "run", "-rootfs", s.Rootfs, "true")
			cmd.Args = append(append([]string{"env", "--default-signal", "unshare", "--mount", "--propagation", "private",
				"sh", "-c", `mount --bind "$0" /etc/passwd && exec env -i "$@"`, file}, c.env...), cmd.Args[2:]...)
			r := Finish(t, cmd)
			if c.expected == "" {
				assert.Equal(t, 1, r.Status)
				// After the lines on what a normal user's run leaves out.
				var rest []string
				for _, line := range strings.SplitAfter(r.Stderr, "\n") {
					if !strings.Contains(line, " left out: ") {
						rest = append(rest, line)
					}
				}
				OneLine(t, strings.Join(rest, ""))
				assert.Equal(t, fmt.Sprintf("%s: -scratch has no default: no XDG_DATA_HOME or HOME, and no home for uid %d in the password database; pass -scratch DIR, a directory of yours\n", s.Name, Owner), strings.Join(rest, ""))
				assert.Equal(t, before, tree(t, dir), "something was made")
				return
			}
			require.Equal(t, 0, r.Status, r.Stderr)
			assert.FileExists(t, filepath.Join(c.expected, ".containers-from-scratch"), "not the scratch directory")
			assert.Empty(t, containerDirs(t, c.expected), "left in the scratch directory")
		})
	}
}

// userScratch makes a scratch directory of Owner's for a run without root.
func userScratch(t *testing.T, s *Step) string {
	dir := filepath.Join(scratch(t, s), "containers")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.Chown(dir, Owner, Owner))
	return dir
}

// cableLeftOut is the line of a run without root on the veth it leaves out.
const cableLeftOut = ": the cable to the host left out: a veth pair needs the host's root (sudo); the container has lo only\n"

// LimitsHoldInADelegatedCgroup delegates a cgroup v2 to Owner, as
// systemd-run --user --scope -p Delegate=yes does (cgroup-v2.rst,
// "Delegation": the directory and the files that move processes and enable
// controllers are the user's), and starts run in it without root: the
// container's limits are in a cgroup below it and hold, run's leaf beside
// it, and run leaves the cgroup as it was given; a killed run's container
// dies with it.
// On a hybrid machine, whose cgroup v2 has no controllers to delegate, run
// sees that cgroup v2 (bound over /sys/fs/cgroup in a mount namespace) and
// says that it has none.
func LimitsHoldInADelegatedCgroup(t *testing.T, s *Step) {
	RequireRoot(t)
	hierarchy, wrap := "/sys/fs/cgroup", []string(nil)
	var st unix.Statfs_t
	require.NoError(t, unix.Statfs(hierarchy, &st))
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		hierarchy = "/sys/fs/cgroup/unified"
		wrap = []string{"unshare", "--mount", "--propagation", "private", "sh", "-c", `mount --bind /sys/fs/cgroup/unified /sys/fs/cgroup && exec "$@"`, "sh"}
	}
	given := filepath.Join(hierarchy, fmt.Sprintf("cfs-test-delegated-%d", os.Getpid()))
	require.NoError(t, os.Mkdir(given, 0o755))
	// Whatever run or the test left, the machine's cgroups are not the
	// tests' own: the cgroups below it go first, the controllers off.
	t.Cleanup(func() {
		entries, _ := os.ReadDir(given)
		for _, e := range entries {
			if e.IsDir() {
				_ = os.Remove(filepath.Join(given, e.Name()))
			}
		}
		_ = os.WriteFile(given+"/cgroup.subtree_control", []byte("-pids -memory -cpu"), 0o644)
		_ = os.Remove(given)
	})
	for _, file := range []string{"", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"} {
		require.NoError(t, os.Chown(filepath.Join(given, file), Owner, Owner))
	}
	fd, err := unix.Open(given, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	scratchDir := userScratch(t, s)
	// inGiven starts run as Owner in the delegated cgroup, alone in it.
	inGiven := func(args ...string) *exec.Cmd {
		cmd := s.asUser(t, append([]string{"run", "-rootfs", s.Rootfs, "-scratch", scratchDir}, args...)...)
		cmd.Args = append(wrap, cmd.Args...)
		if wrap != nil {
			cmd.Path, err = exec.LookPath(wrap[0])
			require.NoError(t, err)
		}
		cmd.SysProcAttr = &unix.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
		return cmd
	}
	// asGiven checks that the delegated cgroup is as it was given.
	asGiven := func() {
		t.Helper()
		entries, err := os.ReadDir(given)
		require.NoError(t, err)
		for _, e := range entries {
			assert.False(t, e.IsDir(), "cgroup left in the delegated cgroup: %s", e.Name())
		}
		assert.Empty(t, readFile(t, given+"/cgroup.procs"), "processes left in the delegated cgroup")
		assert.Empty(t, readFile(t, given+"/cgroup.subtree_control"), "controllers left enabled")
	}
	seen := strings.TrimPrefix(given, hierarchy) // the cgroup's path, as in /proc/PID/cgroup
	controllers := strings.Fields(readFile(t, given+"/cgroup.controllers"))
	if !slices.Contains(controllers, "pids") || !slices.Contains(controllers, "memory") || !slices.Contains(controllers, "cpu") {
		require.NotNil(t, wrap, "a cgroup v2 machine without the pids, memory and cpu controllers at its root: %v", controllers)
		r := Finish(t, inGiven("true"))
		assert.Equal(t, 0, r.Status, r.Stderr)
		assert.Equal(t, s.Name+": cgroup limits left out: the cgroup delegated to you, /sys/fs/cgroup"+seen+", has no pids, memory or cpu controller\n"+s.Name+cableLeftOut, r.Stderr)
		asGiven()
		return
	}

	p := Start(t, inGiven("-pids", "16", "-memory", "64M", "-cpus", "0.5", "sh", "-c", "echo ready; read line"))
	p.WaitFor(t, "ready")
	assert.Equal(t, "0::"+seen+"/"+cgroupName(t, p.Cmd.Process.Pid)+"\n", readFile(t, fmt.Sprintf("/proc/%d/cgroup", ChildPID(t, p.Cmd.Process.Pid))), "the container is not in its cgroup")
	container := given + "/" + cgroupName(t, p.Cmd.Process.Pid)
	assert.Equal(t, "16\n", readFile(t, container+"/pids.max"))
	assert.Equal(t, "67108864\n", readFile(t, container+"/memory.max"))
	assert.Equal(t, "50000 100000\n", readFile(t, container+"/cpu.max"))
	assert.Equal(t, "0::"+seen+"/"+cgroupName(t, p.Cmd.Process.Pid)+"-run\n", readFile(t, fmt.Sprintf("/proc/%d/cgroup", p.Cmd.Process.Pid)), "run is not in a leaf of its own")
	_, err = p.Stdin.Write([]byte("\n"))
	require.NoError(t, err)
	r := p.Wait(t)
	assert.Equal(t, 0, r.Status, r.Stderr)
	assert.Equal(t, s.Name+cableLeftOut, r.Stderr, "a limit left out")
	asGiven()

	// The limits hold: a fork bomb stops at -pids 16.
	r = Finish(t, inGiven("-pids", "16", "sh", "-c", `i=0; while [ $i -lt 200 ]; do sleep 100 & i=$((i+1)); echo $i; done`))
	assert.NotEqual(t, 0, r.Status)
	assert.Contains(t, r.Stderr, "fork", "no fork was ever refused")
	assert.LessOrEqual(t, len(strings.Fields(r.Stdout)), 15, "more processes than -pids 16 allows")
	asGiven()

	// A killed run's container dies with it. Its two cgroups stay, empty,
	// with the controllers on, until whoever delegated the cgroup removes
	// it (systemd, a scope's when its last process ends; here the test).
	p = Start(t, inGiven("sh", "-c", "echo ready; sleep 100"))
	p.WaitFor(t, "ready")
	container = given + "/" + cgroupName(t, p.Cmd.Process.Pid)
	require.NoError(t, p.Cmd.Process.Kill())
	p.Wait(t)
	require.Eventually(t, func() bool {
		procs, err := os.ReadFile(container + "/cgroup.procs")
		return err == nil && len(procs) == 0
	}, patience, 10*time.Millisecond, "the killed run's container lives on")

	// Where systemd runs the machine (the systemd VM), a cgroup that it
	// delegates, here a service's of Owner's, works the same.
	if init, err := os.Readlink("/proc/1/exe"); err == nil && strings.HasPrefix(filepath.Base(init), "systemd") {
		id := strconv.Itoa(Owner)
		r = Finish(t, exec.Command("systemd-run", "--uid="+id, "--gid="+id, "-p", "Delegate=yes", "--wait", "--pipe", "--quiet", "--collect",
			s.Bin, "run", "-rootfs", s.Rootfs, "-scratch", scratchDir, "-pids", "16", "sh", "-c", "cat /proc/self/cgroup; cat /proc/self/status | grep ^Uid"))
		assert.Equal(t, 0, r.Status, r.Stderr)
		assert.Regexp(t, s.cgroupSeen(`/system\.slice/run-[^/]+\.service/\d+-\d+`)+`\nUid:\s+0\s`, r.Stdout)
		t.Logf("delegated by systemd, a service: %s", strings.SplitN(r.Stdout, "\n", 2)[0])
		assert.Equal(t, s.Name+cableLeftOut, r.Stderr, "a limit left out")
	}
	// And a learner's way, the page's: a scope of their own user manager's,
	// where Owner has one (vm/in-vm.sh starts it in the systemd VM).
	runtimeDir := fmt.Sprintf("/run/user/%d", Owner)
	if _, err := os.Stat(runtimeDir + "/systemd/private"); err == nil {
		id := strconv.Itoa(Owner)
		cmd := exec.Command("setpriv", "--reuid="+id, "--regid="+id, "--clear-groups", "env", "XDG_RUNTIME_DIR="+runtimeDir,
			"systemd-run", "--user", "--scope", "-p", "Delegate=yes", "--quiet",
			s.Bin, "run", "-rootfs", s.Rootfs, "-scratch", scratchDir, "sh", "-c", "cat /proc/self/cgroup")
		r = Finish(t, cmd)
		assert.Equal(t, 0, r.Status, r.Stderr)
		assert.Regexp(t, s.cgroupSeen(`/user\.slice/user-`+id+`\.slice/user@`+id+`\.service/(\S+/)?run-[^/]+\.scope/\d+-\d+`)+`\n$`, r.Stdout)
		t.Logf("delegated by systemd, a user's scope: %s", strings.TrimSpace(r.Stdout))
		assert.Equal(t, s.Name+cableLeftOut, r.Stderr, "a limit left out")
	}
}

// RootOwnedRootfsIsRefused checks that a root filesystem of root's, which
// would make the container's root the host's root, is refused in one line
// that says how to fix it, with status 1: one whose user is root, whose
// group is root (issue 27, #18), or both.
func RootOwnedRootfsIsRefused(t *testing.T, s *Step) {
	RequireRoot(t)
	for _, o := range [][2]int{{0, 0}, {Owner, 0}, {0, Owner}} {
		t.Run(fmt.Sprintf("%d:%d", o[0], o[1]), func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(dir+"/README", []byte("a root filesystem of root's\n"), 0o644))
			require.NoError(t, chownTree(dir, o[0], o[1]))
			s.reachable(dir)
			r := s.Exec(t, s.args("run", dir, "true")...)
			assert.Equal(t, 1, r.Status)
			OneLine(t, r.Stderr)
			assert.Equal(t, fmt.Sprintf("%s: %s belongs to root (its user or its group), who would then be the container's root: build the root filesystem as yourself (go run ./mkrootfs, without sudo), or give it to yourself: sudo chown -R $USER: %s\n", s.Name, dir, dir), r.Stderr)
		})
	}
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

// --- issue 27: whose the container's root is, its groups, and a learner's run ---

// RootGroupIsTheRootfsGroup runs, as root, a root filesystem whose user
// and group differ (Owner, and Owner+1): the container's root group is the
// root filesystem's group on the host, as its root user is the user. Inside,
// id and the id maps say so, and / and a file the container makes belong
// to root; on the host, the file and the command are the user's and the
// group's.
func RootGroupIsTheRootfsGroup(t *testing.T, s *Step) {
	RequireRoot(t)
	const group = Owner + 1
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	// A copy of its own, not hard links: the files change owner.
	out, err := exec.Command("cp", "-a", s.Rootfs, rootfs).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NoError(t, chownTree(rootfs, Owner, group))
	s.reachable(rootfs)
	p := Start(t, s.Command(t, s.args("run", rootfs, "sh", "-c",
		"id -u; id -g; id -G; head -n1 /proc/self/uid_map; head -n1 /proc/self/gid_map; touch /made-by-root; ls -lnd / /made-by-root; exec sleep 60")...))
	assert.Equal(t, []string{"0", "0", "0"}, []string{p.ReadLine(t), p.ReadLine(t), p.ReadLine(t)}, "id -u, id -g, id -G inside")
	assert.Equal(t, []string{"0", strconv.Itoa(Owner), "1"}, strings.Fields(p.ReadLine(t)), "uid_map")
	assert.Equal(t, []string{"0", strconv.Itoa(group), "1"}, strings.Fields(p.ReadLine(t)), "gid_map")
	for range 2 {
		f := strings.Fields(p.ReadLine(t))
		require.Len(t, f, 9)
		assert.Equal(t, []string{"0", "0"}, f[2:4], "the owner of %s inside", f[8])
	}
	command := ChildPID(t, p.Cmd.Process.Pid)
	require.Eventually(t, func() bool { return strings.HasPrefix(Cmdline(command), "sleep") }, patience, time.Millisecond)
	made, err := filepath.Glob(filepath.Join(s.Scratch, "*", "upper", "made-by-root"))
	require.NoError(t, err)
	require.Len(t, made, 1, "the file the container made, in its upper layer")
	var st unix.Stat_t
	require.NoError(t, unix.Lstat(made[0], &st))
	assert.Equal(t, [2]uint32{Owner, group}, [2]uint32{st.Uid, st.Gid}, "the owner of the container's file on the host")
	uid, gid := hostIDs(t, command)
	assert.Equal(t, strings.Repeat(strconv.Itoa(Owner)+" ", 3)+strconv.Itoa(Owner), uid, "the command's uids on the host")
	assert.Equal(t, strings.Repeat(strconv.Itoa(group)+" ", 3)+strconv.Itoa(group), gid, "the command's gids on the host")
	require.NoError(t, unix.Kill(command, unix.SIGKILL))
	p.Wait(t)
}

// SudoDropsTheCallersGroups starts run as root in supplementary groups, as
// sudo from a user in some (sudo, adm) would, and checks that the container's
// command keeps none of them: inside, and on the host.
func SudoDropsTheCallersGroups(t *testing.T, s *Step) {
	RequireRoot(t)
	cmd := s.Command(t, s.RunArgs("sh", "-c", "grep ^Groups: /proc/self/status; id -G; exec sleep 60")...)
	cmd.SysProcAttr = &unix.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{4, 27, Owner, Owner + 1}}}
	p := Start(t, cmd)
	assert.Equal(t, "Groups:", strings.TrimSpace(p.ReadLine(t)), "the command's supplementary groups inside")
	assert.Equal(t, "0", p.ReadLine(t), "id -G inside")
	require.Equal(t, "4 27 3333 3334", hostGroups(t, p.Cmd.Process.Pid), "run's own groups: the test's Credential did not hold")
	command := ChildPID(t, p.Cmd.Process.Pid)
	require.Eventually(t, func() bool { return strings.HasPrefix(Cmdline(command), "sleep") }, patience, time.Millisecond)
	assert.Equal(t, "", hostGroups(t, command), "the command's supplementary groups on the host")
	require.NoError(t, unix.Kill(command, unix.SIGKILL))
	p.Wait(t)
}

// LearnerRunsWithoutSudo runs the container as the page's first block does:
// a normal user, with a learner's environment (HOME, PATH, USER; no
// XDG_DATA_HOME), from the directory that holds rootfs, with neither -rootfs
// nor -scratch. The container works, its changes are in the default scratch
// directory, ~/.local/share/containers-from-scratch/containers, while it
// runs (run's child must learn where that is: in the user namespace it is
// root, whose default is another), and are gone after it.
func LearnerRunsWithoutSudo(t *testing.T, s *Step) {
	RequireRoot(t) // to become the normal user
	home := filepath.Join(scratch(t, s), "home")
	require.NoError(t, os.Mkdir(home, 0o700))
	require.NoError(t, os.Chown(home, Owner, Owner))
	cmd := s.asUser(t, "run", "sh", "-c", "id -u; hostname; echo changed >/etc/motd; cat /etc/motd; read line")
	cmd.Args = slices.Insert(cmd.Args, 6, "env", "-i", "HOME="+home, "PATH=/usr/local/bin:/usr/bin:/bin", "USER=learner", "LOGNAME=learner", "SHELL=/bin/sh")
	require.Equal(t, s.Bin, cmd.Args[13], "the program's place in %v", cmd.Args)
	cmd.Dir = filepath.Dir(s.Rootfs)
	require.Equal(t, "rootfs", filepath.Base(s.Rootfs))
	p := Start(t, cmd)
	assert.Equal(t, []string{"0", "container", "changed"}, []string{p.ReadLine(t), p.ReadLine(t), p.ReadLine(t)})
	dir := filepath.Join(home, ".local/share/containers-from-scratch/containers")
	motd, err := filepath.Glob(filepath.Join(dir, "*", "upper", "etc", "motd"))
	require.NoError(t, err)
	if assert.Len(t, motd, 1, "the container's change in the default scratch directory") {
		assert.Equal(t, "changed\n", readFile(t, motd[0]))
	}
	_, err = p.Stdin.Write([]byte("\n"))
	require.NoError(t, err)
	r := p.Wait(t)
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Equal(t, s.Name+": cgroup limits left out: they need the host's root (sudo), or a cgroup v2 delegated to run alone (systemd-run --user --scope -p Delegate=yes)\n"+s.Name+cableLeftOut, r.Stderr)
	assert.NoFileExists(t, filepath.Join(s.Rootfs, "etc/motd"), "a write reached the root filesystem")
	assert.Empty(t, containerDirs(t, dir), "left in the scratch directory")
}

// cgroupSeen is a pattern for the line of /proc/self/cgroup that a
// container on cgroup v2 prints, in a cgroup whose path the host sees as
// path: path itself, or "/" from step11 on, in a cgroup namespace.
func (s *Step) cgroupSeen(path string) string {
	if s.UsesIPCAndCgroupns {
		return `^0::/`
	}
	return `^0::` + path
}
