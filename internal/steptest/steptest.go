// Package steptest runs a step's program the way a learner does, for the
// step's tests, and holds the checks that every later step must still pass.
//
// The test binary doubles as the step's program. TestMain calls Main, which
// copies the test binary to a temporary directory under the step's name;
// started under that name (or as /proc/self/exe, as the steps re-execute
// themselves), the test binary runs the step's main function instead of the
// tests. So the tests exercise the real main, through its real command line,
// with no Go toolchain needed at run time: "go test -exec sudo" works, though
// root has neither the learner's PATH nor their module cache.
package steptest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"containers-from-scratch/internal/rootfs"
)

// Step is one step's program under test.
type Step struct {
	Name       string // the step's folder, and its program's name
	NeedsRoot  bool   // whether run needs root (step02 on)
	UsesRootfs bool   // whether run takes -rootfs (step04 on)
	// UsesScratch says whether run takes -scratch (step08 on): then every
	// run of the tests gets one of the tests' own, not the machine's.
	UsesScratch bool
	// UsesNetwork says whether run wires a network (step09 on): then the
	// tests run in a network namespace of their own (Isolated).
	UsesNetwork bool
	// UsesUserns says whether the container runs in a user namespace
	// (step10): then the root filesystems the tests give it belong to
	// Owner, who becomes the container's root, since root's are refused.
	UsesUserns bool
	// UsesIPCAndCgroupns says whether the container has cgroup and IPC
	// namespaces of its own (step11 on): then it sees its cgroup as "/",
	// and the tests that check where it is read the host's view; its
	// /dev/mqueue is a mount.
	UsesIPCAndCgroupns bool
	// UsesLockdown says whether the container's root is locked down (step12
	// on): Docker's capabilities only, a seccomp filter, parts of /proc
	// masked. Then it may not set its hostname, and /proc/sys is read-only.
	UsesLockdown bool

	Bin     string // the program, set up by Main
	Rootfs  string // the root filesystem it runs in, when UsesRootfs
	Scratch string // its scratch directory, when UsesScratch
}

// Main runs the step's main function if the test binary was started as the
// step's program, and the tests otherwise. It does not return.
func Main(m *testing.M, s *Step, stepMain func()) {
	switch filepath.Base(os.Args[0]) {
	case s.Name, "exe":
		probeChildThread()
		stepMain()
		os.Exit(0)
	case breakoutName:
		breakout(os.Args[1])
	case ipcProbeName:
		ipcProbe(os.Args[1:])
	case lockProbeName:
		lockProbe()
	}
	os.Exit(Isolated(s.UsesNetwork, func() int { return s.runTests(m) }))
}

func (s *Step) runTests(m *testing.M) int {
	dir, err := os.MkdirTemp(TempParent(), s.Name+"-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := s.setUp(dir); err != nil {
		fmt.Fprintf(os.Stderr, "%s: setting up the tests: %v\n", s.Name, err)
		return 1
	}
	return m.Run()
}

// setUp copies the test binary to dir under the step's name and builds the
// root filesystem. dir is made readable by all, so that a test can run the
// program as an unprivileged user.
func (s *Step) setUp(dir string) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	s.Bin = filepath.Join(dir, s.Name)
	if err := copyFile(self, s.Bin, 0o755); err != nil {
		return err
	}
	s.Scratch = filepath.Join(dir, "scratch")
	if s.UsesRootfs {
		s.Rootfs = filepath.Join(dir, "rootfs")
		if _, err := rootfs.Build(s.Rootfs); err != nil {
			return err
		}
		if s.UsesUserns {
			if err := chownTree(s.Rootfs, Owner, Owner); err != nil {
				return err
			}
		}
	}
	return nil
}

func copyFile(src, dst string, perm os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, perm)
}

// RequireRoot skips a test that needs root when it is not root. As root
// nothing is skipped, so a CI run as root runs every test.
func RequireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create namespaces: run the tests as root, e.g. go test -exec sudo ./...")
	}
}

// requireRoot skips a test of a step that needs root when it is not root.
func (s *Step) requireRoot(t *testing.T) {
	t.Helper()
	if s.NeedsRoot {
		RequireRoot(t)
	}
}

// RunArgs is the command line that makes the step run argv: "run", the
// root filesystem if the step takes one, then argv.
func (s *Step) RunArgs(argv ...string) []string {
	return s.args("run", s.Rootfs, argv...)
}

// RunIn is RunArgs with another root filesystem. For a step with a user
// namespace, it gives the directory to Owner (as root).
func (s *Step) RunIn(rootfs string, argv ...string) []string {
	if s.UsesUserns && os.Geteuid() == 0 {
		_ = os.Lchown(rootfs, Owner, Owner)
		s.reachable(rootfs)
	}
	return s.args("run", rootfs, argv...)
}

// reachable lets the container's root, Owner, get to dir, a test's
// directory, through the temporary directories above it, which Go makes
// for root only: it mounts the overlay, whose layers must be in its reach.
func (s *Step) reachable(dir string) {
	if !s.UsesUserns || os.Geteuid() != 0 {
		return
	}
	under := func(d string) bool {
		return strings.HasPrefix(d, os.TempDir()+"/") || strings.HasPrefix(d, TempParent()+"/")
	}
	for d := filepath.Dir(dir); under(d); d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil {
			_ = os.Chmod(d, fi.Mode().Perm()|0o011)
		}
	}
}

// Owner is the uid and gid that owns the tests' root filesystems of a step
// with a user namespace: root in its containers. No user need have it.
const Owner = 3333

// chownTree gives dir and everything in it to uid and gid.
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

func (s *Step) args(sub, rootfs string, argv ...string) []string {
	args := []string{sub}
	if s.UsesRootfs {
		args = append(args, "-rootfs", rootfs)
	}
	if s.UsesScratch {
		args = append(args, "-scratch", s.Scratch)
	}
	return append(args, argv...)
}

// Command prepares the step's program with these arguments, given as typed
// after the program's name. It is killed if the test outlives it.
func (s *Step) Command(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "env", Plain(s.Bin, args...)...)
	cmd.WaitDelay = waitDelay
	return cmd
}

// Plain is the arguments of env(1) that run a program with every signal at
// its default disposition, as a terminal's shell starts a command, whatever
// the tests were started with: a CI job or "nohup go test" may ignore
// SIGHUP, SIGINT or SIGQUIT, which the program would then leave ignored for
// its command. env execs the program, which keeps env's PID.
func Plain(program string, args ...string) []string {
	return append([]string{"--default-signal", program}, args...)
}

// CommandTimeout bounds a command a test runs, so that one that hangs
// fails the test rather than the whole run. It is generous: in an emulated
// VM on a busy machine, a memory hog alone takes 20 s. The mutation check
// (internal/mutants), whose mutants may hang, sets a shorter one in
// TimeoutEnv.
var CommandTimeout = timeout()

// TimeoutEnv holds another CommandTimeout, as time.ParseDuration reads it.
const TimeoutEnv = "CONTAINERS_FROM_SCRATCH_TEST_TIMEOUT"

func timeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(TimeoutEnv)); err == nil && d > 0 {
		return d
	}
	return 90 * time.Second
}

// waitDelay bounds how long a test waits for a command's output once it
// has exited: a process it leaked could hold the pipes open for good.
const waitDelay = 2 * time.Second

// Result is what a finished command left: its output and exit status.
type Result struct {
	Stdout, Stderr string
	Status         int
}

// Exec runs the step's program with these arguments and returns what it did.
func (s *Step) Exec(t *testing.T, args ...string) Result {
	t.Helper()
	return Finish(t, s.Command(t, args...))
}

// Run runs argv in the step's container: Exec of "run [-rootfs DIR] argv".
func (s *Step) Run(t *testing.T, argv ...string) Result {
	t.Helper()
	return s.Exec(t, s.RunArgs(argv...)...)
}

// Finish runs cmd to its end, with no input, and returns what it did.
func Finish(t *testing.T, cmd *exec.Cmd) Result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		require.NoError(t, err, "starting %v", cmd.Args)
	}
	return Result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

// Started is a command running in the background, whose output is read
// line by line.
type Started struct {
	Cmd    *exec.Cmd
	Log    string // strace's log, when strace started it
	Stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr bytes.Buffer
}

// Start starts cmd in the background and stops it when the test ends.
func Start(t *testing.T, cmd *exec.Cmd) *Started {
	t.Helper()
	p := &Started{Cmd: cmd}
	cmd.WaitDelay = waitDelay
	var err error
	p.Stdin, err = cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	p.stdout = bufio.NewReader(out)
	cmd.Stderr = &p.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return p
}

// ReadLine returns the next line the command writes, without its newline.
func (p *Started) ReadLine(t *testing.T) string {
	t.Helper()
	line, err := p.stdout.ReadString('\n')
	require.NoError(t, err, "reading from %v; its stderr: %s", p.Cmd.Args, p.stderr.String())
	return strings.TrimSuffix(line, "\n")
}

// WaitFor reads lines until one equals want.
func (p *Started) WaitFor(t *testing.T, want string) {
	t.Helper()
	for p.ReadLine(t) != want {
	}
}

// Wait waits for the command to end and returns the rest of its output and
// its exit status.
func (p *Started) Wait(t *testing.T) Result {
	t.Helper()
	rest, err := io.ReadAll(p.stdout)
	require.NoError(t, err)
	err = p.Cmd.Wait()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		require.NoError(t, err)
	}
	return Result{string(rest), p.stderr.String(), p.Cmd.ProcessState.ExitCode()}
}

// ChildPID returns the PID of the only child of process pid, as the host
// numbers it, waiting for it to appear. The child of a step's program is
// the container's command: the child execs it.
func ChildPID(t *testing.T, pid int) int {
	t.Helper()
	var children []string
	require.Eventually(t, func() bool {
		children = nil
		// A Go program forks from any of its threads, and /proc lists each
		// thread's children apart.
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
		for _, task := range tasks {
			data, _ := os.ReadFile(task)
			children = append(children, strings.Fields(string(data))...)
		}
		return len(children) > 0
	}, patience, time.Millisecond, "process %d never had a child", pid)
	require.Len(t, children, 1, "children of %d", pid)
	child, err := strconv.Atoi(children[0])
	require.NoError(t, err)
	return child
}

// Gone reports whether process pid has ended: it no longer exists, or it is
// a zombie waiting to be reaped.
func Gone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || len(stat) < i+3 || stat[i+2] == 'Z'
}

// OneLine asserts that a message is a single line with no Go stack trace.
func OneLine(t *testing.T, msg string) {
	t.Helper()
	require.NotEmpty(t, strings.TrimSpace(msg), "expected a message")
	require.NotContains(t, msg, "goroutine ", "a stack trace")
	require.Equal(t, 1, strings.Count(strings.TrimRight(msg, "\n"), "\n")+1, "expected one line, got:\n%s", msg)
}

// RunOnTerminal runs cmd on a new pseudo-terminal, as a program started
// from a terminal window, types input into it, and returns everything the
// terminal showed by the time the command ended.
func RunOnTerminal(t *testing.T, cmd *exec.Cmd, input string) string {
	t.Helper()
	term := StartOnTerminal(t, cmd)
	term.Type(t, input)
	return term.Wait(t)
}

// Terminal is a command running on a pseudo-terminal of its own.
type Terminal struct {
	cmd   *exec.Cmd
	ptm   *os.File
	mu    sync.Mutex
	shown bytes.Buffer
	read  chan struct{} // closed when nothing more can be read
	done  chan struct{} // closed when the command has ended
}

// StartOnTerminal starts cmd on a new pseudo-terminal, in a session of its
// own with the terminal as its controlling terminal: what a terminal window
// gives the shell it starts. Other SysProcAttr settings of cmd are kept.
func StartOnTerminal(t *testing.T, cmd *exec.Cmd) *Terminal {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { ptm.Close() })
	require.NoError(t, unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0))
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	require.NoError(t, err)
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err)

	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, true, 0
	require.NoError(t, cmd.Start())
	pts.Close()
	term := &Terminal{cmd: cmd, ptm: ptm, read: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() {
		if !term.Exited() {
			_ = cmd.Process.Kill()
			<-term.done
		}
	})
	go func() {
		// Reading ends with EIO once no process has the terminal open.
		buf := make([]byte, 4096)
		for {
			n, err := ptm.Read(buf)
			term.mu.Lock()
			term.shown.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				break
			}
		}
		close(term.read)
	}()
	go func() {
		_ = cmd.Wait()
		close(term.done)
	}()
	return term
}

// Type types input into the terminal.
func (term *Terminal) Type(t *testing.T, input string) {
	t.Helper()
	_, err := term.ptm.WriteString(input)
	require.NoError(t, err)
}

// Shown returns what the terminal has shown so far.
func (term *Terminal) Shown() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.shown.String()
}

// PID is the command's process ID.
func (term *Terminal) PID() int { return term.cmd.Process.Pid }

// Exited reports whether the command has ended.
func (term *Terminal) Exited() bool {
	select {
	case <-term.done:
		return true
	default:
		return false
	}
}

// Wait waits for the command to end and returns all the terminal showed.
func (term *Terminal) Wait(t *testing.T) string {
	t.Helper()
	select {
	case <-term.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%v still runs on its terminal; it showed:\n%s", term.cmd.Args, term.Shown())
	}
	select {
	case <-term.read:
	case <-time.After(waitDelay):
	}
	return term.Shown()
}

// TempParent is where tests put the root filesystems they build: the
// temporary directory, unless it refuses device files (Debian 13 mounts
// /tmp nodev), and then /var/tmp, so that the container's /dev/null works.
func TempParent() string {
	if dir := os.TempDir(); rootfs.DevicesWork(dir) {
		return dir
	}
	return "/var/tmp"
}
