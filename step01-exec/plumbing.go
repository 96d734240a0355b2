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
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// parseArgs reads the command line of run (and of child): the options that
// config declares, then the command.
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
	return c, nil
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

func init() {
	if len(os.Args) < 2 {
		return
	}
	if os.Args[1] == "run" {
		oneCPU()
		signal.Notify(signals, catchable()...)
	}
}

// cpus are the CPUs run may use, as whoever started it set them: run keeps
// to one of them while it starts (oneCPU), and the command gets them all.
var cpus unix.CPUSet

// oneCPU keeps every thread of run to one CPU while it starts.
// signal.Notify enables each signal with a round trip to a thread of the
// Go runtime's own, and with more than one CPU each trip wakes a thread on
// another CPU: the fifty signals run passes on took 1.5 to 3 ms, more than
// the rest of a container's start. On one CPU they take half a millisecond.
func oneCPU() {
	if unix.SchedGetaffinity(0, &cpus) != nil {
		return
	}
	var one unix.CPUSet
	for cpu := 0; one.Count() == 0 && cpu < 1024; cpu++ {
		if cpus.IsSet(cpu) {
			one.Set(cpu)
		}
	}
	onCPUs(&one)
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
	onCPUs(&cpus) // the command starts on them all
	if err := cmd.Start(); err != nil {
		return commandError(cmd.Args[0], err)
	}
	go func() {
		for sig := range signals {
			_ = cmd.Process.Signal(sig) // it may have exited already
		}
	}()
	err := cmd.Wait()
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

// inForeground reports whether run reads and writes a terminal whose
// foreground process group is run's.
func inForeground() bool {
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	_, errOut := unix.IoctlGetInt(1, unix.TIOCGPGRP)
	return err == nil && errOut == nil && fg == unix.Getpgrp()
}

// defaultPath is where commands are looked for when the environment has no
// PATH (env -i): the one a shell and Docker use.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookPath finds the command as a shell would, in PATH.
func lookPath(name string) (string, error) {
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
const inRootfs = ""

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
