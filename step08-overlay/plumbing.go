// This file is the plumbing that every step shares and no step teaches: the
// command line, exit statuses, error messages, and the supervisor that
// passes signals on to the container. The lesson is in main.go; you may
// skip this file. Each step's copy is the same as the step before's unless
// the step needs more of it.

package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// parseArgs reads the command line of run (and of child): the options that
// config declares, then the command. It then checks what run was handed
// besides, before run makes anything: its standard input and outputs.
func parseArgs(args []string) (config, error) {
	var c config
	flags := flag.NewFlagSet(prog, flag.ContinueOnError)
	flags.SetOutput(io.Discard) // usageError says what went wrong
	c.flags(flags)
	// Parsing stops at the first argument that is not a flag, so the
	// command's own flags ("run ls -l") are left alone.
	if err := flags.Parse(args); errors.Is(err, flag.ErrHelp) {
		var options bytes.Buffer
		flags.SetOutput(&options)
		flags.PrintDefaults()
		return c, helpRequest(options.String())
	} else if err != nil {
		return c, usageError(err.Error())
	}
	if flags.NArg() == 0 {
		return c, usageError("run needs a command")
	}
	c.argv = flags.Args()
	return c, checkStdio()
}

// checkStdio refuses to hand the container a standard input or output
// that leads into the host's files. A descriptor is a way to its file that
// no root directory bounds: chroot and pivot_root change what "/" means in
// a path, not what an open descriptor leads to. The command gets run's 0,
// 1 and 2 (and no other: see startChild); were one a directory, the
// command could walk the host's tree from it, .. and all, as
// "ls /proc/self/fd/0/" shows ("run ... < /" is all it takes). A block
// device is a whole disk, every file of it. A file, a pipe, a socket or a
// character device (a terminal, /dev/null) leads to itself only.
// fstat(2) tells them apart, on a descriptor opened with O_PATH too.
func checkStdio() error {
	for fd, name := range []string{"standard input", "standard output", "standard error"} {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			continue // closed (EBADF): the command gets none either
		}
		var what string
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG, unix.S_IFIFO, unix.S_IFSOCK, unix.S_IFCHR:
			continue
		case unix.S_IFDIR:
			what = "a directory"
		case unix.S_IFBLK:
			what = "a block device"
		case unix.S_IFLNK: // opened with O_PATH|O_NOFOLLOW
			what = "a symbolic link"
		default:
			what = "neither a file, a pipe, a socket nor a terminal"
		}
		path, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		return fmt.Errorf("%s is %s (%s): a container must not be handed a way into the host's files; give it a file, a pipe or a terminal", name, what, path)
	}
	return nil
}

// checkRoot tells a user who is not root, in one line, how to become root.
func checkRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("creating namespaces needs root: use sudo (go run -exec sudo ./" + prog + " run ...) or the workshop VM")
	}
	return nil
}

// checkRootfs makes sure dir looks like a root filesystem, so that a missing
// one gets a message that says how to build it.
func checkRootfs(dir string) error {
	if dir == "" {
		return usageError("-rootfs is empty: give the directory of a root filesystem")
	}
	if hasFiles(dir) {
		return nil
	}
	abs, _ := filepath.Abs(dir)
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("%s is not a directory: -rootfs takes the directory of a root filesystem", abs)
	}
	// From inside a step's folder, the one built at the repository root
	// is one level up.
	if up := filepath.Join("..", dir); !filepath.IsAbs(dir) && hasFiles(up) {
		return fmt.Errorf("no root filesystem at %s: run from the repository root, or pass -rootfs %s", abs, up)
	}
	return fmt.Errorf("no root filesystem at %s: build one with \"go run ./mkrootfs %s\" from the repository root", abs, abs)
}

// pivotRootError says what pivot_root's two errors mean, which the kernel
// reports for several reasons each (pivot_root(2)).
func pivotRootError(rootfs string, err error) error {
	switch {
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("pivot_root into %s: %w: the new root is on the same mount as the current one, not a mount of its own", rootfs, err)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("pivot_root into %s: %w: the new root is not a mount point, or a mount involved is shared (is / private?), or the current root is not a mount point (in a chroot) or is the initramfs", rootfs, err)
	}
	return fmt.Errorf("pivot_root into %s: %w", rootfs, err)
}

func hasFiles(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) > 0
}

// forwarded are the signals run passes on to the container: every signal a
// process can catch but those about run itself. That leaves out SIGCHLD
// (news of run's child), SIGURG and SIGPROF (the Go runtime's own), the
// terminal's job control (SIGTSTP, SIGTTIN, SIGTTOU), and SIGBUS, SIGFPE and
// SIGSEGV (faults in run's own code), and the two that no process can
// catch. An init such as tini leaves out SIGABRT, SIGILL, SIGTRAP and
// SIGSYS too, which are faults when the kernel sends them; sent with kill,
// as here, they are meant for the command, and a Go program that does not
// catch them dies with a dump of its goroutines. Realtime signal 34 is
// left out too: Go keeps it for the musl C library and never lets a
// program catch it, so it ends run, and the container with it, as SIGKILL
// would.
var forwarded = func() (sigs []os.Signal) {
	for sig := unix.Signal(1); sig <= 64; sig++ {
		switch sig {
		case unix.SIGKILL, unix.SIGSTOP, unix.SIGCHLD, unix.SIGURG, unix.SIGPROF, unix.SIGTSTP, unix.SIGTTIN,
			unix.SIGTTOU, unix.SIGBUS, unix.SIGFPE, unix.SIGSEGV, 32, 33, 34: // 32 and 33 are the C library's
			continue
		}
		sigs = append(sigs, sig)
	}
	return sigs
}()

// catchable returns the forwarded signals that whoever started this program
// does not ignore: one started with a signal ignored ("nohup run ...")
// leaves it ignored, for the command too.
func catchable() (sigs []os.Signal) {
	for _, sig := range forwarded {
		if !signal.Ignored(sig) {
			sigs = append(sigs, sig)
		}
	}
	return sigs
}

// signals receives the signals sent to run from the moment it starts, so
// that none can end run between two of its setup calls, leaving something
// half made, or orphan the container.
var signals = make(chan os.Signal, 64)

// The handover is a pair of sockets joining run and the child. The child's
// end, file descriptor 3, is closed when the child execs the command (or
// dies), which tells run that the command is there to get the signals;
// just before the exec, the child writes into it the signals it caught
// itself. Before the child sets anything up, run writes one byte into it:
// go on. run marks the child it starts with handoverEnv, which the child
// removes.
const (
	handover    = 3
	handoverEnv = "CONTAINERS_FROM_SCRATCH_HANDOVER"
)

// caught receives the signals sent to the child until it execs the command.
var caught = make(chan os.Signal, 64)

func init() {
	if len(os.Args) < 2 {
		return
	}
	switch os.Args[1] {
	case "run":
		oneCPU()
		catchSignals()
	case "child":
		// Go's child code sets the parent-death signal (Pdeathsig, in
		// main.go) after the fork, and the kernel keeps it per thread:
		// only the first thread of the child has it. Keeping the child's
		// main on that thread makes its exec keep the signal for the
		// command.
		runtime.LockOSThread()
		startChild()
	}
}

// cpus are the CPUs run may use, as whoever started it set them: run keeps
// to one of them while it starts (oneCPU), and the command gets them all.
// run keeps to the last, runCPU; its child starts on the first, childCPU.
var cpus, runCPU, childCPU unix.CPUSet

// cpusEnv passes cpus on to the child. run starts it from a thread on its
// one CPU, where the child catches its own fifty signals as fast, then
// takes cpus back for the command (restoreCPUs).
const cpusEnv = "CONTAINERS_FROM_SCRATCH_CPUS"

// oneCPU keeps every thread of run to one CPU while it starts.
// signal.Notify enables each signal with a round trip to a thread of the
// Go runtime's own, and with more than one CPU each trip wakes a thread on
// another CPU: the fifty signals run passes on took 1.5 to 3 ms, more than
// the rest of a container's start. On one CPU they take half a millisecond.
func oneCPU() {
	if unix.SchedGetaffinity(0, &cpus) != nil {
		return
	}
	for cpu := 0; cpu < 1024; cpu++ {
		if cpus.IsSet(cpu) && childCPU.Count() == 0 {
			childCPU.Set(cpu)
		}
		if cpus.IsSet(cpu) {
			runCPU.Zero()
			runCPU.Set(cpu)
		}
	}
	onCPUs(&runCPU)
}

// allCaught is closed once run has caught every signal it passes on: the
// signals that would end run (a Go program dies of them, or dumps its
// goroutines) before it makes anything, the others while it sets up and
// the child starts, on another CPU. The child waits for them (supervise).
var allCaught = make(chan struct{})

func catchSignals() {
	var deadly, others []os.Signal
	for _, sig := range catchable() {
		switch sig {
		case unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGILL, unix.SIGTRAP, unix.SIGABRT, unix.SIGSTKFLT, unix.SIGTERM, unix.SIGSYS:
			deadly = append(deadly, sig)
		default:
			others = append(others, sig)
		}
	}
	signal.Notify(signals, deadly...)
	go func() {
		signal.Notify(signals, others...)
		close(allCaught)
	}()
}

// onCPUs keeps every thread of this program to set, those that threads
// start while it goes through them too. It needs /proc to number threads
// as this program's PID namespace does (the host's, for run).
func onCPUs(set *unix.CPUSet) {
	if self, _ := os.Readlink("/proc/self"); set.Count() == 0 || self != strconv.Itoa(os.Getpid()) {
		return
	}
	for again := true; again; {
		again = false
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, task := range tasks {
			var now unix.CPUSet
			tid, err := strconv.Atoi(task.Name())
			if err == nil && unix.SchedGetaffinity(tid, &now) == nil && now != *set && unix.SchedSetaffinity(tid, set) == nil {
				again = true // and look again, for threads it started
			}
		}
	}
}

// cpuList writes set as cpusEnv's value: "0,1,2,3".
func cpuList(set *unix.CPUSet) string {
	var list []string
	for cpu := 0; cpu < 1024; cpu++ {
		if set.IsSet(cpu) {
			list = append(list, strconv.Itoa(cpu))
		}
	}
	return strings.Join(list, ",")
}

// restoreCPUs gives this thread, the child's one that execs the command,
// the CPUs run had, listed in cpusEnv.
func restoreCPUs() {
	var set unix.CPUSet
	for _, cpu := range strings.Split(os.Getenv(cpusEnv), ",") {
		if n, err := strconv.Atoi(cpu); err == nil && n >= 0 && n < 1024 {
			set.Set(n)
		}
	}
	os.Unsetenv(cpusEnv)
	if set.Count() > 0 {
		_ = unix.SchedSetaffinity(0, &set)
	}
}

// startChild runs first in the child that run started.
func startChild() {
	mark := os.Getenv(handoverEnv)
	if mark == "" {
		return // started by hand: checkNewNamespaces refuses
	}
	os.Unsetenv(handoverEnv)
	takeTerminal = mark == "foreground"
	// Until the exec, the child is a Go program, which as PID 1 would die
	// with status 2 of a SIGINT or dump its goroutines on a SIGQUIT: it
	// catches what is sent to it, for handOver to pass on.
	signal.Notify(caught, catchable()...)
	restoreCPUs()
	// The command gets no file descriptor but 0, 1 and 2 from run, or from
	// whoever started run: an open directory would lead out of the root.
	if unix.CloseRange(handover, ^uint(0), unix.CLOSE_RANGE_CLOEXEC) != nil {
		fds, _ := os.ReadDir("/proc/self/fd") // kernels before 5.11
		for _, fd := range fds {
			if n, err := strconv.Atoi(fd.Name()); err == nil && n >= handover {
				unix.CloseOnExec(n)
			}
		}
	}
	// run says go on once it has caught every signal it passes on: from
	// then on, one sent to run during the setup reaches the command. If run
	// was killed before (between the fork and the prctl that armed the
	// parent-death signal, say), nothing will kill the container when it
	// ends: the end of the file tells. Go's own check for that (getppid
	// changed) cannot work here: in a new PID namespace getppid says 0, and
	// the SIGKILL Go then sends to the child, PID 1, is dropped.
	var goOn [1]byte
	n, err := unix.Read(handover, goOn[:])
	for err == unix.EINTR {
		n, err = unix.Read(handover, goOn[:])
	}
	if n != 1 {
		fmt.Fprintf(os.Stderr, "%s: run has gone: not starting the command\n", prog)
		os.Exit(1)
	}
}

// takeTerminal says that the child puts its process group in the
// terminal's foreground just before the exec.
var takeTerminal bool

// handOver is the child's last step before the exec: it takes the terminal
// if run asked it to, and writes into the handover the signals the child
// caught, for run to pass on once the command runs. A signal still on its
// way is dropped, as PID 1 drops a signal it has no handler for.
func handOver() {
	if takeTerminal {
		// A group that is not in the foreground may take the terminal
		// only while SIGTTOU is blocked or ignored. Blocked, on this
		// thread and for this call only: an ignored signal would stay
		// ignored in the command.
		var ttou, old unix.Sigset_t
		ttou.Val[(unix.SIGTTOU-1)/64] |= 1 << ((unix.SIGTTOU - 1) % 64)
		_ = unix.PthreadSigmask(unix.SIG_BLOCK, &ttou, &old)
		_ = unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, unix.Getpgrp())
		_ = unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	}
	late := make(chan os.Signal, 1)
	signal.Notify(late, catchable()...) // keeps the handlers in place
	signal.Stop(caught)                 // no more signals into caught after this
	for {
		select {
		case sig := <-caught:
			_, _ = unix.Write(handover, []byte{byte(sig.(unix.Signal))})
		default:
			return
		}
	}
}

// supervise runs the container's first process, cmd, and returns its exit
// status as an error. It passes on to the container the signals sent to run.
func supervise(cmd *exec.Cmd) error {
	// On a terminal, our process group, the terminal's foreground group,
	// does not exist in a new PID namespace: an interactive shell as PID 1
	// could not give the terminal back to it on exit. So the container gets
	// a group of its own, which the child puts in the foreground just
	// before it execs the command, as a shell does for a job; until then,
	// Ctrl-C reaches run, which holds it. Only when run is in the
	// foreground itself (not "run ... &"), and writes to the terminal (not
	// "run ps | less": less needs it).
	foreground := cmd.SysProcAttr.Cloneflags&unix.CLONE_NEWPID != 0 && inForeground()
	cmd.SysProcAttr.Setpgid = foreground
	cmd.Env = append(os.Environ(), handoverEnv+"="+map[bool]string{true: "foreground", false: "yes"}[foreground])
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socketpair: %w", err)
	}
	execed, w := os.NewFile(uintptr(pair[0]), "handover"), os.NewFile(uintptr(pair[1]), "handover")
	defer execed.Close()
	// The child's file descriptor 3, handover. A main.go that starts the
	// command itself, with no child (step01's), has no one to hand over:
	// then the signals go straight on.
	self, _ := os.Stat("/proc/self/exe")
	program, _ := os.Stat(cmd.Path)
	// The child starts on a CPU of its own, where it catches its own
	// signals while run ends catching its; a command that run starts
	// itself, with no child, on all of run's.
	ours, start := os.SameFile(self, program), &cpus
	if ours {
		cmd.ExtraFiles = []*os.File{w}
		cmd.Env = append(cmd.Env, cpusEnv+"="+cpuList(&cpus))
		start = &childCPU
	}
	runtime.LockOSThread()
	_ = unix.SchedSetaffinity(0, start)
	err = cmd.Start()
	_ = unix.SchedSetaffinity(0, &runCPU)
	runtime.UnlockOSThread()
	w.Close()
	<-allCaught
	onCPUs(&cpus)
	if ours && err == nil {
		// Go on. MSG_NOSIGNAL: a child that has died already must not
		// send run a SIGPIPE, which run would pass on.
		_ = unix.Sendto(pair[0], []byte{0}, unix.MSG_NOSIGNAL, nil)
	}
	if err != nil {
		return commandError(cmd.Args[0], err)
	}
	go func() {
		// Signals wait until the command runs: the child is not the
		// command, and must not be the one that gets them.
		held, _ := io.ReadAll(execed)
		for _, sig := range held {
			_ = cmd.Process.Signal(unix.Signal(sig))
		}
		for sig := range signals {
			_ = cmd.Process.Signal(sig) // it may have exited already
		}
	}()
	err = cmd.Wait()
	if foreground {
		// The container's group is gone: the terminal comes back to ours,
		// as a shell takes it back when a job ends. A group that is not in
		// the foreground may set it only if it ignores SIGTTOU.
		signal.Ignore(unix.SIGTTOU)
		_ = unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, unix.Getpgrp())
	}

	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return err
	}
	// A shell reports death by signal S as 128+S, and so do we.
	status := exit.Sys().(syscall.WaitStatus)
	if status.Signaled() {
		return &exitError{status: 128 + int(status.Signal())}
	}
	return &exitError{status: status.ExitStatus()}
}

// parseChildArgs reads the command line of child, once it has made sure that
// it runs in the namespaces that run made (named as in /proc/PID/ns).
func parseChildArgs(args []string, namespaces ...string) (config, error) {
	if err := checkNewNamespaces(namespaces...); err != nil {
		return config{}, err
	}
	return parseArgs(args)
}

// inForeground reports whether run reads and writes a terminal whose
// foreground process group is run's.
func inForeground() bool {
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	_, errOut := unix.IoctlGetInt(1, unix.TIOCGPGRP)
	return err == nil && errOut == nil && fg == unix.Getpgrp()
}

// checkNewNamespaces makes sure this process is in namespaces of its own,
// not in those of the process that started it. The names are those in
// /proc/PID/ns.
func checkNewNamespaces(names ...string) error {
	parent, err := parentPID()
	if err != nil {
		return err
	}
	for _, ns := range names {
		theirs, err := os.Readlink("/proc/" + parent + "/ns/" + ns)
		if err != nil {
			return err
		}
		ours, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			return err
		}
		if ours == theirs {
			return usageError(`"child" is internal: it runs only inside the namespaces that "run" creates`)
		}
	}
	return nil
}

// parentPID returns the PID of the process that started this one, as the
// host's /proc numbers it. getppid(2) would not do once the child is in a
// new PID namespace (step03 on): its parent is outside, so getppid says 0.
func parentPID() (string, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if pid, ok := strings.CutPrefix(line, "PPid:"); ok {
			return strings.TrimSpace(pid), nil
		}
	}
	return "", errors.New("/proc/self/status has no PPid line")
}

// defaultPath is where commands are looked for when the environment has no
// PATH (env -i): the one a shell and Docker use.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookPath finds the command as a shell would, in PATH. In the child it is
// the last step before the exec, and hands run the signals caught so far.
func lookPath(name string) (string, error) {
	handOver()
	if _, ok := os.LookupEnv("PATH"); !ok {
		os.Setenv("PATH", defaultPath)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", commandError(name, err)
	}
	return path, nil
}

// inRootfs says where a command was looked for, in messages.
const inRootfs = " in the container's root filesystem"

// commandError turns a failure to find or start the command into the status
// a shell gives: 127 when it is not there, 126 when it cannot run. Other
// errors are not the command's, and stay as they are.
func commandError(name string, err error) error {
	var lookup *exec.Error
	switch {
	case errors.Is(err, unix.EISDIR):
		return &exitError{status: 126, err: fmt.Errorf("%s: cannot run it: it is a directory", name)}
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOEXEC), errors.Is(err, fs.ErrPermission):
		if errors.As(err, &lookup) {
			err = lookup.Err // not "exec: NAME: ...", which says the name again
		}
		return &exitError{status: 126, err: fmt.Errorf("%s: cannot run it: %w", name, err)}
	case errors.As(err, &lookup):
		return &exitError{status: 127, err: fmt.Errorf("%s: command not found%s", name, inRootfs)}
	case errors.Is(err, unix.ENOENT):
		// The file is there, so what is missing is what it needs to start:
		// its dynamic loader, or the interpreter its #! line names.
		return &exitError{status: 127, err: fmt.Errorf("%s: cannot run it: its dynamic loader or #! interpreter is missing%s", name, inRootfs)}
	}
	return err
}

// exitError ends the program with status, after printing err unless it is
// nil (the command has then spoken for itself).
type exitError struct {
	status int
	err    error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.status)
	}
	return e.err.Error()
}

// usageError is a command line this program does not understand. As with the
// flag package, it ends the program with status 2 and the usage line.
type usageError string

func (e usageError) Error() string { return string(e) }

// helpRequest is -h or -help: the usage line and the options, described,
// on standard output, and status 0.
type helpRequest string

func (e helpRequest) Error() string { return "help requested" }

// unknownCommand is what main makes of a first argument that is not a
// command: a request for help, or a mistake.
func unknownCommand(arg string) error {
	switch arg {
	case "-h", "-help", "--help", "help":
		return helpRequest(`"run -h" lists the options of run` + "\n")
	}
	return usageError(fmt.Sprintf("unknown command %q", arg))
}

// exitStatus prints err, if any, and returns the status to exit with.
func exitStatus(err error) int {
	var exit *exitError
	var bad usageError
	var help helpRequest
	switch {
	case err == nil:
		return 0
	case errors.As(err, &help):
		fmt.Print(usage + "\n" + string(help))
		return 0
	case errors.As(err, &bad):
		if bad != "" {
			fmt.Fprintf(os.Stderr, "%s: %s\n", prog, bad)
		}
		fmt.Fprintln(os.Stderr, usage)
		return 2
	case errors.As(err, &exit):
		if exit.err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", prog, exit.err)
		}
		return exit.status
	default:
		fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
		return 1
	}
}
