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
	"strings"
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
	entries, err := os.ReadDir(dir)
	if err == nil && len(entries) > 0 {
		return nil
	}
	abs, _ := filepath.Abs(dir)
	return fmt.Errorf("no root filesystem at %s: build one with \"go run ./mkrootfs %s\" from the repository root", abs, abs)
}

// forwarded are the signals run passes on to the container, as an init
// such as tini does: all but those that concern run itself (SIGCHLD, its
// child's news; SIGURG, which the Go runtime uses; the terminal's job
// control; faults in its own code) and the two no process can catch.
var forwarded = func() (sigs []os.Signal) {
	for sig := unix.Signal(1); sig <= 64; sig++ {
		switch sig {
		case unix.SIGKILL, unix.SIGSTOP, unix.SIGCHLD, unix.SIGURG, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU,
			unix.SIGBUS, unix.SIGFPE, unix.SIGSEGV, 32, 33: // 32 and 33 belong to the C library's threads
			continue
		}
		sigs = append(sigs, sig)
	}
	return sigs
}()

// signals receives the signals sent to run from the moment it starts, so
// that none can end run between two of its setup calls, leaving something
// half made, or orphan the container.
var signals = make(chan os.Signal, 64)

// handover is the child's end of a pipe to run: it is closed when the child
// execs the command (or dies), which tells run that the command now gets
// the signals. Until then the child passes on, through it, the signals it
// catches itself.
const handover = 3

func init() {
	if len(os.Args) < 2 {
		return
	}
	switch os.Args[1] {
	case "run":
		signal.Notify(signals, forwarded...)
	case "child":
		// The kernel keeps the parent-death signal (Pdeathsig, in main.go)
		// per thread, and only the first thread of the child has it.
		// Keeping the child's main on that thread makes its exec keep the
		// signal for the command.
		runtime.LockOSThread()
		startChild()
	}
}

// startChild runs first in the child. The kernel arms the parent-death
// signal only after the fork: if run was killed before that, nothing will
// kill the container, so the child checks that run is still there (Go's own
// check, getppid, reads 0 in a new PID namespace). Then, until the exec,
// the child is a Go program, which as PID 1 would die with status 2 of a
// SIGINT or dump its goroutines on a SIGQUIT: it catches them instead and
// has run pass them on after the exec.
func startChild() {
	var st unix.Stat_t
	if unix.Fstat(handover, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return // not started by run: checkNewNamespaces refuses
	}
	unix.CloseOnExec(handover)
	// A pipe with no reader left reports an error: run has gone.
	fds := []unix.PollFd{{Fd: handover, Events: unix.POLLOUT}}
	if _, err := unix.Poll(fds, 0); err == nil && fds[0].Revents&unix.POLLERR != 0 {
		os.Exit(1)
	}
	caught := make(chan os.Signal, 64)
	signal.Notify(caught, forwarded...)
	go func() {
		for sig := range caught {
			if _, err := unix.Write(handover, []byte{byte(sig.(unix.Signal))}); err != nil {
				return
			}
		}
	}()
}

// supervise runs the container's first process, cmd, and returns its exit
// status as an error. It passes on to the container the signals sent to run.
func supervise(cmd *exec.Cmd) error {
	// On a terminal, our process group, the terminal's foreground group,
	// does not exist in a new PID namespace: an interactive shell as PID 1
	// could not give the terminal back to it on exit. So the container gets
	// a group of its own, in the foreground, as a shell gives one to a job;
	// but only when run is in the foreground itself (not "run ... &").
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	if cmd.SysProcAttr.Cloneflags&unix.CLONE_NEWPID != 0 && err == nil && fg == unix.Getpgrp() {
		cmd.SysProcAttr.Foreground = true // Ctty 0 is its stdin, our terminal
	}
	execed, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer execed.Close()
	cmd.ExtraFiles = []*os.File{w} // the child's file descriptor 3, handover
	err = cmd.Start()
	w.Close()
	if err != nil {
		return commandError(cmd.Args[0], err)
	}
	go func() {
		// Signals wait until the command runs: the child is not the
		// command, and must not be the one that gets them.
		caught, _ := io.ReadAll(execed)
		for _, sig := range caught {
			_ = cmd.Process.Signal(unix.Signal(sig))
		}
		for sig := range signals {
			_ = cmd.Process.Signal(sig) // it may have exited already
		}
	}()
	err = cmd.Wait()

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
