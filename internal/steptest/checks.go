package steptest

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
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
		require.Eventually(t, func() bool { return Gone(command) }, 5*time.Second, time.Millisecond,
			"try %d: the command (PID %d) outlived the killed program", i+1, command)
	}
}

// CommandNotFoundExits127 checks that a command that does not exist gets
// the status a shell gives it, 127, and one line that names it.
func CommandNotFoundExits127(t *testing.T, s *Step) {
	s.requireRoot(t)
	for _, name := range []string{"no-such-command", "/no/such/command"} {
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
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Equal(t, "changed-inside\n", r.Stdout)
	after, err := os.Hostname()
	require.NoError(t, err)
	assert.Equal(t, before, after, "the host's hostname changed")
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
		s.withRootfs("child", "hostname")...)
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
}

// --- step05: mount namespace and /proc ---

// PsSeesOnlyTheContainer checks that ps lists the container's processes
// and no others, PID 1 first.
func PsSeesOnlyTheContainer(t *testing.T, s *Step) {
	RequireRoot(t)
	// ps runs once sleep has started: until it execs, the shell's fork of
	// it is another "sh".
	r := s.Run(t, "sh", "-c", `sleep 100 & until [ "$(cat /proc/$!/comm)" = sleep ]; do :; done; ps -e -o pid=,comm=`)
	require.Equal(t, 0, r.Status, r.Stderr)
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	require.Len(t, lines, 3, "ps lists more than sh, sleep and itself:\n%s", r.Stdout)
	var comms []string
	for _, line := range lines {
		comms = append(comms, strings.Fields(line)[1])
	}
	assert.Equal(t, []string{"1", "sh"}, strings.Fields(lines[0]))
	assert.Equal(t, []string{"sh", "sleep", "ps"}, comms)
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
	containerProc := " " + s.Rootfs + "/proc "
	script := `"$0" run -rootfs "$1" sh -c 'echo ready; read line; exit 0'; echo "status $?"; cat /proc/self/mountinfo`

	for _, kill := range []bool{false, true} {
		t.Run(map[bool]string{false: "command exits", true: "command killed"}[kill], func(t *testing.T) {
			cmd := exec.Command("unshare", "--mount", "--propagation", "shared", "sh", "-c", script, s.Bin, s.Rootfs)
			p := Start(t, cmd)
			p.WaitFor(t, "ready")

			host := readFile(t, fmt.Sprintf("/proc/%d/mountinfo", cmd.Process.Pid))
			require.Regexp(t, `(?m)^\S+ \S+ \S+ \S+ / \S+ shared:`, host, "the simulated host's / is not shared")
			assert.NotContains(t, host, containerProc, "the container's /proc shows on the host during the run")

			want := "status 0"
			if kill {
				run := ChildPID(t, cmd.Process.Pid)
				require.NoError(t, unix.Kill(ChildPID(t, run), unix.SIGKILL))
				want = "status 137"
			} else {
				require.NoError(t, p.Stdin.Close())
			}
			p.WaitFor(t, want)
			r := p.Wait(t)
			require.Equal(t, 0, r.Status, r.Stderr)
			assert.NotContains(t, r.Stdout, containerProc, "the container's /proc is left on the host")
		})
	}
}

// SetupFailureIsOneLine checks that a failing setup call is reported in one
// line that names it.
func SetupFailureIsOneLine(t *testing.T, s *Step) {
	RequireRoot(t)
	noProc := t.TempDir()
	require.NoError(t, os.WriteFile(noProc+"/README", []byte("a root filesystem without /proc\n"), 0o644))
	r := s.Exec(t, "run", "-rootfs", noProc, "true")
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
