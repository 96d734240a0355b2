package steptest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The checks below hold the supervisor of plumbing.go to what it promises
// in the windows where a race could break it. Such a window is a few
// microseconds wide, so a test holds it open: strace stops the program with
// SIGSTOP at the entry of one system call (inject=SYSCALL:signal=SIGSTOP),
// the test waits until the program is stopped there, acts inside the
// window, and lets the program go on with SIGCONT. So the test hits the
// window every time, however busy the machine.

// patience is how long a test waits for what must happen: far longer than
// it takes, even in an emulated VM on a busy machine, and only spent when
// something is wrong: a third of CommandTimeout, and no less than 10 s,
// however short a CommandTimeout the mutation check sets.
var patience = max(CommandTimeout/3, 10*time.Second)

// syscalls names the system calls the tests stop at, for strace.
var syscalls = map[int]string{
	unix.SYS_PRCTL:       "prctl",
	unix.SYS_SETHOSTNAME: "sethostname",
	unix.SYS_MKDIRAT:     "mkdirat",
	unix.SYS_SOCKET:      "socket",
	unix.SYS_SYNCFS:      "syncfs",
	unix.SYS_SENDTO:      "sendto",
}

// StoppedAt starts the step's program with these arguments under strace,
// which stops it, or the first of its children that gets there, with
// SIGSTOP just after its first call of the system call nr; SIGCONT lets it
// go on. It returns the started strace and the program's PID.
func (s *Step) StoppedAt(t *testing.T, nr int, args ...string) (*Started, int) {
	t.Helper()
	return s.traced(t, syscalls[nr]+":signal=SIGSTOP:when=1", args...)
}

// RunStoppedAt is StoppedAt for run alone: its child, which execs itself
// first thing, goes on untraced, and is not stopped at its own calls.
func (s *Step) RunStoppedAt(t *testing.T, nr int, args ...string) (*Started, int) {
	t.Helper()
	cmd, log := s.stracedWith(t, []string{"-b", "execve"}, syscalls[nr]+":signal=SIGSTOP:when=1", args...)
	p := Start(t, cmd)
	p.Log = log
	return p, s.tracedRun(t, cmd)
}

// HeldBefore starts the step's program with these arguments under strace,
// which holds each of its threads and children that calls the system call
// nr, before the call runs, for hold. It returns the started strace and
// the program's PID.
func (s *Step) HeldBefore(t *testing.T, nr int, hold time.Duration, args ...string) (*Started, int) {
	t.Helper()
	return s.traced(t, fmt.Sprintf("%s:delay_enter=%d", syscalls[nr], hold.Microseconds()), args...)
}

// RunHeldBefore is HeldBefore for run alone: its child, which execs
// itself first thing, goes on untraced, at full speed.
func (s *Step) RunHeldBefore(t *testing.T, nr int, hold time.Duration, args ...string) (*Started, int) {
	t.Helper()
	return s.RunHeldFrom(t, nr, 1, hold, args...)
}

// RunHeldFrom is RunHeldBefore from run's nth call of nr on.
func (s *Step) RunHeldFrom(t *testing.T, nr, nth int, hold time.Duration, args ...string) (*Started, int) {
	t.Helper()
	inject := fmt.Sprintf("%s:delay_enter=%d:when=%d+", syscalls[nr], hold.Microseconds(), nth)
	cmd, log := s.stracedWith(t, []string{"-b", "execve"}, inject, args...)
	p := Start(t, cmd)
	p.Log = log
	return p, s.tracedRun(t, cmd)
}

func (s *Step) traced(t *testing.T, inject string, args ...string) (*Started, int) {
	t.Helper()
	cmd, log := s.straced(t, inject, args...)
	p := Start(t, cmd)
	p.Log = log
	return p, s.tracedRun(t, cmd)
}

// straced prepares the step's program with these arguments under strace,
// which injects inject, and returns it with strace's log file. The log is
// shown when the test fails.
func (s *Step) straced(t *testing.T, inject string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	return s.stracedWith(t, nil, inject, args...)
}

// stracedWith is straced with more of strace's options.
func (s *Step) stracedWith(t *testing.T, options []string, inject string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	name, _, _ := strings.Cut(inject, ":")
	return s.stracedTracing(t, options, name, inject, args...)
}

// stracedTracing is stracedWith that logs the system calls in trace (a
// list such as "sethostname,write"), not only the one it injects into, if
// any.
func (s *Step) stracedTracing(t *testing.T, options []string, trace, inject string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	_, err := exec.LookPath("strace")
	require.NoError(t, err, "strace is needed to hit a race every time (apt-get install strace)")
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	t.Cleanup(cancel)
	log := filepath.Join(t.TempDir(), "strace.log")
	t.Cleanup(func() {
		if t.Failed() {
			data, _ := os.ReadFile(log)
			t.Logf("strace:\n%s", data)
		}
	})
	options = append(append([]string{"-f", "-qq", "-o", log}, options...), "-e", "signal=!SIGURG", "-e", "trace="+trace)
	if inject != "" {
		options = append(options, "-e", "inject="+inject)
	}
	options = append(options, s.Bin)
	cmd := exec.CommandContext(ctx, "env", Plain("strace", append(options, args...)...)...)
	cmd.WaitDelay = waitDelay
	return cmd, log
}

// tracedRun returns the PID of the step's program that strace, cmd,
// started. (strace may fork helpers of its own first.)
func (s *Step) tracedRun(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	var run int
	require.Eventually(t, func() bool {
		for _, pid := range Children(cmd.Process.Pid) {
			if strings.HasPrefix(Cmdline(pid), s.Bin+" ") {
				run = pid
				return true
			}
		}
		return false
	}, patience, time.Millisecond, "strace never started %s", s.Bin)
	// A test that fails may leave the program's child stopped, and the
	// program waiting for it, after strace is gone: a killed program takes
	// its child with it (the parent-death signal).
	t.Cleanup(func() {
		if strings.HasPrefix(Cmdline(run), s.Bin+" ") {
			_ = unix.Kill(run, unix.SIGKILL)
		}
	})
	return run
}

// tasks returns the thread IDs of process pid.
func tasks(pid int) []string {
	dirs, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for i, dir := range dirs {
		dirs[i] = filepath.Base(dir)
	}
	return dirs
}

// children returns the children of process pid.
func Children(pid int) []int {
	var pids []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, task := range tasks {
		data, _ := os.ReadFile(task)
		for _, child := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(child); err == nil {
				pids = append(pids, n)
			}
		}
	}
	return pids
}

// stoppedIn reports whether process pid, all its threads, is stopped in
// the system call nr by the SIGSTOP that strace injected after it, as
// strace's log, log, says. The kernel cannot say: it names the call a
// thread stopped by a signal made in /proc/PID/task/TID/syscall on x86,
// but says -1 there on arm64.
func stoppedIn(log string, pid, nr int) bool {
	tasks := tasks(pid)
	if len(tasks) == 0 || !everyThreadStopped(pid) {
		return false
	}
	data, _ := os.ReadFile(log)
	for _, tid := range tasks {
		stop := regexp.MustCompile(`(?ms)^` + tid + ` +` + syscalls[nr] + `\(.*^` + tid + ` +--- stopped by SIGSTOP ---`)
		if stop.Match(data) {
			return true
		}
	}
	return false
}

// heldIn reports whether process pid, all its threads, is held by strace
// before the system call nr (delay_enter), which the kernel names on every
// architecture. (Only one thread is held, and only for a moment, as strace
// traces the call on its way.)
func heldIn(pid, nr int) bool {
	prefix := strconv.Itoa(nr) + " "
	held := false
	for _, task := range tasks(pid) {
		call, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task))
		if err != nil {
			return false
		}
		held = held || strings.HasPrefix(string(call), prefix)
	}
	return held && everyThreadStopped(pid)
}

// StoppedIn waits until process pid is stopped in the system call nr, by
// the strace whose log is log.
func StoppedIn(t *testing.T, log string, pid, nr int) {
	t.Helper()
	require.Eventually(t, func() bool { return stoppedIn(log, pid, nr) }, patience, time.Millisecond,
		"process %d never stopped in %s: %s", pid, syscalls[nr], describe(pid))
}

// ChildHeldIn waits until a child of process pid is held before the
// system call nr, and returns it.
func ChildHeldIn(t *testing.T, pid, nr int) int {
	t.Helper()
	return childWhere(t, pid, func(c int) bool { return heldIn(c, nr) }, "held before "+syscalls[nr])
}

// ChildStoppedIn waits until a child of process pid is stopped in the
// system call nr, by the strace whose log is log, and returns it. (Go's
// os/exec may start and end a child of its own first, to see what the
// kernel supports.)
func ChildStoppedIn(t *testing.T, log string, pid, nr int) int {
	t.Helper()
	return childWhere(t, pid, func(c int) bool { return stoppedIn(log, c, nr) }, "stopped in "+syscalls[nr])
}

// childWhere waits until a child of process pid is as found says, and
// returns it. It gives up as soon as pid has ended, which no child can be
// stopped in then: a step that never makes the call fails at once, not
// after the test's patience (a learner's, checking their step).
func childWhere(t *testing.T, pid int, found func(child int) bool, what string) int {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		over := ended(pid)
		for _, c := range Children(pid) {
			if found(c) {
				return c
			}
		}
		if over {
			require.FailNow(t, fmt.Sprintf("process %d ended, and no child of it was %s", pid, what))
		}
		if time.Now().After(deadline) {
			require.FailNow(t, fmt.Sprintf("no child of process %d %s in %s", pid, what, patience))
		}
		time.Sleep(time.Millisecond)
	}
}

// ended reports whether process pid has exited: gone, or a zombie.
func ended(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	return len(fields) == 0 || fields[0] == "Z" || fields[0] == "X"
}

// Cmdline is process pid's command line, its arguments joined by spaces.
func Cmdline(pid int) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(data), "\x00", " "))
}

// RunKilledBeforeItsChildIsArmedLeavesNothing kills run in the window
// between the fork of its child and the moment the kernel arms the child's
// parent-death signal (prctl PR_SET_PDEATHSIG): no signal can reach the
// child for run's death then, and the child must notice by itself that run
// has gone, rather than start the command with nobody to stop it.
func RunKilledBeforeItsChildIsArmedLeavesNothing(t *testing.T, s *Step) {
	RequireRoot(t)
	// The orphaned child goes to the nearest subreaper, as systemd is on a
	// learner's machine: this test, for the time it runs, which reaps it.
	require.NoError(t, unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
	t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	marker := fmt.Sprintf("%d.%d", 30000+rand.Intn(9999), rand.Intn(1000))
	// prctl must be held before it runs: the signal would be armed after.
	p, run := s.HeldBefore(t, unix.SYS_PRCTL, 2*time.Second, s.RunArgs("sleep", marker)...)
	child := ChildHeldIn(t, run, unix.SYS_PRCTL)
	t.Cleanup(func() {
		if strings.Contains(Cmdline(child), marker) {
			_ = unix.Kill(child, unix.SIGKILL)
		}
		var status unix.WaitStatus
		_, _ = unix.Wait4(child, &status, 0, nil)
	})
	require.NoError(t, unix.Kill(run, unix.SIGKILL))
	// The child goes on once strace lets it: it either exits, or becomes
	// the command.
	require.Eventually(t, func() bool {
		return Gone(child) || strings.HasPrefix(Cmdline(child), "sleep ")
	}, patience, time.Millisecond)
	assert.True(t, Gone(child), "the container (%q, PID %d) outlived the killed run", Cmdline(child), child)
	p.Wait(t)
}

// SignalsDuringSetupWaitForTheCommand sends signals to run while the child
// is still setting the container up. The child is then a Go program, not
// the command, and as PID 1 it would die of SIGINT or SIGTERM with a bare
// status 2, or print its goroutines on SIGQUIT. run must hold the signals
// until the command runs, and then pass them on: PID 1 drops those it has
// no handler for (the command keeps running); any other process dies of
// them. A signal sent to the child itself must not kill it either.
func SignalsDuringSetupWaitForTheCommand(t *testing.T, s *Step) {
	RequireRoot(t)
	pid1 := s.Run(t, "sh", "-c", "echo $$").Stdout == "1\n"
	for _, to := range []string{"run", "child"} {
		for _, sig := range []unix.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGQUIT} {
			t.Run(unix.SignalName(sig)+" to "+to, func(t *testing.T) {
				// sleep has no handlers: as PID 1 it drops the signal, at
				// any time. (A shell catches SIGINT while it waits.)
				var r Result
				for attempt := 1; ; attempt++ {
					p, run := s.StoppedAt(t, unix.SYS_SETHOSTNAME, s.RunArgs("sleep", "0.2")...)
					child := ChildStoppedIn(t, p.Log, run, unix.SYS_SETHOSTNAME)
					require.NoError(t, unix.Kill(map[string]int{"run": run, "child": child}[to], sig))
					require.NoError(t, unix.Kill(child, unix.SIGCONT))
					r = p.Wait(t)
					if !straceBroke(r.Stderr) || attempt == 3 {
						break
					}
					t.Logf("attempt %d: strace itself failed, not run: %s", attempt, r.Stderr)
				}
				assert.NotContains(t, r.Stderr, "goroutine ", "a Go program got the signal")
				switch {
				case pid1:
					assert.Equal(t, 0, r.Status, "the signal reached the child, not the command: %s", r.Stderr)
				case to == "run":
					assert.Equal(t, 128+int(sig), r.Status, "the signal never reached the command: %s", r.Stderr)
				default:
					// The child passes on what it caught, but a signal
					// still on its way when it execs is dropped.
					assert.Contains(t, []int{0, 128 + int(sig)}, r.Status, r.Stderr)
				}
			})
		}
	}
}

// TerminalKeysDuringSetupWaitForTheCommand types Ctrl-C and Ctrl-\ on the
// terminal while the child is still setting the container up: the terminal
// sends them to its foreground process group, which must still be run's,
// not the child's, until the command runs.
func TerminalKeysDuringSetupWaitForTheCommand(t *testing.T, s *Step) {
	RequireRoot(t)
	for key, sig := range map[string]string{"\x03": "SIGINT", "\x1c": "SIGQUIT"} {
		t.Run(sig, func(t *testing.T) {
			cmd, log := s.straced(t, "sethostname:signal=SIGSTOP:when=1", s.RunArgs("sleep", "0.2")...)
			term := StartOnTerminal(t, cmd)
			run := s.tracedRun(t, cmd)
			child := ChildStoppedIn(t, log, run, unix.SYS_SETHOSTNAME)
			term.Type(t, key)
			require.Eventually(t, func() bool {
				data, _ := os.ReadFile(log)
				return strings.Contains(string(data), "--- "+sig+" ")
			}, patience, time.Millisecond, "the key never sent %s", sig)
			childTasks := tasks(child)
			require.NoError(t, unix.Kill(child, unix.SIGCONT))
			out := term.Wait(t)
			// The terminal's signals come from the kernel (SI_KERNEL);
			// those run passes on, from a user (SI_USER). strace names the
			// thread that got one.
			data, _ := os.ReadFile(log)
			keys := regexp.MustCompile(fmt.Sprintf(`(?m)^(\d+) +--- %s \{si_signo=%s, si_code=SI_KERNEL`, sig, sig)).FindAllStringSubmatch(string(data), -1)
			require.NotEmpty(t, keys, "nobody got the key's signal")
			for _, k := range keys {
				assert.NotContains(t, childTasks, k[1], "the child got the key's signal, not run")
			}
			assert.NotContains(t, out, "goroutine ")
			assert.Equal(t, 0, cmd.ProcessState.ExitCode(), "the terminal showed:\n%s", out)
		})
	}
}

// SignalDuringCgroupSetupLeavesNoCgroup sends SIGTERM to run while it makes
// the container's cgroup: run must not die halfway, leaving the cgroup
// behind, but go on and remove it when the container ends.
func SignalDuringCgroupSetupLeavesNoCgroup(t *testing.T, s *Step) {
	RequireRoot(t)
	// A first run makes the cgroups' parent, so that the one mkdirat left
	// is the container's own cgroup's.
	r := s.Run(t, "true")
	require.Equal(t, 0, r.Status, r.Stderr)
	// run alone: step10's child makes its /dev with mkdirat too.
	p, run := s.RunStoppedAt(t, unix.SYS_MKDIRAT, s.RunArgs("true")...)
	dirs := cgroupDirs(t, run)
	StoppedIn(t, p.Log, run, unix.SYS_MKDIRAT)
	require.NoError(t, unix.Kill(run, unix.SIGTERM))
	// On cgroup v1 each hierarchy has its own mkdirat, which strace stops
	// once per thread: let run go on each time.
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			_ = unix.Kill(run, unix.SIGCONT)
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	r = p.Wait(t)
	assert.Equal(t, 0, r.Status, r.Stderr)
	for _, dir := range dirs {
		assert.NoDirExists(t, dir, "the cgroup of a run that got SIGTERM while making it")
	}
}

// EverySignalReachesTheCommand sends run, one at a time, the signals an
// init such as tini passes on, including those that would make a Go
// program print its goroutines and crash (ABRT, SYS, TRAP, ILL): each must
// reach the command, and none may end run.
func EverySignalReachesTheCommand(t *testing.T, s *Step) {
	s.requireRoot(t)
	names := []string{"HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "USR1", "USR2", "PIPE", "ALRM", "TERM", "WINCH", "SYS", "XCPU", "PWR"}
	script := ""
	for _, name := range names {
		script += fmt.Sprintf("trap 'echo got %s' %s; ", name, name)
	}
	script += "echo ready; while :; do sleep 0.01; done"
	p := Start(t, s.Command(t, s.RunArgs("sh", "-c", script)...))
	p.WaitFor(t, "ready")
	for _, name := range names {
		sig := unix.SignalNum("SIG" + name)
		require.NoError(t, p.Cmd.Process.Signal(sig))
		assert.Equal(t, "got "+name, p.ReadLine(t), "after SIG%s", name)
	}
	require.NoError(t, unix.Kill(ChildPID(t, p.Cmd.Process.Pid), unix.SIGKILL))
	r := p.Wait(t)
	assert.Equal(t, 137, r.Status, r.Stderr)
	assert.NotContains(t, r.Stderr, "goroutine ")
}

// BackgroundRunLeavesTheTerminalAlone starts run as a background job of an
// interactive shell ("run ... &"): the container must not take the terminal
// from the shell, which would then fail to read what is typed next, and
// exit.
func BackgroundRunLeavesTheTerminalAlone(t *testing.T, s *Step) {
	RequireRoot(t)
	marker := fmt.Sprintf("%d.%d", 40000+rand.Intn(9999), rand.Intn(1000))
	term := StartOnTerminal(t, exec.Command("env", Plain("bash", "--norc", "--noprofile", "-i")...))
	term.Type(t, strings.Join(append([]string{s.Bin}, s.RunArgs("sleep", marker)...), " ")+" &\n")
	// The window: once the container's command runs, it has taken the
	// terminal, or never will.
	var sleeper int
	require.Eventually(t, func() bool {
		out, _ := exec.Command("pgrep", "-f", "^sleep "+marker+"$").Output()
		sleeper, _ = strconv.Atoi(strings.TrimSpace(string(out)))
		return sleeper > 0
	}, patience, time.Millisecond, "the container never started")
	t.Cleanup(func() { _ = unix.Kill(sleeper, unix.SIGKILL) })
	term.Type(t, "echo still-$((6*7))\n")
	require.Eventually(t, func() bool {
		return strings.Contains(term.Shown(), "still-42") || term.Exited()
	}, patience, 5*time.Millisecond)
	_ = unix.Kill(sleeper, unix.SIGKILL)
	term.Type(t, "exit\n")
	out := term.Wait(t)
	assert.Contains(t, out, "still-42", "the shell lost its terminal to a container started in the background")
}

// TerminalComesBackAfterTheContainer runs a step from a script on a
// terminal: once the container, which had the terminal to itself, has
// ended, the script must have it back, or its next read stops it.
func TerminalComesBackAfterTheContainer(t *testing.T, s *Step) {
	s.requireRoot(t)
	script := strings.Join(append([]string{s.Bin}, s.RunArgs("true")...), " ") + `; read line; echo "got $line"`
	term := StartOnTerminal(t, exec.Command("env", Plain("bash", "--norc", "--noprofile", "-i")...))
	term.Type(t, "bash -c '"+script+"'\n")
	term.Type(t, "back\n")
	require.Eventually(t, func() bool {
		return strings.Contains(term.Shown(), "got back") || strings.Contains(term.Shown(), "Stopped")
	}, patience, 5*time.Millisecond, "the terminal showed:\n%s", term.Shown())
	term.Type(t, "exit\n")
	out := term.Wait(t)
	assert.Contains(t, out, "got back", "the script lost the terminal to the container that had ended")
}

// HelpListsTheOptions checks that -h prints the usage line and each
// option, on standard output, and exits 0.
func HelpListsTheOptions(t *testing.T, s *Step) {
	for _, flag := range []string{"-h", "-help", "--help"} {
		t.Run("run "+flag, func(t *testing.T) {
			r := s.Exec(t, "run", flag)
			assert.Equal(t, 0, r.Status, r.Stderr)
			assert.True(t, strings.HasPrefix(r.Stdout, "usage: "+s.Name+" run "), r.Stdout)
			if s.UsesRootfs {
				assert.Contains(t, r.Stdout, "-rootfs DIR")
			}
			assert.Empty(t, r.Stderr)
		})
	}
	for _, flag := range []string{"-h", "--help", "help"} {
		t.Run(flag, func(t *testing.T) {
			r := s.Exec(t, flag)
			assert.Equal(t, 0, r.Status, r.Stderr)
			assert.True(t, strings.HasPrefix(r.Stdout, "usage: "+s.Name+" run "), r.Stdout)
			assert.Contains(t, r.Stdout, "run -h")
		})
	}
}

// EnvironmentReachesTheCommand checks that the command gets run's
// environment, and that with none at all (env -i) it is still found, in
// the usual default PATH, as a shell would find it.
func EnvironmentReachesTheCommand(t *testing.T, s *Step) {
	s.requireRoot(t)
	cmd := s.Command(t, s.RunArgs("sh", "-c", `echo "$GREETING"`)...)
	cmd.Env = []string{"GREETING=hello from the host", "PATH=" + os.Getenv("PATH")}
	r := Finish(t, cmd)
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Equal(t, "hello from the host\n", r.Stdout)

	cmd = s.Command(t, s.RunArgs("sh", "-c", "echo found")...)
	cmd.Env = []string{}
	r = Finish(t, cmd)
	assert.Equal(t, 0, r.Status, r.Stderr)
	assert.Equal(t, "found\n", r.Stdout)
}

// CommandThatCannotRunExits126 checks that a command that is there but
// cannot run, a directory or a file without execute permission, gets the
// status a shell gives it, 126, and one line that says why.
func CommandThatCannotRunExits126(t *testing.T, s *Step) {
	s.requireRoot(t)
	dir := t.TempDir()
	where, name := dir, dir+"/not-a-program"
	if s.UsesRootfs {
		where, name = s.Rootfs, "/not-a-program"
	}
	require.NoError(t, os.WriteFile(where+"/not-a-program", []byte("just text\n"), 0o644))
	t.Cleanup(func() { os.Remove(where + "/not-a-program") })
	for _, c := range []struct{ command, why string }{
		{"/", "it is a directory"},
		{name, "permission denied"},
	} {
		t.Run(c.command, func(t *testing.T) {
			r := s.Run(t, c.command)
			assert.Equal(t, 126, r.Status)
			OneLine(t, r.Stderr)
			assert.Contains(t, r.Stderr, c.command+": cannot run it: "+c.why)
		})
	}
}

// EmptyRootfsIsAUsageError checks that -rootfs "" is refused as a mistake
// on the command line, not taken for the current directory.
func EmptyRootfsIsAUsageError(t *testing.T, s *Step) {
	RequireRoot(t)
	r := s.Exec(t, "run", "-rootfs", "", "true")
	assert.Equal(t, 2, r.Status)
	assert.Contains(t, r.Stderr, "-rootfs is empty")
	assert.Contains(t, r.Stderr, "usage: ")
}

// describe tells what a process is doing, for a failed test's message.
func describe(pid int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q", Cmdline(pid))
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for _, task := range tasks {
		call, _ := os.ReadFile(task + "/syscall")
		stat, _ := os.ReadFile(task + "/stat")
		fmt.Fprintf(&b, "\n  %s: %s; %s", filepath.Base(task), strings.TrimSpace(string(call)), stat)
	}
	return b.String()
}

// SignalDispositionsReachTheCommand checks that the command starts, on a
// terminal, with no signal blocked or ignored that the shell that started
// run did not block or ignore, and that one it ignored stays ignored
// ("nohup run ..."). It reads /proc/self/status, so the step must have a
// /proc inside (every step but step04).
func SignalDispositionsReachTheCommand(t *testing.T, s *Step) {
	s.requireRoot(t)
	for _, c := range []struct{ name, trap, ignored string }{
		{"none ignored", "", "0000000000000000"},
		{"SIGHUP ignored", "trap '' HUP; ", "0000000000000001"},
	} {
		t.Run(c.name, func(t *testing.T) {
			run := strings.Join(append([]string{s.Bin}, s.RunArgs("grep", "-E", "'^Sig(Blk|Ign)'", "/proc/self/status")...), " ")
			cmd := exec.Command("env", Plain("sh", "-c", c.trap+"exec "+run)...)
			out := RunOnTerminal(t, cmd, "")
			require.Equal(t, 0, cmd.ProcessState.ExitCode(), out)
			assert.Regexp(t, `SigBlk:\s+0000000000000000`, out)
			assert.Regexp(t, `SigIgn:\s+`+c.ignored, out)
		})
	}
}

// OtherRunsLeaveALiveCgroupAlone checks that a run that cleans up after
// killed ones leaves alone the cgroup of a container still being set up,
// which has no process in it yet on cgroup v1, even from a PID namespace
// where that container's run cannot be seen. strace stops the child before
// it joins its cgroup, and holds it there while the other run cleans up.
func OtherRunsLeaveALiveCgroupAlone(t *testing.T, s *Step) {
	RequireRoot(t)
	p, run := s.StoppedAt(t, unix.SYS_PRCTL, s.RunArgs("true")...)
	child := ChildStoppedIn(t, p.Log, run, unix.SYS_PRCTL)
	other := exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", s.Bin}, s.RunArgs("true")...)...)
	r := Finish(t, other)
	require.Equal(t, 0, r.Status, "the other run: %s", r.Stderr)
	require.NoError(t, unix.Kill(child, unix.SIGCONT))
	r = p.Wait(t)
	assert.Equal(t, 0, r.Status, "the run held before its child joined its cgroup: %s", r.Stderr)
}

// threadProbeEnv asks the step's program, started as "child", to probe its
// thread first (probeChildThread).
const threadProbeEnv = "CONTAINERS_FROM_SCRATCH_TEST_THREAD_PROBE"

// probeChildThread, in a child started with threadProbeEnv, checks what
// the parent-death signal rests on: the kernel keeps it per thread, for the
// first thread of the child only, so the child's main must stay on that
// thread until it execs the command, which each step's plumbing makes
// sure of with runtime.LockOSThread. The probe gives Go's scheduler a
// chance to move main that it takes every time when main is not locked
// (switchesThread), and stops the child with status 99 if main moved.
func probeChildThread() {
	if os.Getenv(threadProbeEnv) == "" || len(os.Args) < 2 || os.Args[1] != "child" {
		return
	}
	os.Unsetenv(threadProbeEnv)
	if unix.Gettid() != unix.Getpid() || switchesThread() {
		fmt.Fprintln(os.Stderr, "probe: the child's main left the first thread, which alone has the parent-death signal: runtime.LockOSThread is missing")
		os.Exit(99)
	}
}

// switchesThread reports whether the calling goroutine ends on another
// thread than it started on, after a wait in a system call long enough for
// the scheduler to hand its processor to a goroutine that keeps it busy
// until after the call returns: with one processor (GOMAXPROCS 1), an
// unlocked goroutine then waits for it, and goes on on the other goroutine's
// thread. A locked one goes on on its own.
func switchesThread() bool {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	tid := unix.Gettid()
	done := make(chan struct{})
	go func() {
		for end := time.Now().Add(150 * time.Millisecond); time.Now().Before(end); {
		}
		close(done)
	}()
	// The scheduler takes the processor of a goroutine in a system call
	// within 20 ms (sysmon), when another goroutine waits for one.
	_ = unix.Nanosleep(&unix.Timespec{Nsec: 60e6}, nil)
	<-done
	return unix.Gettid() != tid
}

// ChildStaysOnItsFirstThread checks that the child, until it execs the
// command, runs on the thread that has the parent-death signal, so that
// the command has it too (probeChildThread); and that the probe catches a
// goroutine that is not locked to its thread, every time.
func ChildStaysOnItsFirstThread(t *testing.T, s *Step) {
	RequireRoot(t)
	// The probe itself, on an unlocked goroutine: a busy machine may delay
	// the scheduler's hand-over once, not five times.
	moved := false
	for i := 0; i < 5 && !moved; i++ {
		moved = switchesThread()
	}
	assert.True(t, moved, "the probe never moved an unlocked goroutine to another thread")
	cmd := s.Command(t, s.RunArgs("true")...)
	cmd.Env = append(os.Environ(), threadProbeEnv+"=1")
	r := Finish(t, cmd)
	assert.Equal(t, 0, r.Status, r.Stderr)
	assert.Empty(t, r.Stderr)
}

// --- issue 27: what the supervisor hands the command, and what it keeps ---

// EveryExitStatusPassesThrough checks that run exits with every status its
// command can exit with, 0 to 255, and says nothing of its own: a status
// that run mangled (above 127, say, or the 126 and 127 a shell gives) could
// be any one of them. The runs go a few at a time. From step04 on, whose
// containers take longer to start (an emulated VM runs the suite too), a
// sample does: each bit alone and with its neighbours, both patterns of
// alternate bits, the shell's and the signals' statuses; run passes the
// status on with the code of step02 on, which the steps before check whole.
func EveryExitStatusPassesThrough(t *testing.T, s *Step) {
	s.requireRoot(t)
	type result struct {
		status int
		stderr string
	}
	got := make([]result, 256)
	statuses := make([]bool, 256)
	for status := range statuses {
		statuses[status] = !s.UsesRootfs
	}
	if s.UsesRootfs {
		for _, status := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 85, 100, 125, 126, 127, 128, 129, 130, 137, 143, 170, 191, 192, 254, 255} {
			statuses[status] = true
		}
	}
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for status := range got {
		if !statuses[status] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			cmd := s.Command(t, s.RunArgs("sh", "-c", fmt.Sprintf("exit %d", status))...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if _, exited := err.(*exec.ExitError); err != nil && !exited {
				got[status] = result{-1, err.Error()}
				return
			}
			got[status] = result{cmd.ProcessState.ExitCode(), stderr.String()}
		}()
	}
	wg.Wait()
	for status, r := range got {
		if !statuses[status] {
			continue
		}
		assert.Equal(t, status, r.status, "the command exited %d: %s", status, r.stderr)
		assert.Empty(t, r.stderr, "the command exited %d", status)
	}
}

// CommandGetsRunsEnvironmentOnly checks that the command's environment is
// run's, the same variables and nothing more: not the mark with which run
// tells its child that it is the child, whether run hands the container
// the terminal or not.
func CommandGetsRunsEnvironmentOnly(t *testing.T, s *Step) {
	s.requireRoot(t)
	env := []string{"GREETING=hello from the host", "EMPTY=", "PATH=" + os.Getenv("PATH")}
	sorted := func(out string) []string {
		lines := strings.Fields(strings.ReplaceAll(out, "\r", ""))
		sort.Strings(lines)
		return lines
	}
	want := sorted(strings.Join(env, "\n"))
	t.Run("on a pipe", func(t *testing.T) {
		cmd := s.Command(t, s.RunArgs("env")...)
		cmd.Env = env
		r := Finish(t, cmd)
		require.Equal(t, 0, r.Status, r.Stderr)
		assert.Equal(t, want, sorted(r.Stdout))
	})
	t.Run("on a terminal", func(t *testing.T) {
		cmd := exec.Command("env", append(append([]string{"-i", "--default-signal"}, env...), append([]string{s.Bin}, s.RunArgs("env")...)...)...)
		out := RunOnTerminal(t, cmd, "")
		require.Equal(t, 0, cmd.ProcessState.ExitCode(), out)
		assert.Equal(t, want, sorted(out))
	})
}

// OnlyStandardDescriptorsReachTheCommand starts run with descriptors of
// its caller's open at 3, 7 and 200, two of them the host's /: the
// command must get 0, 1 and 2 only, not these, nor any of run's own, since
// /proc/self/fd/N of an open directory leads out of the container's root.
// The child closes them with close_range(2), or on kernels before 5.11,
// which lack it, one by one: both ways are tried.
func OnlyStandardDescriptorsReachTheCommand(t *testing.T, s *Step) {
	RequireRoot(t)
	root, err := os.Open("/")
	require.NoError(t, err)
	defer root.Close()
	file, err := os.Open("/etc/hostname")
	require.NoError(t, err)
	defer file.Close()
	extra := make([]*os.File, 198) // descriptors 3 to 200: extra[i] is 3+i
	extra[0], extra[4], extra[197] = root, file, root
	for _, c := range []struct{ name, inject string }{
		{"close_range", ""},
		{"no close_range", "close_range:error=ENOSYS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			marker := fmt.Sprintf("%d.%d", 50000+rand.Intn(9999), rand.Intn(1000))
			var cmd *exec.Cmd
			if c.inject == "" {
				cmd = s.Command(t, s.RunArgs("sleep", marker)...)
			} else {
				cmd, _ = s.straced(t, c.inject, s.RunArgs("sleep", marker)...)
			}
			cmd.ExtraFiles = extra
			p := Start(t, cmd)
			sleeper := commandNamed(t, "sleep "+marker)
			run := sleeper
			for ; run > 1 && Cmdline(run) != strings.Join(append([]string{s.Bin}, s.RunArgs("sleep", marker)...), " "); run = parent(run) {
			}
			require.Greater(t, run, 1, "run is not an ancestor of the command")
			assert.Subset(t, descriptors(run), []string{"0", "1", "2", "3", "7", "200"}, "run was not handed the descriptors")
			// The exec closes the descriptors after the command line has
			// changed: wait until sleep sleeps.
			require.Eventually(t, func() bool {
				call, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", sleeper))
				nr, _, _ := strings.Cut(string(call), " ")
				return nr == strconv.Itoa(unix.SYS_CLOCK_NANOSLEEP) || nr == strconv.Itoa(unix.SYS_NANOSLEEP)
			}, patience, time.Millisecond, "the command never slept")
			fds := descriptors(sleeper)
			for i, fd := range fds {
				to, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", sleeper, fd))
				fds[i] += " -> " + to
			}
			assert.Len(t, fds, 3, "the command's descriptors: %q", fds)
			require.NoError(t, unix.Kill(sleeper, unix.SIGKILL))
			assert.Equal(t, 137, p.Wait(t).Status)
		})
	}
}

// commandNamed waits for the process whose command line is cmdline, which
// must be unique, and returns its PID; it is killed when the test ends.
func commandNamed(t *testing.T, cmdline string) int {
	t.Helper()
	var pid int
	require.Eventually(t, func() bool {
		out, _ := exec.Command("pgrep", "-xf", regexp.QuoteMeta(cmdline)).Output()
		pid, _ = strconv.Atoi(strings.TrimSpace(string(out)))
		return pid > 0
	}, patience, time.Millisecond, "%q never started", cmdline)
	t.Cleanup(func() {
		if Cmdline(pid) == cmdline {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	})
	return pid
}

// parent returns the PID of process pid's parent, or 0.
func parent(pid int) int {
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// descriptors lists the open file descriptors of process pid, in order.
func descriptors(pid int) []string {
	entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var fds []int
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			fds = append(fds, n)
		}
	}
	sort.Ints(fds)
	names := make([]string, len(fds))
	for i, fd := range fds {
		names[i] = strconv.Itoa(fd)
	}
	return names
}

// RunIntoAPipeLeavesTheTerminalAlone runs a step in a pipeline on a
// terminal ("run ... | less"): run's output is no terminal, so the
// container must not take the terminal from the job, whose reader at the
// pipe's end also reads the terminal, as less does; it would be stopped
// (SIGTTIN) if the container had it.
func RunIntoAPipeLeavesTheTerminalAlone(t *testing.T, s *Step) {
	RequireRoot(t)
	marker := fmt.Sprintf("%d.%d", 60000+rand.Intn(9999), rand.Intn(1000))
	run := strings.Join(append([]string{s.Bin}, s.RunArgs("sh", "-c", "'echo ready; exec sleep "+marker+"'")...), " ")
	term := StartOnTerminal(t, exec.Command("env", Plain("bash", "--norc", "--noprofile", "-i")...))
	// The reader reads the terminal once the container's command runs,
	// which has taken the terminal by then, or never will.
	term.Type(t, run+` | { read x; echo "reader: $x"; read y </dev/tty; echo "reader got $y"; }`+"\n")
	sleeper := commandNamed(t, "sleep "+marker)
	require.Eventually(t, func() bool { return strings.Contains(term.Shown(), "reader: ready") }, patience, 5*time.Millisecond,
		"the terminal showed:\n%s", term.Shown())
	fg, err := unix.IoctlGetInt(int(term.ptm.Fd()), unix.TIOCGPGRP)
	require.NoError(t, err)
	job, err := unix.Getpgid(parent(sleeper)) // run's, the pipeline's
	require.NoError(t, err)
	if !assert.Equal(t, job, fg, "the container's process group has the terminal, not the job's") {
		return // the reader is stopped, or will be
	}
	term.Type(t, "typed\n")
	require.Eventually(t, func() bool {
		return strings.Contains(term.Shown(), "reader got typed") || strings.Contains(term.Shown(), "Stopped")
	}, patience, 5*time.Millisecond, "the terminal showed:\n%s", term.Shown())
	_ = unix.Kill(sleeper, unix.SIGKILL)
	term.Type(t, "exit\n")
	if strings.Contains(term.Shown(), "Stopped") {
		term.Type(t, "exit\n") // bash warns of the stopped job once
	}
	out := term.Wait(t)
	assert.Contains(t, out, "reader got typed", "the reader at the pipe's end lost the terminal to the container")
}

// SignalDuringSetupReachesTheCommand sends a signal to run, or to its
// child, while the child is still setting the container up, and then holds
// run stopped until the command, a shell, has set its trap for the signal:
// the signal, held until the command runs, must then reach it, and the
// trap say so. (A command with no handler, as PID 1, drops it: that proves
// nothing.) In strace's log, which lists calls in the order they were
// made, run must send the signal on once, and only after the child's exec
// of the command, and the command must get it once. The signal to the child
// goes to its main thread, which takes it as soon as it goes on, long
// before its last step: the child must hand it over.
func SignalDuringSetupReachesTheCommand(t *testing.T, s *Step) {
	RequireRoot(t)
	for _, to := range []string{"run", "child"} {
		// What each signal does is EachSignalReachesTheCommandOnce's: here
		// three, of the terminal's, the others' and the realtime ones.
		for _, sig := range []unix.Signal{unix.SIGINT, unix.SIGUSR1, 36} {
			t.Run(fmt.Sprintf("%s to %s", signalName(sig), to), func(t *testing.T) {
				for attempt := 1; !signalDuringSetup(t, s, to, sig); attempt++ {
					require.Less(t, attempt, 3, "strace itself failed every time")
				}
			})
		}
	}
}

// signalDuringSetup makes one attempt of SignalDuringSetupReachesTheCommand.
// It reports false if strace itself failed, which says nothing of run.
func signalDuringSetup(t *testing.T, s *Step, to string, sig unix.Signal) bool {
	t.Helper()
	// The shell gives up after a thousand naps, so that a signal that never
	// comes fails the test in seconds, not at the command's time limit.
	script := fmt.Sprintf("trap 'echo got %d; exit 0' %d; echo ready; i=0; while [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; echo none", sig, sig)
	cmd, log := s.stracedTracing(t, nil, "sethostname,write,execve,kill,tgkill,pidfd_send_signal",
		"sethostname:signal=SIGSTOP:when=1", s.RunArgs("sh", "-c", script)...)
	p := Start(t, cmd)
	run := s.tracedRun(t, cmd)
	child := ChildStoppedIn(t, log, run, unix.SYS_SETHOSTNAME)
	if to == "run" {
		require.NoError(t, unix.Kill(run, sig))
		// strace shows the signal reaching one of run's threads (the child
		// is stopped: it cannot be the child's) before Go's handler runs.
		// The signal is run's once its runtime has handed it to the
		// goroutine that catches it, and every thread sleeps again: run
		// stopped before that would take the signal in only when it goes
		// on, after the exec, and a run that drops or passes on what it
		// catches during the setup would go unseen.
		got := regexp.MustCompile(fmt.Sprintf(`--- %s \{si_signo=%[1]s, si_code=SI_USER, si_pid=%d,`, signalName(sig), os.Getpid()))
		require.Eventually(t, func() bool {
			data, _ := os.ReadFile(log)
			return got.Match(data)
		}, patience, time.Millisecond, "run never got %s", signalName(sig))
		settles(t, run)
	} else {
		require.NoError(t, unix.Tgkill(child, child, sig)) // it takes it when it goes on
	}
	// Once run waits for its child, it has done its part of the setup
	// (the cgroup, the network): the child needs nothing more from it.
	require.Eventually(t, func() bool { return waitingForChild(run) }, patience, time.Millisecond,
		"run never waited for its child: %s", describe(run))
	require.NoError(t, unix.Kill(run, unix.SIGSTOP))
	require.Eventually(t, func() bool { return everyThreadStopped(run) }, patience, time.Millisecond, "run never stopped")
	require.NoError(t, unix.Kill(child, unix.SIGCONT))
	p.WaitFor(t, "ready") // the trap is set: the command may have the signal now
	require.NoError(t, unix.Kill(run, unix.SIGCONT))
	line := p.ReadLine(t)
	r := p.Wait(t)
	if straceBroke(r.Stderr) {
		t.Logf("strace itself failed, not run: %s", r.Stderr)
		return false
	}
	assert.Equal(t, fmt.Sprintf("got %d", sig), line, "the command never got the signal sent to %s during setup", to)
	assert.Equal(t, 0, cmd.ProcessState.ExitCode(), r.Stderr)
	assert.NotContains(t, r.Stderr, "goroutine ", "a Go program got the signal")
	data, err := os.ReadFile(log)
	require.NoError(t, err)
	text := string(data)
	execs := regexp.MustCompile(fmt.Sprintf(`(?m)^%d +execve\(`, child)).FindAllStringIndex(text, -1)
	require.NotEmpty(t, execs, "the child never execed the command")
	exec := execs[len(execs)-1][0] // the first is of run's own program
	if to == "child" {
		assert.Regexp(t, fmt.Sprintf(`(?m)^%d +write\(%d, `, child, 3), text[:exec], "the child never handed the signal over to run")
	}
	name := signalName(sig)
	sends := regexp.MustCompile(`(?m)^\d+ +(?:kill|tgkill|pidfd_send_signal)\([^)\n]*?\b`+name+`\b`).FindAllStringIndex(text, -1)
	require.Len(t, sends, 1, "how often run sent %s on", name)
	assert.Greater(t, sends[0][0], exec, "run sent %s on before the command ran", name)
	gets := regexp.MustCompile(fmt.Sprintf(`(?m)^%d +--- %s \{`, child, name)).FindAllStringIndex(text[exec:], -1)
	assert.Len(t, gets, 1, "how often the command got %s", name)
	return true
}

// straceBroke reports whether strace itself failed on a ptrace request
// that the kernel refused it ("strace: ptrace(PTRACE_LISTEN, ...):
// Input/output error", seen once in about 150 stops on arm64), which ends
// strace with status 1 whatever the traced program did: the attempt says
// nothing of run, and is made again.
func straceBroke(stderr string) bool {
	return regexp.MustCompile(`(?m)^strace: ptrace\(`).MatchString(stderr)
}

// signalName is the name strace gives signal sig: SIGRT_4 for 36.
func signalName(sig unix.Signal) string {
	if sig > 32 {
		return fmt.Sprintf("SIGRT_%d", sig-32)
	}
	return unix.SignalName(sig)
}

// waitingForChild reports whether a thread of process pid waits for a
// child to end (in waitid, as Go's os/exec does, or wait4).
func waitingForChild(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for _, task := range tasks {
		call, _ := os.ReadFile(task + "/syscall")
		nr, _, _ := strings.Cut(string(call), " ")
		if nr == strconv.Itoa(unix.SYS_WAITID) || nr == strconv.Itoa(unix.SYS_WAIT4) {
			return true
		}
	}
	return false
}

// settles waits until process pid has nothing left to do: every thread
// asleep, no signal pending, and no thread woken for 20 ms.
func settles(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for last := ""; ; time.Sleep(20 * time.Millisecond) {
		now, asleep := switches(pid)
		if asleep && now == last {
			return
		}
		require.False(t, time.Now().After(deadline), "process %d never settled: %s", pid, describe(pid))
		last = now
	}
}

// switches lists how often each thread of process pid was switched in,
// and says whether every one of them sleeps with no signal pending.
func switches(pid int) (string, bool) {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	var b strings.Builder
	asleep := len(tasks) > 0
	for _, task := range tasks {
		status, err := os.ReadFile(task + "/status")
		if err != nil {
			return "", false
		}
		b.WriteString(filepath.Base(task))
		for _, line := range strings.Split(string(status), "\n") {
			key, value, _ := strings.Cut(line, ":\t")
			switch key {
			case "State":
				asleep = asleep && strings.HasPrefix(value, "S")
			case "SigPnd", "ShdPnd":
				asleep = asleep && strings.Trim(value, "0") == ""
			case "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches":
				b.WriteString(" " + value)
			}
		}
		b.WriteString("\n")
	}
	return b.String(), asleep
}

// everyThreadStopped reports whether every thread of process pid is
// stopped, by a signal or by its tracer.
func everyThreadStopped(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for _, task := range tasks {
		stat, err := os.ReadFile(task + "/stat")
		if err != nil {
			return false
		}
		if state := stat[bytes.LastIndexByte(stat, ')')+2]; state != 't' && state != 'T' {
			return false
		}
	}
	return len(tasks) > 0
}

// EachSignalReachesTheCommandOnce sends run each signal it passes on, one
// at a time, highest first, and counts, under strace, how often run sends
// it on and how often it reaches the command, which ignores them all: once
// each. Realtime signals queue, so a second copy would be a second
// delivery; a standard one still pending swallows a second copy, which the
// count of run's sends sees. The first signal goes once more at the end:
// run sends on the signals in turn, so when it reaches the command, every
// copy of the others has been sent, and the kernel hands the command the
// lowest signal first, so they are all delivered once the command is
// waiting again with nothing pending.
func EachSignalReachesTheCommandOnce(t *testing.T, s *Step) {
	s.requireRoot(t)
	var sigs []unix.Signal
	traps := "trap ''"
	for sig := unix.Signal(64); sig >= 1; sig-- {
		switch sig {
		case unix.SIGKILL, unix.SIGSTOP, unix.SIGCHLD, unix.SIGURG, unix.SIGPROF, unix.SIGTSTP, unix.SIGTTIN,
			unix.SIGTTOU, unix.SIGBUS, unix.SIGFPE, unix.SIGSEGV, 32, 33, 34:
			continue
		}
		sigs = append(sigs, sig)
		traps += fmt.Sprintf(" %d", sig)
	}
	sends := "kill,tkill,tgkill,pidfd_send_signal,rt_sigqueueinfo,rt_tgsigqueueinfo"
	cmd, log := s.stracedTracing(t, nil, sends, "", s.RunArgs("sh", "-c", traps+"; echo ready; exec sleep 1000")...)
	p := Start(t, cmd)
	run := s.tracedRun(t, cmd)
	p.WaitFor(t, "ready")
	command := ChildPID(t, run)
	delivered := regexp.MustCompile(fmt.Sprintf(`(?m)^%d +--- (SIG\w+) \{`, command))
	sent := regexp.MustCompile(`(?m)^\d+ +(?:` + strings.ReplaceAll(sends, ",", "|") + `)\([^)\n]*?\b(SIG\w+)\b`)
	count := func(re *regexp.Regexp) map[string]int {
		data, _ := os.ReadFile(log)
		n := map[string]int{}
		for _, m := range re.FindAllStringSubmatch(string(data), -1) {
			n[m[1]]++
		}
		return n
	}
	want := map[string]int{}
	for _, sig := range append(sigs, sigs[0]) {
		name := signalName(sig)
		want[name]++
		require.NoError(t, unix.Kill(run, sig))
		require.Eventually(t, func() bool { return count(delivered)[name] >= want[name] }, patience, time.Millisecond,
			"%s never reached the command", name)
	}
	require.Eventually(t, func() bool { return waitingWithNothingPending(command) }, patience, time.Millisecond,
		"the command never went back to waiting")
	require.NoError(t, unix.Kill(command, unix.SIGKILL))
	r := p.Wait(t) // strace writes all it saw before it ends
	got, gotSent := count(delivered), count(sent)
	for _, sig := range sigs {
		name := signalName(sig)
		assert.Equal(t, want[name], gotSent[name], "how often run sent %s on", name)
		assert.Equal(t, want[name], got[name], "how often %s reached the command", name)
	}
	assert.NotContains(t, r.Stderr, "goroutine ")
}

// waitingWithNothingPending reports whether process pid sleeps, with no
// signal pending for it.
func waitingWithNothingPending(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	status := string(data)
	return strings.Contains(status, "\nState:\tS") &&
		strings.Contains(status, "\nSigPnd:\t0000000000000000\n") && strings.Contains(status, "\nShdPnd:\t0000000000000000\n")
}

// CommandGetsRunsCPUs starts run on every CPU the tests may use, then on
// the last of them alone, and asks the kernel which CPUs the command may
// use once it runs: run's, each time. run keeps to one CPU while it
// catches its signals, and its child too until it has caught its own
// (signal.Notify is six times faster there): the command must get back
// what run was given, neither that one CPU nor every CPU of the machine.
func CommandGetsRunsCPUs(t *testing.T, s *Step) {
	s.requireRoot(t)
	var all, last unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &all))
	for cpu := 0; cpu < 1024; cpu++ {
		if all.IsSet(cpu) {
			last.Zero()
			last.Set(cpu)
		}
	}
	for _, c := range []struct {
		name string
		cpus unix.CPUSet
	}{{"all of the tests' CPUs", all}, {"the last alone", last}} {
		t.Run(c.name, func(t *testing.T) {
			cmd := s.Command(t, s.RunArgs("sh", "-c", "echo ready; exec sleep 100")...)
			// A process starts on the CPUs of the thread that forks it.
			runtime.LockOSThread()
			require.NoError(t, unix.SchedSetaffinity(0, &c.cpus))
			p := Start(t, cmd)
			require.NoError(t, unix.SchedSetaffinity(0, &all))
			runtime.UnlockOSThread()
			p.WaitFor(t, "ready")
			command := ChildPID(t, p.Cmd.Process.Pid)
			t.Cleanup(func() { _ = unix.Kill(command, unix.SIGKILL) })
			var got unix.CPUSet
			require.NoError(t, unix.SchedGetaffinity(command, &got))
			assert.Equal(t, cpuList(c.cpus), cpuList(got), "the CPUs the command may use, started by run on %s", c.name)
			require.NoError(t, unix.Kill(command, unix.SIGKILL))
			p.Wait(t)
		})
	}
}

// cpuList names the CPUs of set: "0 1".
func cpuList(set unix.CPUSet) string {
	var list []string
	for cpu := 0; cpu < 1024; cpu++ {
		if set.IsSet(cpu) {
			list = append(list, strconv.Itoa(cpu))
		}
	}
	return strings.Join(list, " ")
}

// TheChildWaitsForRunsGoOn holds run for a second just before it tells its
// child to go on, which it does once it has caught every signal it passes
// on (it catches those that would end it first thing, and the others,
// which take half a millisecond, while the child starts): the child must
// be waiting for that word all along, reading its end of the handover,
// not setting the container up, so that a signal sent to run during the
// setup finds run ready to catch it and pass it on.
func TheChildWaitsForRunsGoOn(t *testing.T, s *Step) {
	RequireRoot(t)
	p, run := s.RunHeldBefore(t, unix.SYS_SENDTO, time.Second, s.RunArgs("true")...)
	reading := fmt.Sprintf("%d 0x%x ", unix.SYS_READ, 3)
	childWhere(t, run, func(child int) bool {
		call, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", child))
		return strings.HasPrefix(string(call), reading)
	}, "waiting for run's go on (reading descriptor 3)")
	r := p.Wait(t)
	assert.Equal(t, 0, r.Status, r.Stderr)
}
