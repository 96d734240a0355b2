// Command step03-pid runs a command in a container that has its own hostname
// and its own process tree.
//
// Usage:
//
//	step03-pid run CMD [ARG...]
//
// This step adds a PID namespace: the command is PID 1 of a process tree of
// its own, as init is on the host. PID 1 is special: the kernel delivers it
// only the signals it has a handler for (SIGKILL and SIGSTOP from the host
// excepted), and when it exits every other process in the namespace is
// killed. ps still lists the host's processes,
// because it reads the host's /proc; step05 mounts one of the container's own.
//
// Example, as root:
//
//	$ go run ./step03-pid run sh -c 'echo $$'
//	1
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// prog names this program in its messages. os.Args[0] would not do: go run
// names the program after a temporary file, and a re-executed program is
// started as /proc/self/exe.
const prog = "step03-pid"

const usage = "usage: " + prog + " run CMD [ARG...]"

// The kernel keeps the parent-death signal (Pdeathsig, below) per thread,
// and only the first thread of the child has it. Keeping the child's main
// on that thread makes its exec keep the signal for the command.
func init() {
	if len(os.Args) > 1 && os.Args[1] == "child" {
		runtime.LockOSThread()
	}
}

func main() {
	var err error = usageError("")
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "run":
			err = run(os.Args[2:])
		case "child":
			err = child(os.Args[2:])
		default:
			err = usageError(fmt.Sprintf("unknown command %q", os.Args[1]))
		}
	}
	os.Exit(exitStatus(err))
}

// config is what the command line of run (and of child) asks for.
type config struct {
	argv []string // the command and its arguments
}

func parseArgs(args []string) (config, error) {
	var c config
	flags := flag.NewFlagSet(prog, flag.ContinueOnError)
	flags.SetOutput(io.Discard) // usageError says what went wrong
	// Parsing stops at the first argument that is not a flag, so the
	// command's own flags ("run ls -l") are left alone.
	if err := flags.Parse(args); errors.Is(err, flag.ErrHelp) {
		return c, usageError("")
	} else if err != nil {
		return c, usageError(err.Error())
	}
	if flags.NArg() == 0 {
		return c, usageError("run needs a command")
	}
	c.argv = flags.Args()
	return c, nil
}

// run starts this same program again as "child" in new namespaces, and
// passes the command's exit status back as its own.
func run(args []string) error {
	if _, err := parseArgs(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("creating namespaces needs root: use sudo (go run -exec sudo ./" + prog + " run ...) or the workshop VM")
	}

	// /proc/self/exe is this very binary, wherever it was built: the
	// container starts by running our own code in the new namespaces.
	cmd := exec.Command("/proc/self/exe", append([]string{"child"}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUTS | unix.CLONE_NEWPID,
		// If this process dies, the kernel kills the command too, so a
		// killed run leaves nothing running behind it.
		Pdeathsig: unix.SIGKILL,
	}
	// Our process group, the terminal's foreground group, does not exist
	// in the new PID namespace: an interactive shell as PID 1 could not
	// give the terminal back to it on exit. So the container gets a group
	// of its own, in the foreground, as a shell gives one to a job. Being
	// PID 1, it cannot be stopped by Ctrl-Z and keep the terminal.
	if _, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil {
		cmd.SysProcAttr.Foreground = true // Ctty 0 is its stdin, our terminal
	}
	return runAndWait(cmd)
}

// child runs inside the new namespaces: it sets the container up, then
// replaces itself with the command.
func child(args []string) error {
	// child changes the hostname: on the host that would change the host,
	// so it only goes on where run has made new namespaces.
	if err := checkNewNamespaces("uts", "pid"); err != nil {
		return err
	}
	c, err := parseArgs(args)
	if err != nil {
		return err
	}

	if err := unix.Sethostname([]byte("container")); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}

	path, err := exec.LookPath(c.argv[0])
	if err != nil {
		return commandError(c.argv[0], err)
	}
	// Exec, not fork: the command takes over this process, so no Go code
	// stays between it and run, and the command, not a Go program, is PID 1.
	err = unix.Exec(path, c.argv, os.Environ())
	return commandError(c.argv[0], err)
}

// runAndWait runs cmd, hands it the signals meant for it and returns its exit
// status as an error.
func runAndWait(cmd *exec.Cmd) error {
	// Catch the signals that ask a program to stop before the command
	// starts, so that none can kill this process and orphan the command.
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	defer signal.Stop(signals)

	if err := cmd.Start(); err != nil {
		return commandError(cmd.Args[0], err)
	}
	go func() {
		for sig := range signals {
			_ = cmd.Process.Signal(sig) // it may have exited already
		}
	}()
	err := cmd.Wait()

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

// commandError turns a failure to find or start the command into the status
// a shell gives: 127 when it is not there, 126 when it cannot run. Other
// errors are not the command's, and stay as they are.
func commandError(name string, err error) error {
	var lookup *exec.Error
	switch {
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOEXEC),
		errors.As(err, &lookup) && errors.Is(lookup.Err, fs.ErrPermission):
		return &exitError{status: 126, err: fmt.Errorf("%s: cannot run it: %w", name, err)}
	case errors.As(err, &lookup):
		return &exitError{status: 127, err: fmt.Errorf("%s: command not found", name)}
	case errors.Is(err, unix.ENOENT):
		// The file is there, so what is missing is what it needs to start:
		// its dynamic loader, or the interpreter its #! line names.
		return &exitError{status: 127, err: fmt.Errorf("%s: cannot run it: its dynamic loader or #! interpreter is missing", name)}
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

// exitStatus prints err, if any, and returns the status to exit with.
func exitStatus(err error) int {
	var exit *exitError
	var bad usageError
	switch {
	case err == nil:
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
