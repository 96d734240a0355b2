package steptest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The checks below are each one guarantee of a step, written once: a step
// runs the checks of its own feature and of every step before it.

// --- step01: run a command ---

// UsageErrorsExit2 checks that a command line the program does not
// understand gets the usage line and status 2.
func UsageErrorsExit2(t *testing.T, s *Step) {
	cases := map[string][]string{
		"no arguments":        {},
		"unknown subcommand":  {"start", "true"},
		"run without command": s.RunArgs(),
		"unknown flag":        {"run", "-no-such-flag", "true"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			r := s.Exec(t, args...)
			assert.Equal(t, 2, r.Status)
			assert.Contains(t, r.Stderr, "usage: "+s.Name+" run ")
			assert.NotContains(t, r.Stderr, "goroutine ")
			assert.Empty(t, r.Stdout)
		})
	}
}

// StdioIsWired checks that the command reads the program's standard input
// and writes to its standard output and error.
func StdioIsWired(t *testing.T, s *Step) {
	s.requireRoot(t)
	cmd := s.Command(t, s.RunArgs("sh", "-c", "cat; echo to-stderr >&2")...)
	cmd.Stdin = strings.NewReader("from stdin\n")
	r := Finish(t, cmd)
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Equal(t, "from stdin\n", r.Stdout)
	assert.Equal(t, "to-stderr\n", r.Stderr)
}

// ExitStatusPassesThrough checks that the program exits as its command
// did: with the same status, or with 128+S when signal S killed it.
func ExitStatusPassesThrough(t *testing.T, s *Step) {
	s.requireRoot(t)
	for _, status := range []int{0, 1, 3, 42} {
		t.Run(fmt.Sprintf("exit %d", status), func(t *testing.T) {
			r := s.Run(t, "sh", "-c", fmt.Sprintf("exit %d", status))
			assert.Equal(t, status, r.Status, r.Stderr)
			assert.Empty(t, r.Stderr)
		})
	}
	t.Run("killed by SIGKILL", func(t *testing.T) {
		p := Start(t, s.Command(t, s.RunArgs("sh", "-c", "echo ready; exec sleep 100")...))
		p.WaitFor(t, "ready")
		require.NoError(t, unix.Kill(ChildPID(t, p.Cmd.Process.Pid), unix.SIGKILL))
		assert.Equal(t, 128+9, p.Wait(t).Status)
	})
}

// SignalsReachTheCommand checks that SIGINT, SIGTERM, SIGHUP and SIGQUIT
// sent to the program are passed on to the command. The command traps each,
// as PID 1 must (from step03 on) to see a signal at all.
func SignalsReachTheCommand(t *testing.T, s *Step) {
	s.requireRoot(t)
	for _, sig := range []unix.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT} {
		name := strings.TrimPrefix(unix.SignalName(sig), "SIG")
		t.Run(name, func(t *testing.T) {
			// The shell runs a trap between commands, so it loops on short
			// ones: a long "wait" could miss a signal that came just before it.
			script := fmt.Sprintf(`trap 'echo got %s; exit 7' %s; echo ready; while :; do sleep 0.01; done`, name, name)
			p := Start(t, s.Command(t, s.RunArgs("sh", "-c", script)...))
			p.WaitFor(t, "ready")
			require.NoError(t, p.Cmd.Process.Signal(sig))
			r := p.Wait(t)
			assert.Equal(t, "got "+name+"\n", r.Stdout)
			assert.Equal(t, 7, r.Status, r.Stderr)
		})
	}
}

// KillingRunKillsTheCommand checks that a killed program leaves no command
// running behind it. It tries many times: a command that survives only
// when the Go runtime happened to exec it from another thread is a real
// leak, however rare.
func KillingRunKillsTheCommand(t *testing.T, s *Step) {
	s.requireRoot(t)
	for i := 0; i < 20; i++ {
		p := Start(t, s.Command(t, s.RunArgs("sh", "-c", "echo ready; exec sleep 100")...))
		p.WaitFor(t, "ready")
		command := ChildPID(t, p.Cmd.Process.Pid)
		t.Cleanup(func() { _ = unix.Kill(command, unix.SIGKILL) })
		require.NoError(t, p.Cmd.Process.Kill())
		require.Eventually(t, func() bool { return Gone(command) }, patience, time.Millisecond,
			"try %d: the command (PID %d) outlived the killed program", i+1, command)
	}
}

// CommandNotFoundExits127 checks that a command that does not exist gets
// the status a shell gives it, 127, and one line that names it.
func CommandNotFoundExits127(t *testing.T, s *Step) {
	s.requireRoot(t)
	names := []string{"no-such-command", "/no/such/command"}
	if s.UsesRootfs {
		// One the host has (the tests need it) and the root filesystem
		// has not: it is looked for in the container, not on the host.
		names = append(names, "strace")
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			r := s.Run(t, name, "arg")
			assert.Equal(t, 127, r.Status)
			OneLine(t, r.Stderr)
			assert.Contains(t, r.Stderr, name+": command not found")
		})
	}
}

// --- step02: UTS namespace ---

// NotRootGetsOneLine checks that a user who is not root is told, in one
// line, that the step needs root and how to get it.
func NotRootGetsOneLine(t *testing.T, s *Step) {
	cmd := s.Command(t, s.RunArgs("true")...)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	r := Finish(t, cmd)
	assert.Equal(t, 1, r.Status)
	OneLine(t, r.Stderr)
	assert.Contains(t, r.Stderr, "needs root")
	assert.Contains(t, r.Stderr, "sudo")
}

// HostnameIsContainer checks that the command sees the container's own
// hostname.
func HostnameIsContainer(t *testing.T, s *Step) {
	RequireRoot(t)
	r := s.Run(t, "hostname")
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Equal(t, "container\n", r.Stdout)
}

// HostnameChangeStaysInside checks that a hostname set in the container
// does not reach the host.
func HostnameChangeStaysInside(t *testing.T, s *Step) {
	RequireRoot(t)
	before, err := os.Hostname()
	require.NoError(t, err)
	r := s.Run(t, "sh", "-c", "hostname changed-inside && hostname")
	if s.UsesLockdown { // without CAP_SYS_ADMIN, as in Docker
		assert.Equal(t, 1, r.Status)
		assert.Equal(t, "hostname: you must be root to change the host name\n", r.Stderr)
	} else {
		require.Equal(t, 0, r.Status, r.Stderr)
		assert.Equal(t, "changed-inside\n", r.Stdout)
	}
	after, err := os.Hostname()
	require.NoError(t, err)
	assert.Equal(t, before, after, "the host's hostname changed")
}

// MountsStayInTheTests checks what keeps a broken step from damaging the
// machine that runs the tests (Isolated): they run in a mount namespace of
// their own, whose mounts never reach the machine's. A mount the test makes
// shows in its own mount table, and not in that of the process that
// started the tests, in the machine's namespace.
func MountsStayInTheTests(t *testing.T) {
	RequireRoot(t)
	dir := t.TempDir()
	require.NoError(t, unix.Mount("tmpfs", dir, "tmpfs", 0, ""))
	defer unix.Unmount(dir, unix.MNT_DETACH)
	assert.Contains(t, readFile(t, "/proc/self/mountinfo"), " "+dir+" ")
	machine := readFile(t, fmt.Sprintf("/proc/%d/mountinfo", os.Getppid()))
	assert.NotContains(t, machine, " "+dir+" ", "a mount of the tests' reached the machine's mount table")
	// Shared among the tests' mounts, as on a systemd host; and where the
	// machine's / is shared, a slave of it ("master:").
	self := readFile(t, "/proc/self/mountinfo")
	assert.Regexp(t, `(?m)^\S+ \S+ \S+ \S+ / \S+ shared:`, self, "the tests' / is not shared")
	if regexp.MustCompile(`(?m)^\S+ \S+ \S+ \S+ / \S+ shared:`).MatchString(machine) {
		assert.Regexp(t, `(?m)^\S+ \S+ \S+ \S+ / \S+ shared:\S+ master:`, self, "the tests' / is a peer of the machine's")
	}
}

// ChildRefusesOnTheHost checks that "child", run by hand, refuses to set up
// a container in namespaces it shares with the process that started it,
// and changes nothing. It runs in namespaces of the test's own, so that a
// child that failed to refuse would rename and remount only those.
func ChildRefusesOnTheHost(t *testing.T, s *Step) {
	RequireRoot(t)
	hostname, err := os.Hostname()
	require.NoError(t, err)

	// sh stays the child's parent ("; exit"), as a shell a learner types
	// into would.
	script := `"$0" "$@"; status=$?; echo "hostname after: $(hostname)"; exit $status`
	args := append([]string{"--uts", "--mount", "--propagation", "unchanged", "sh", "-c", script, s.Bin},
		s.args("child", s.Rootfs, "hostname")...)
	r := Finish(t, exec.Command("unshare", args...))
	assert.Equal(t, 2, r.Status)
	assert.Contains(t, r.Stderr, `"child" is internal`)
	assert.Equal(t, "hostname after: "+hostname+"\n", r.Stdout, "the child went on: it ran hostname, or changed it")
}

// --- step03: PID namespace ---

// CommandIsPID1 checks that the command is PID 1 in its own PID namespace.
func CommandIsPID1(t *testing.T, s *Step) {
	RequireRoot(t)
	r := s.Run(t, "sh", "-c", "echo $$")
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Equal(t, "1\n", r.Stdout)
}

// PID1IgnoresSignalsItDoesNotHandle checks the kernel rule that makes PID 1
// special: a signal it has no handler for is dropped, even from the host.
// The shell traps SIGINT but not SIGTERM; a SIGTERM that was delivered would
// kill it (status 143) before it saw the SIGINT.
func PID1IgnoresSignalsItDoesNotHandle(t *testing.T, s *Step) {
	RequireRoot(t)
	p := Start(t, s.Command(t, s.RunArgs("sh", "-c", `trap 'exit 5' INT; echo ready; while :; do sleep 0.01; done`)...))
	p.WaitFor(t, "ready")
	pid1 := ChildPID(t, p.Cmd.Process.Pid)
	require.NoError(t, unix.Kill(pid1, unix.SIGTERM))
	require.NoError(t, unix.Kill(pid1, unix.SIGINT))
	assert.Equal(t, 5, p.Wait(t).Status, "PID 1 was killed by a signal it does not handle")
}

// --- step04: root filesystem ---

// RootIsTheRootfs checks that the command sees the root filesystem as /,
// and starts in it.
func RootIsTheRootfs(t *testing.T, s *Step) {
	RequireRoot(t)
	entries, err := os.ReadDir(s.Rootfs)
	require.NoError(t, err)
	var want []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			want = append(want, e.Name())
		}
	}

	r := s.Run(t, "ls", "/")
	require.Equal(t, 0, r.Status, r.Stderr)
	got := strings.Fields(r.Stdout)
	sort.Strings(got)
	assert.Equal(t, want, got)

	r = s.Run(t, "sh", "-c", "pwd -P")
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Equal(t, "/\n", r.Stdout, "the command did not start in /")

	// Without -rootfs, as the pages run it: the rootfs folder of the
	// working directory, never the host's /.
	args := []string{"run"}
	if s.UsesScratch {
		args = append(args, "-scratch", s.Scratch)
	}
	cmd := s.Command(t, append(args, "ls", "/")...)
	cmd.Dir = filepath.Dir(s.Rootfs)
	require.Equal(t, "rootfs", filepath.Base(s.Rootfs))
	r = Finish(t, cmd)
	require.Equal(t, 0, r.Status, r.Stderr)
	got = strings.Fields(r.Stdout)
	sort.Strings(got)
	assert.Equal(t, want, got, "without -rootfs")
}

// MissingRootfsSaysHowToBuildIt checks that a missing or empty root
// filesystem gets one line naming it and the command that builds it.
func MissingRootfsSaysHowToBuildIt(t *testing.T, s *Step) {
	RequireRoot(t)
	dirs := map[string]string{
		"missing": "/no/such/rootfs",
		"empty":   t.TempDir(),
	}
	for name, dir := range dirs {
		t.Run(name, func(t *testing.T) {
			r := s.Exec(t, "run", "-rootfs", dir, "true")
			assert.Equal(t, 1, r.Status)
			OneLine(t, r.Stderr)
			assert.Contains(t, r.Stderr, "no root filesystem at "+dir)
			assert.Contains(t, r.Stderr, "go run ./mkrootfs "+dir)
		})
	}
	// Started from inside a step's folder, with the default -rootfs.
	t.Run("one level up", func(t *testing.T) {
		repo := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(repo, "rootfs/bin"), 0o755))
		require.NoError(t, os.Mkdir(filepath.Join(repo, "step"), 0o755))
		cmd := s.Command(t, "run", "true")
		cmd.Dir = filepath.Join(repo, "step")
		r := Finish(t, cmd)
		assert.Equal(t, 1, r.Status)
		OneLine(t, r.Stderr)
		assert.Contains(t, r.Stderr, "no root filesystem at "+filepath.Join(repo, "step/rootfs")+": run from the repository root, or pass -rootfs ../rootfs")
	})
}

// RootfsThatIsAFileIsOneLine checks that a -rootfs that is not a directory
// gets one line that says so.
func RootfsThatIsAFileIsOneLine(t *testing.T, s *Step) {
	RequireRoot(t)
	file := filepath.Join(t.TempDir(), "rootfs.tar")
	require.NoError(t, os.WriteFile(file, []byte("not a directory"), 0o644))
	r := s.Exec(t, "run", "-rootfs", file, "true")
	assert.Equal(t, 1, r.Status)
	OneLine(t, r.Stderr)
	assert.Contains(t, r.Stderr, file+" is not a directory: -rootfs takes the directory of a root filesystem")
}

// StdioThatLeadsIntoTheHostIsRefused hands run, as its standard input or
// output, a descriptor through which the container could reach the host's
// files past its root: a directory (ls /proc/self/fd/0/ would list the
// host's /), also opened O_PATH, a symbolic link, a block device. run
// refuses in one line, and the command never runs; before run looks at
// anything else, so before it makes anything. What a command is normally
// handed still works: /dev/null, a file, a pipe, a socket (and a terminal:
// the tests of terminals).
func StdioThatLeadsIntoTheHostIsRefused(t *testing.T, s *Step) {
	RequireRoot(t)
	dir := t.TempDir()
	open := func(t *testing.T, path string, flags int) *os.File {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0o644)
		require.NoError(t, err, "open %s", path)
		f := os.NewFile(uintptr(fd), path)
		t.Cleanup(func() { f.Close() })
		return f
	}
	// A block device of the test's own: opened O_PATH, it is never read.
	disk := filepath.Join(dir, "disk")
	require.NoError(t, unix.Mknod(disk, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))))
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink("/", link))
	// The command says that it ran, on both outputs: one of them may be
	// what run refuses.
	ran := []string{"sh", "-c", "echo ran; echo ran >&2"}
	refusal := func(fd, what, path string) string {
		return s.Name + ": " + fd + " is " + what + " (" + path + "): a container must not be handed a way into the host's files; give it a file, a pipe or a terminal\n"
	}
	for _, c := range []struct {
		name, fd, path, what string
		flags                int
	}{
		{"stdin a directory", "standard input", "/", "a directory", unix.O_RDONLY},
		{"stdin a directory, O_PATH", "standard input", "/", "a directory", unix.O_PATH},
		{"stdin a symbolic link", "standard input", link, "a symbolic link", unix.O_PATH | unix.O_NOFOLLOW},
		{"stdin a block device", "standard input", disk, "a block device", unix.O_PATH},
		{"stdout a directory", "standard output", "/", "a directory", unix.O_RDONLY},
		{"stderr a directory", "standard error", "/", "a directory", unix.O_RDONLY},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := open(t, c.path, c.flags)
			var stdout, stderr bytes.Buffer
			cmd := s.Command(t, s.RunArgs(ran...)...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			switch c.fd {
			case "standard input":
				cmd.Stdin = f // an *os.File is handed on as it is, not copied
			case "standard output":
				cmd.Stdout = f
			case "standard error":
				cmd.Stderr = f
			}
			err := cmd.Run()
			if _, exited := err.(*exec.ExitError); err != nil && !exited {
				require.NoError(t, err)
			}
			assert.Equal(t, 1, cmd.ProcessState.ExitCode())
			if c.fd == "standard error" {
				assert.Empty(t, stdout.String(), "the command ran")
				return // the line went to the directory, where it cannot be written
			}
			OneLine(t, stderr.String())
			assert.Equal(t, refusal(c.fd, c.what, c.path), stderr.String())
			assert.Empty(t, stdout.String(), "the command ran")
		})
	}
	t.Run("before anything else", func(t *testing.T) {
		cmd := s.Command(t, s.RunIn("/no/such/rootfs", ran...)...)
		cmd.Stdin = open(t, "/", unix.O_RDONLY)
		r := Finish(t, cmd)
		assert.Equal(t, 1, r.Status)
		assert.Equal(t, refusal("standard input", "a directory", "/"), r.Stderr)
	})
	// What a command is normally handed.
	file := filepath.Join(dir, "input")
	require.NoError(t, os.WriteFile(file, []byte("from a file\n"), 0o644))
	pipeR, pipeW, err := os.Pipe()
	require.NoError(t, err)
	_, err = pipeW.WriteString("from a pipe\n")
	require.NoError(t, err)
	pipeW.Close()
	t.Cleanup(func() { pipeR.Close() })
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	socket, peer := os.NewFile(uintptr(pair[0]), "socket"), os.NewFile(uintptr(pair[1]), "peer")
	t.Cleanup(func() { socket.Close() })
	_, err = peer.WriteString("from a socket\n")
	require.NoError(t, err)
	peer.Close()
	for name, c := range map[string]struct {
		stdin *os.File
		want  string
	}{
		"/dev/null": {open(t, "/dev/null", unix.O_RDONLY), ""},
		"a file":    {open(t, file, unix.O_RDONLY), "from a file\n"},
		"a pipe":    {pipeR, "from a pipe\n"},
		"a socket":  {socket, "from a socket\n"},
	} {
		t.Run("stdin "+name, func(t *testing.T) {
			cmd := s.Command(t, s.RunArgs("cat")...)
			cmd.Stdin = c.stdin
			r := Finish(t, cmd)
			assert.Equal(t, 0, r.Status, r.Stderr)
			assert.Equal(t, c.want, r.Stdout)
		})
	}
	t.Run("stdout a file", func(t *testing.T) {
		out := open(t, filepath.Join(dir, "output"), unix.O_WRONLY|unix.O_CREAT)
		cmd := s.Command(t, s.RunArgs("echo", "to a file")...)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = out, &stderr
		require.NoError(t, cmd.Run(), stderr.String())
		assert.Equal(t, "to a file\n", readFile(t, out.Name()))
	})
}

// breakoutName is the name under which the test binary plays the escape of
// step04's first exercise, in the container.
const breakoutName = "breakout"

// breakout leaves a chroot the classic way, as root: chroot into a
// directory without going into it, so that the working directory is
// outside the root; walk up; chroot to where that leads. It says whether
// its / is still the one it started in, the container's (the same file),
// and prints the host's file at path if it can reach it.
func breakout(path string) {
	check := func(err error) {
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
	}
	var before, after unix.Stat_t
	check(unix.Stat("/", &before))
	_ = os.Mkdir("/jail", 0o755)
	check(unix.Chroot("/jail"))
	for i := 0; i < 100; i++ {
		check(unix.Chdir(".."))
	}
	check(unix.Chroot("."))
	check(unix.Stat("/", &after))
	status := 0
	if after.Dev == before.Dev && after.Ino == before.Ino {
		fmt.Println("still in the container's root")
		status = 1
	} else {
		fmt.Println("out of the container's root")
	}
	if data, err := os.ReadFile(path); err == nil {
		os.Stdout.Write(data)
	}
	os.Exit(status)
}

// escape runs the breakout in the step's container, aimed at a file on the
// host that is not in the root filesystem, and returns what it printed and
// the file's content.
func escape(t *testing.T, s *Step) (r Result, secret string) {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	bin := filepath.Join(s.Rootfs, breakoutName)
	require.NoError(t, copyFile(self, bin, 0o755))
	t.Cleanup(func() {
		os.Remove(bin)
		os.Remove(filepath.Join(s.Rootfs, "jail"))
	})
	marker := filepath.Join(t.TempDir(), "on-the-host")
	secret = fmt.Sprintf("the host's file %d\n", time.Now().UnixNano())
	require.NoError(t, os.WriteFile(marker, []byte(secret), 0o644))
	return s.Run(t, "/"+breakoutName, marker), secret
}

// ChrootCanBeEscaped checks that the hole of step04's first exercise is
// real in a step that uses chroot: a root process in the container gets
// out of its root, and reaches a file of the host's.
func ChrootCanBeEscaped(t *testing.T, s *Step) {
	RequireRoot(t)
	r, secret := escape(t, s)
	require.Equal(t, 0, r.Status, "the breakout did not get out: %s%s", r.Stdout, r.Stderr)
	assert.Equal(t, "out of the container's root\n"+secret, r.Stdout,
		"out, but not where this test sees files: do the tests run in a chroot? Then the breakout leaves that too")
}

// --- step05: mount namespace and /proc ---

// PsSeesOnlyTheContainer checks that ps lists the container's processes
// and no others, PID 1 first: the shell, and ps itself.
func PsSeesOnlyTheContainer(t *testing.T, s *Step) {
	RequireRoot(t)
	// "; true" keeps the shell from exec'ing ps: it stays PID 1.
	r := s.Run(t, "sh", "-c", "ps -e -o pid=,comm=; true")
	require.Equal(t, 0, r.Status, r.Stderr)
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	require.Len(t, lines, 2, "ps lists more than sh and itself:\n%s", r.Stdout)
	assert.Equal(t, []string{"1", "sh"}, strings.Fields(lines[0]))
	assert.Equal(t, "ps", strings.Fields(lines[1])[1])
}

// MountViewIsTheContainers checks that the command is in a mount namespace
// of its own, where the only mount it can see is its /proc.
func MountViewIsTheContainers(t *testing.T, s *Step) {
	RequireRoot(t)
	host, err := os.Readlink("/proc/self/ns/mnt")
	require.NoError(t, err)
	r := s.Run(t, "readlink", "/proc/self/ns/mnt")
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.NotEqual(t, host+"\n", r.Stdout, "the command shares the host's mount namespace")

	r = s.Run(t, "cat", "/proc/self/mountinfo")
	require.Equal(t, 0, r.Status, r.Stderr)
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	require.Len(t, lines, 1, "mounts seen inside:\n%s", r.Stdout)
	fields := strings.Fields(lines[0])
	assert.Equal(t, "/proc", fields[4], "mount point")
	assert.Contains(t, lines[0], " - proc proc ", "file system type")
}

// ProcDoesNotLeakToASharedHost checks that the container's /proc never
// shows in the host's mount table, during the run or after it, when the
// host's / is shared as systemd mounts it, also when the command is
// killed. The host is simulated by a mount namespace of the test's own whose
// mounts are all shared.
func ProcDoesNotLeakToASharedHost(t *testing.T, s *Step) {
	RequireRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal("unshare (util-linux) is needed to simulate a systemd host")
	}
	// Any mount at or under the root filesystem: its /proc, or (step07 on)
	// the root filesystem itself.
	container := " " + s.Rootfs
	script := `"$0" "$@"; echo "status $?"; cat /proc/self/mountinfo`
	args := append([]string{s.Bin}, s.RunArgs("sh", "-c", "echo ready; read line; exit 0")...)

	for _, end := range []string{"command exits", "command killed", "run killed", "root filesystem on a mount of its own"} {
		t.Run(end, func(t *testing.T) {
			// Private first, then shared: "unshare --propagation shared"
			// on a host whose mounts are shared would make the simulated
			// host's mounts peers of the real one's, and a leak would
			// reach the machine running the tests.
			setUp, container := "mount --make-rshared / && ", container
			if end == "root filesystem on a mount of its own" {
				// As on a /home partition, or a VM's synced folder: a
				// shared mount that is not /.
				setUp += "mount --bind " + s.Rootfs + " " + s.Rootfs + " && mount --make-shared " + s.Rootfs + " && "
				container = " " + s.Rootfs + "/"
			}
			cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c", setUp + script}, args...)...)
			p := Start(t, cmd)
			p.WaitFor(t, "ready")

			host := readFile(t, fmt.Sprintf("/proc/%d/mountinfo", cmd.Process.Pid))
			require.Regexp(t, `(?m)^\S+ \S+ \S+ \S+ / \S+ shared:`, host, "the simulated host's / is not shared")
			assert.NotContains(t, host, container, "the container's mounts show on the host during the run")
			if s.UsesScratch {
				assert.NotContains(t, host, " "+s.Scratch, "the container's overlay shows on the host during the run")
			}

			run := ChildPID(t, cmd.Process.Pid)
			want := "status 0"
			switch end {
			case "command killed":
				require.NoError(t, unix.Kill(ChildPID(t, run), unix.SIGKILL))
				want = "status 137"
			case "run killed":
				require.NoError(t, unix.Kill(run, unix.SIGKILL))
				want = "status 137"
			default:
				require.NoError(t, p.Stdin.Close())
			}
			p.WaitFor(t, want)
			r := p.Wait(t)
			require.Equal(t, 0, r.Status, r.Stderr)
			assert.NotContains(t, r.Stdout, container, "the container's mounts are left on the host")
			if s.UsesScratch {
				assert.NotContains(t, r.Stdout, " "+s.Scratch, "the container's overlay is left on the host")
			}
		})
	}
}

// --- step07: pivot_root ---

// ChrootEscapeIsClosed checks that the breakout of step04's first exercise,
// which gets out of a chroot, gets nowhere after pivot_root: walking up
// from the container's root leads back to it, and the host's file is not
// there.
func ChrootEscapeIsClosed(t *testing.T, s *Step) {
	RequireRoot(t)
	r, _ := escape(t, s)
	assert.Equal(t, 1, r.Status, "the breakout: %s%s", r.Stdout, r.Stderr)
	assert.Equal(t, "still in the container's root\n", r.Stdout, "the breakout got out, or reached the host's file")
}

// OnlyTheContainersMounts checks that the container's mount table holds
// its / and its /proc and nothing of the host's, and that / holds the root
// filesystem's files and nothing else: no directory for the old root.
func OnlyTheContainersMounts(t *testing.T, s *Step) {
	RequireRoot(t)
	r := s.Run(t, "cat", "/proc/self/mountinfo")
	require.Equal(t, 0, r.Status, r.Stderr)
	var points []string
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		// From step12 on, parts of /proc are masked: ProcIsMasked.
		if point := strings.Fields(line)[4]; !s.UsesLockdown || !strings.HasPrefix(point, "/proc/") {
			points = append(points, point)
		}
	}
	want := []string{"/", "/proc"}
	if s.UsesUserns { // the host's device files, bound (step10)
		want = append(want, "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")
	}
	if s.UsesIPCAndCgroupns { // and the IPC namespace's message queues (step11)
		want = append(want, "/dev/mqueue")
	}
	assert.Equal(t, want, points, "mounts seen inside:\n%s", r.Stdout)

	entries, err := os.ReadDir(s.Rootfs)
	require.NoError(t, err)
	want = nil
	for _, e := range entries {
		want = append(want, e.Name())
	}
	r = s.Run(t, "ls", "-A", "/")
	require.Equal(t, 0, r.Status, r.Stderr)
	got := strings.Fields(r.Stdout)
	sort.Strings(got)
	assert.Equal(t, want, got, "/ in the container")
}

// PivotRootErrorsAreExplained checks that pivot_root's errors, each of
// which the kernel returns for several reasons, come in one line that says
// what they mean. strace makes the call fail.
func PivotRootErrorsAreExplained(t *testing.T, s *Step) {
	// The new root: the root filesystem, or from step08 on, its overlay.
	into := regexp.QuoteMeta("pivot_root into " + s.Rootfs)
	if s.UsesScratch {
		into = regexp.QuoteMeta("pivot_root into "+s.Scratch+"/") + `\d+-\d+/merged`
	}
	errorsAreExplained(t, s, "pivot_root:error=%s", map[string]string{
		"EINVAL": into + ": invalid argument: the new root is not a mount point, or a mount involved is shared",
		"EBUSY":  into + ": device or resource busy: the new root is on the same mount as the current one",
	})
}

// errorsAreExplained makes a system call fail, with strace's inject (a
// format for the errno), with each errno in turn, and checks that the
// step says, in one line, what the error means (a regexp).
func errorsAreExplained(t *testing.T, s *Step, inject string, meanings map[string]string) {
	RequireRoot(t)
	for errno, meaning := range meanings {
		t.Run(errno, func(t *testing.T) {
			cmd, _ := s.straced(t, fmt.Sprintf(inject, errno), s.RunArgs("true")...)
			r := Finish(t, cmd)
			assert.Equal(t, 1, r.Status)
			OneLine(t, r.Stderr)
			assert.Regexp(t, "^"+regexp.QuoteMeta(s.Name+": ")+meaning, r.Stderr)
		})
	}
}

// --- step08: overlay ---

// scratch makes a scratch directory of the test's own for the step's
// -scratch, beside the test's root filesystem.
func scratch(t *testing.T, s *Step) string {
	dir, err := os.MkdirTemp(filepath.Dir(s.Rootfs), "scratch-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	s.reachable(dir + "/containers")
	return dir
}

// containerDirs lists the containers' directories in a scratch directory,
// which also holds its marker.
func containerDirs(t *testing.T, dir string) []string {
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names
}

// tree describes every file under dir: its path, mode, size, and its
// content or link target.
func tree(t *testing.T, dir string) string {
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %d", strings.TrimPrefix(path, dir), fi.Mode(), fi.Size())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(path)
			fmt.Fprintf(&b, " -> %s", target)
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %x", sha256.Sum256(data))
		}
		b.WriteString("\n")
		return nil
	})
	require.NoError(t, err)
	return b.String()
}

// ImageIsNeverWritten checks that nothing a container does reaches the root
// filesystem: after it deletes /usr and /etc and writes a file, the root
// filesystem is what it was, byte for byte; and a later container has all
// of it.
func ImageIsNeverWritten(t *testing.T, s *Step) {
	RequireRoot(t)
	// A copy of the root filesystem: a step that writes into its image (a
	// learner's, before the overlay) must not take the other tests' with it.
	image := filepath.Join(scratch(t, s), "rootfs")
	copyRootfs(t, s, image)
	before := tree(t, image)
	r := s.Exec(t, s.RunIn(image, "sh", "-c", "rm -rf /usr /etc /bin && echo new >/new && echo $(echo /*)")...)
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.NotContains(t, r.Stdout, "/usr", "the container could not delete /usr")
	assert.Contains(t, r.Stdout, "/new")
	assert.Equal(t, before, tree(t, image), "the root filesystem changed")
	r = s.Exec(t, s.RunIn(image, "ls", "-d", "/usr/bin", "/etc/passwd")...)
	assert.Equal(t, 0, r.Status, "a later container: %s", r.Stderr)
	r = s.Exec(t, s.RunIn(image, "ls", "/new")...)
	assert.NotEqual(t, 0, r.Status, "a later container sees the file of an earlier one")
}

// ContainersDoNotSeeEachOthersWrites checks that two containers running at
// once each have their own changes.
func ContainersDoNotSeeEachOthersWrites(t *testing.T, s *Step) {
	RequireRoot(t)
	a := Start(t, s.Command(t, s.RunArgs("sh", "-c", "echo a >/shared && echo ready && read line; cat /shared")...))
	a.WaitFor(t, "ready")
	b := s.Run(t, "sh", "-c", "cat /shared; echo b >/shared && cat /shared")
	assert.Equal(t, "b\n", b.Stdout)
	assert.Contains(t, b.Stderr, "/shared: No such file or directory", "the second container sees the first one's file")
	require.NoError(t, a.Stdin.Close())
	assert.Equal(t, "a", a.ReadLine(t), "the first container's file changed")
	assert.Equal(t, 0, a.Wait(t).Status)
}

// OtherRunsLeaveALiveContainerAlone checks that a run that cleans up after
// killed ones leaves the directory of a live container alone, even from a
// PID namespace where that container's run cannot be seen: its lock says
// it is in use.
func OtherRunsLeaveALiveContainerAlone(t *testing.T, s *Step) {
	RequireRoot(t)
	dir := scratch(t, s)
	a := Start(t, s.Command(t, s.RunArgs("-scratch", dir, "sh", "-c", "echo a >/mine && echo ready && read line; cat /mine")...))
	a.WaitFor(t, "ready")
	names := containerDirs(t, dir)
	require.Len(t, names, 1)
	b := exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", s.Bin}, s.RunArgs("-scratch", dir, "true")...)...)
	r := Finish(t, b)
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.DirExists(t, filepath.Join(dir, names[0], "upper"), "another run removed a live container's changes")
	require.NoError(t, a.Stdin.Close())
	assert.Equal(t, "a", a.ReadLine(t))
	assert.Equal(t, 0, a.Wait(t).Status)
}

// ChangesAreInTheUpperLayer checks that, while a container runs, a file it
// writes is in its upper directory in the scratch directory, and one it
// deletes is a whiteout there (a character device 0/0); and that when it
// ends, exits or is killed, or its run is killed (then the next run cleans
// up), nothing is left: no scratch directory, no overlay mount.
func ChangesAreInTheUpperLayer(t *testing.T, s *Step) {
	RequireRoot(t)
	for _, end := range []string{"command exits", "command killed", "run killed"} {
		t.Run(end, func(t *testing.T) {
			dir := scratch(t, s)
			p := Start(t, s.Command(t, s.RunArgs("-scratch", dir, "sh", "-c",
				"echo written >/new && rm /etc/hostname && echo ready && read line; exit 0")...))
			p.WaitFor(t, "ready")
			names := containerDirs(t, dir)
			require.Len(t, names, 1, "one directory for the container")
			upper := filepath.Join(dir, names[0], "upper")
			assert.Equal(t, "written\n", readFile(t, filepath.Join(upper, "new")))
			var st unix.Stat_t
			require.NoError(t, unix.Lstat(filepath.Join(upper, "etc/hostname"), &st))
			assert.Equal(t, uint32(unix.S_IFCHR), st.Mode&unix.S_IFMT, "the deleted file is not a whiteout")
			assert.Equal(t, uint64(0), st.Rdev, "a whiteout is device 0/0")
			assert.NotContains(t, readFile(t, "/proc/self/mountinfo"), dir, "the overlay is mounted on the host")

			switch end {
			case "command exits":
				require.NoError(t, p.Stdin.Close())
				assert.Equal(t, 0, p.Wait(t).Status)
			case "command killed":
				require.NoError(t, unix.Kill(ChildPID(t, p.Cmd.Process.Pid), unix.SIGKILL))
				assert.Equal(t, 137, p.Wait(t).Status)
			case "run killed":
				child := ChildPID(t, p.Cmd.Process.Pid)
				require.NoError(t, unix.Kill(p.Cmd.Process.Pid, unix.SIGKILL))
				p.Wait(t)
				require.Eventually(t, func() bool { return Gone(child) }, patience, time.Millisecond, "the container outlived its run")
				assert.Len(t, containerDirs(t, dir), 1, "a killed run cannot clean up")
				r := s.Run(t, "-scratch", dir, "true")
				require.Equal(t, 0, r.Status, r.Stderr)
			}
			assert.Empty(t, containerDirs(t, dir), "left in the scratch directory")
			assert.NotContains(t, readFile(t, "/proc/self/mountinfo"), dir, "an overlay is left mounted on the host")
		})
	}
}

// KeepKeepsTheChanges checks that -keep keeps the container's changes, and
// says where.
func KeepKeepsTheChanges(t *testing.T, s *Step) {
	RequireRoot(t)
	dir := scratch(t, s)
	layers := filepath.Join(dir, "containers")
	r := s.Run(t, "-scratch", layers, "-keep", "sh", "-c", "echo kept >/new")
	require.Equal(t, 0, r.Status, r.Stderr)
	OneLine(t, r.Stderr)
	kept := filepath.Join(layers, "kept")
	entries, err := os.ReadDir(kept)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, s.Name+": the container's changes are kept in "+filepath.Join(kept, entries[0].Name())+"\n", r.Stderr)
	assert.Equal(t, "kept\n", readFile(t, filepath.Join(kept, entries[0].Name(), "new")))
	assert.Equal(t, []string{"kept"}, containerDirs(t, layers))
	r = s.Run(t, "-scratch", layers, "true")
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.DirExists(t, filepath.Join(kept, entries[0].Name()), "a later run removed the kept changes")
}

// ScratchOfSomeoneElsesIsRefused checks that run refuses a -scratch that
// is not empty and not its own, and leaves it as it was: it removes what
// it finds in a scratch directory of its own.
func ScratchOfSomeoneElsesIsRefused(t *testing.T, s *Step) {
	RequireRoot(t)
	dir := scratch(t, s)
	precious := filepath.Join(dir, "2024-01")
	require.NoError(t, os.MkdirAll(precious, 0o755))
	r := s.Run(t, "-scratch", dir, "true")
	assert.Equal(t, 1, r.Status)
	OneLine(t, r.Stderr)
	assert.Contains(t, r.Stderr, "-scratch "+dir+": not empty, and not a scratch directory of this program's")
	assert.DirExists(t, precious)
}

// ScratchInsideTheImageIsRefused checks that run refuses a -scratch in
// the root filesystem, where the container's changes would go into the
// image (with -keep, for every later container to see), and one that holds
// the root filesystem; that it knows the directories by what they are, not
// by their names (a symbolic link, a bind mount); and that it refuses in
// one line, before it makes anything.
func ScratchInsideTheImageIsRefused(t *testing.T, s *Step) {
	RequireRoot(t)
	// A scratch directory of run's that holds a throw-away copy of the
	// image.
	base := scratch(t, s)
	holder := filepath.Join(base, "holder")
	image := filepath.Join(holder, "rootfs")
	require.NoError(t, os.Mkdir(holder, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(holder, ".containers-from-scratch"), nil, 0o600))
	copyRootfs(t, s, image)
	link, bound := filepath.Join(base, "link"), filepath.Join(base, "bound")
	require.NoError(t, os.Symlink(filepath.Join(image, "tmp"), link))
	require.NoError(t, os.Mkdir(bound, 0o755))
	inside := func(scratch string) string {
		return "-scratch " + scratch + " is inside the root filesystem " + image + ": the container's changes would go into the image; give -scratch a directory outside it"
	}
	cases := []struct{ name, scratch, want string }{
		{"inside", filepath.Join(image, "tmp/scratch"), ""},
		{"the same directory", image, ""},
		{"through a symbolic link", filepath.Join(link, "scratch"), ""},
		{"in a bind mount of it", filepath.Join(bound, "tmp/scratch"), ""},
		{"holding it", holder, "-scratch " + holder + " holds the root filesystem " + image + ": run removes what it finds in -scratch; give -scratch a directory outside it"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.want == "" {
				c.want = inside(c.scratch)
			}
			before := tree(t, base)
			cmd := exec.Command(s.Bin, s.RunIn(image, "-scratch", c.scratch, "-keep", "sh", "-c", "echo hi >/hello")...)
			if strings.HasPrefix(c.scratch, bound) {
				// The bind mount, in a mount namespace of the test's own.
				cmd = exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c",
					`mount --bind "$1" "$2" && shift 2 && exec "$0" "$@"`, s.Bin, image, bound}, cmd.Args[1:]...)...)
			}
			r := Finish(t, cmd)
			assert.Equal(t, 1, r.Status)
			OneLine(t, r.Stderr)
			assert.Equal(t, s.Name+": "+c.want+"\n", r.Stderr)
			assert.Equal(t, before, tree(t, base), "something was made, or changed")
		})
	}
}

// ReadOnlyRootfsWorks checks that the root filesystem may be read only, as
// an image is: a read-only bind mount of it, in a mount namespace of the
// test's own.
func ReadOnlyRootfsWorks(t *testing.T, s *Step) {
	RequireRoot(t)
	ro := filepath.Join(t.TempDir(), "ro")
	require.NoError(t, os.Mkdir(ro, 0o755))
	s.reachable(ro)
	script := `mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" && ! touch "$2/x" 2>/dev/null &&
		"$0" run -rootfs "$2" -scratch "$3" sh -c 'echo written >/x && cat /x'`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, s.Bin, s.Rootfs, ro, scratch(t, s))
	r := Finish(t, cmd)
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Equal(t, "written\n", r.Stdout)
}

// ScratchOnOverlayIsOneLine checks that a scratch directory on a file
// system that cannot hold an upper layer (here overlayfs, in a mount
// namespace of the test's own) gets one line that says so.
func ScratchOnOverlayIsOneLine(t *testing.T, s *Step) {
	RequireRoot(t)
	dir := t.TempDir()
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		require.NoError(t, os.Mkdir(filepath.Join(dir, d), 0o755))
	}
	script := `mount -t overlay overlay -o lowerdir="$1/lower",upperdir="$1/upper",workdir="$1/work" "$1/merged" &&
		"$0" run -rootfs "$2" -scratch "$1/merged/scratch" true`
	r := Finish(t, exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, s.Bin, dir, s.Rootfs))
	assert.Equal(t, 1, r.Status)
	OneLine(t, r.Stderr)
	assert.Contains(t, r.Stderr, "-scratch "+dir+"/merged/scratch is on overlayfs, which cannot hold an overlay's upper layer")
}

// OverlayErrorsAreExplained checks that the overlay mount's errors come in
// one line that says what they mean here. strace makes the call fail: the
// child's second mount is the overlay's.
func OverlayErrorsAreExplained(t *testing.T, s *Step) {
	errorsAreExplained(t, s, "mount:error=%s:when=2", map[string]string{
		"ENODEV": regexp.QuoteMeta("mount overlay: no such device: this kernel has no overlay file system (modprobe overlay)"),
		"EINVAL": regexp.QuoteMeta("mount overlay: invalid argument: the upper directory's file system cannot hold an upper layer, or the layers do not fit together (dmesg says which)"),
	})
}

// noProcRootfs makes a root filesystem without /proc, whose mount fails.
func noProcRootfs(t *testing.T) string {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(dir+"/README", []byte("a root filesystem without /proc\n"), 0o644))
	return dir
}

// SetupFailureIsOneLine checks that a failing setup call is reported in one
// line that names it.
func SetupFailureIsOneLine(t *testing.T, s *Step) {
	RequireRoot(t)
	noProc := noProcRootfs(t)
	r := s.Exec(t, s.RunIn(noProc, "true")...)
	assert.Equal(t, 1, r.Status)
	OneLine(t, r.Stderr)
	assert.Contains(t, r.Stderr, "mount proc on /proc: no such file or directory")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(data)
}

// InteractiveShellExitsCleanly checks what a learner does first: start a
// shell on a terminal, type into it, exit. The shell must see the terminal
// as its own and leave it without complaint.
func InteractiveShellExitsCleanly(t *testing.T, s *Step) {
	s.requireRoot(t)
	cmd := s.Command(t, s.RunArgs("sh")...)
	out := RunOnTerminal(t, cmd, "echo pid=$$\nexit 3\n")
	assert.Equal(t, 3, cmd.ProcessState.ExitCode(), "terminal output:\n%s", out)
	assert.Contains(t, out, "pid=")
	assert.NotContains(t, out, "Cannot set tty process group")
	assert.NotContains(t, out, "goroutine ")
}

// BenchmarkStart measures a container's whole life, from run to the exit of
// a command that does nothing: go test -bench . -run '^$' ./step05-proc.
func BenchmarkStart(b *testing.B, s *Step) {
	if os.Geteuid() != 0 && s.NeedsRoot {
		b.Skip("needs root to create namespaces")
	}
	for i := 0; i < b.N; i++ {
		if err := exec.Command(s.Bin, s.RunArgs("/bin/true")...).Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// --- step06: cgroups ---

// cgroupName is the name of the cgroup a step06 run with PID run makes: its
// PID and its start time (field 22 of /proc/PID/stat).
func cgroupName(t *testing.T, run int) string {
	t.Helper()
	stat := readFile(t, fmt.Sprintf("/proc/%d/stat", run))
	fields := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	return fmt.Sprintf("%d-%s", run, fields[19])
}

// cgroupDirs returns the directories of the cgroup a step06 run with PID
// run makes: one on cgroup v2, one per controller on v1 (by controller).
func cgroupDirs(t *testing.T, run int) map[string]string {
	t.Helper()
	var st unix.Statfs_t
	require.NoError(t, unix.Statfs("/sys/fs/cgroup", &st))
	leaf := "containers-from-scratch/" + cgroupName(t, run)
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		dir := "/sys/fs/cgroup/" + leaf
		return map[string]string{"pids": dir, "memory": dir, "cpu": dir, "cpuacct": dir}
	}
	dirs := map[string]string{}
	for _, c := range []string{"pids", "memory", "cpu", "cpuacct"} {
		dirs[c] = "/sys/fs/cgroup/" + c + "/" + leaf
	}
	return dirs
}

// CommandStartsInItsCgroup checks that the command runs in its run's own
// cgroup, under every controller that limits it, as the host sees it (from
// step11 on, the container sees that cgroup as "/": CgroupIsRootInside).
func CommandStartsInItsCgroup(t *testing.T, s *Step) {
	RequireRoot(t)
	p := Start(t, s.Command(t, s.RunArgs("sh", "-c", "echo ready; read line; exit 0")...))
	p.WaitFor(t, "ready")
	lines := strings.Split(strings.TrimSpace(readFile(t, fmt.Sprintf("/proc/%d/cgroup", ChildPID(t, p.Cmd.Process.Pid)))), "\n")
	want := "/containers-from-scratch/" + cgroupName(t, p.Cmd.Process.Pid)
	require.NoError(t, p.Stdin.Close())
	require.Equal(t, 0, p.Wait(t).Status)

	v2 := len(lines) == 1
	checked := 0
	for _, line := range lines {
		// hierarchy-ID:controllers:path; v2's single line has no controllers.
		parts := strings.SplitN(line, ":", 3)
		require.Len(t, parts, 3, line)
		for _, c := range strings.Split(parts[1], ",") {
			if v2 || c == "pids" || c == "memory" || c == "cpu" {
				assert.Equal(t, want, parts[2], "not in the container's cgroup: %s", line)
				checked++
			}
		}
	}
	assert.NotZero(t, checked, "no cgroup to check in:\n%s", strings.Join(lines, "\n"))
}

// ForkBombIsStopped checks that the pids limit stops a command that forks
// without end, and that the machine keeps working.
func ForkBombIsStopped(t *testing.T, s *Step) {
	RequireRoot(t)
	// It counts the processes it started; the shell gives up at the first
	// fork the kernel refuses.
	script := `i=0; while [ $i -lt 200 ]; do sleep 100 & i=$((i+1)); echo $i; done`
	r := s.Run(t, "-pids", "16", "sh", "-c", script)
	assert.NotEqual(t, 0, r.Status)
	assert.Contains(t, r.Stderr, "fork", "no fork was ever refused")
	started := strings.Fields(r.Stdout)
	require.NotEmpty(t, started, r.Stderr)
	// The shell is the sixteenth process.
	assert.LessOrEqual(t, len(started), 15, "more processes than -pids 16 allows")
	assert.GreaterOrEqual(t, len(started), 12, "far fewer processes than -pids 16 allows")
}

// MemoryHogIsKilled checks that a command that allocates past the memory
// limit is killed, and run exits 137 (128+SIGKILL).
func MemoryHogIsKilled(t *testing.T, s *Step) {
	RequireRoot(t)
	// The string doubles until 128 MiB, which the limit must not allow.
	hog := `s=x; while [ ${#s} -lt 134217728 ]; do s=$s$s; done; echo survived`
	r := s.Run(t, "-memory", "32M", "bash", "-c", hog)
	assert.Equal(t, 137, r.Status)
	assert.NotContains(t, r.Stdout, "survived")
	// The same hog with room enough lives: the kill above was the limit's.
	r = s.Run(t, "-memory", "1G", "bash", "-c", hog)
	assert.Equal(t, "survived\n", r.Stdout, r.Stderr)
}

// favourCPU gives the cgroup dir, and its parent, the course's, the most
// weight the kernel allows against the machine's other processes, and
// puts the parent's weight back when the test ends. The CPU tests of all
// steps, which go test may run at once, take turns: each changes the
// parent they share.
func favourCPU(t *testing.T, dir string) {
	t.Helper()
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "containers-from-scratch-cpu-test.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	require.NoError(t, err)
	t.Cleanup(func() { lock.Close() }) // registered first: it runs last, after the weight is back
	require.NoError(t, unix.Flock(int(lock.Fd()), unix.LOCK_EX))
	file, most := "cpu.weight", "10000" // v2
	if _, err := os.Stat(dir + "/cpu.shares"); err == nil {
		file, most = "cpu.shares", "262144" // v1
	}
	for _, d := range []string{filepath.Dir(dir), dir} {
		path := filepath.Join(d, file)
		was, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, []byte(most), 0))
		if d != dir { // the container's own goes with its cgroup
			t.Cleanup(func() { assert.NoError(t, os.WriteFile(path, was, 0)) })
		}
	}
}

// cpuStats reads the CPU time a cgroup used and how often it was throttled.
func cpuStats(t *testing.T, dirs map[string]string) (time.Duration, int) {
	t.Helper()
	stat := func(dir, key string) int64 {
		for _, line := range strings.Split(readFile(t, dir+"/cpu.stat"), "\n") {
			if v, ok := strings.CutPrefix(line, key+" "); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				require.NoError(t, err)
				return n
			}
		}
		t.Fatalf("no %s in %s/cpu.stat", key, dir)
		return 0
	}
	throttled := int(stat(dirs["cpu"], "nr_throttled"))
	if dirs["cpu"] == dirs["cpuacct"] { // v2
		return time.Duration(stat(dirs["cpu"], "usage_usec")) * time.Microsecond, throttled
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(readFile(t, dirs["cpuacct"]+"/cpuacct.usage")), 10, 64)
	require.NoError(t, err)
	return time.Duration(ns), throttled
}

// CgroupIsRemoved checks that no cgroup is left after the container ends:
// when its command exits, when it is killed, and when run itself is killed
// (the next run cleans up).
func CgroupIsRemoved(t *testing.T, s *Step) {
	RequireRoot(t)
	gone := func(t *testing.T, dirs map[string]string) {
		t.Helper()
		for _, dir := range dirs {
			assert.NoDirExists(t, dir)
		}
	}
	t.Run("command exits", func(t *testing.T) {
		p := Start(t, s.Command(t, s.RunArgs("sh", "-c", "echo ready; read line")...))
		p.WaitFor(t, "ready")
		dirs := cgroupDirs(t, p.Cmd.Process.Pid)
		assert.DirExists(t, dirs["pids"], "no cgroup while the container runs")
		require.NoError(t, p.Stdin.Close())
		p.Wait(t)
		gone(t, dirs)
	})
	t.Run("command killed", func(t *testing.T) {
		p := Start(t, s.Command(t, s.RunArgs("sh", "-c", "echo ready; exec sleep 100")...))
		p.WaitFor(t, "ready")
		dirs := cgroupDirs(t, p.Cmd.Process.Pid)
		require.NoError(t, unix.Kill(ChildPID(t, p.Cmd.Process.Pid), unix.SIGKILL))
		assert.Equal(t, 137, p.Wait(t).Status)
		gone(t, dirs)
	})
	t.Run("run killed, then a new run", func(t *testing.T) {
		p := Start(t, s.Command(t, s.RunArgs("sh", "-c", "echo ready; exec sleep 100")...))
		p.WaitFor(t, "ready")
		dirs := cgroupDirs(t, p.Cmd.Process.Pid)
		// Until the check below, no other run, of another test package,
		// may clean the killed run's cgroup up: a run does that under an
		// exclusive lock of the parent, and the test holds a shared one.
		var held []int
		for _, dir := range dirs {
			fd, err := unix.Open(filepath.Dir(dir), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			require.NoError(t, err)
			require.NoError(t, unix.Flock(fd, unix.LOCK_SH))
			held = append(held, fd)
		}
		command := ChildPID(t, p.Cmd.Process.Pid)
		require.NoError(t, p.Cmd.Process.Kill())
		_ = p.Cmd.Wait()
		require.Eventually(t, func() bool { return Gone(command) }, patience, time.Millisecond)
		assert.DirExists(t, dirs["pids"], "run had no chance to remove its cgroup")
		for _, fd := range held {
			unix.Close(fd)
		}
		r := s.Run(t, "true")
		require.Equal(t, 0, r.Status, r.Stderr)
		gone(t, dirs)
	})
}

// BadLimitsAreUsageErrors checks that limits that make no sense, or that
// the kernel would refuse, get the usage line and status 2.
func BadLimitsAreUsageErrors(t *testing.T, s *Step) {
	for _, args := range [][]string{
		{"-memory", "lots"}, {"-memory", "12X"}, {"-memory", "1K"},
		{"-pids", "0"}, {"-pids", "5"}, {"-pids", "5000000"},
		{"-cpus", "-1"}, {"-cpus", "0.001"}, {"-cpus", "NaN"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := s.Exec(t, append(append([]string{"run"}, args...), "true")...)
			assert.Equal(t, 2, r.Status)
			assert.Contains(t, r.Stderr, "usage: ")
			assert.NotContains(t, r.Stderr, "goroutine ")
		})
	}
}
