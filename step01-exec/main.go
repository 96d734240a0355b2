// Command step01-exec runs a command, as the container steps that follow
// will, but with no isolation yet.
//
// Usage:
//
//	step01-exec run CMD [ARG...]
//
// This step is the skeleton every later step builds on: run starts the
// command with this program's standard input, output and error, forwards the
// signals that ask a program to stop, and exits with the command's status (a
// command killed by signal S gives 128+S, as in a shell).
//
// Example:
//
//	$ go run ./step01-exec run sh -c 'echo hello; exit 3'
//	hello
//	$ echo $?
//	3
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
	"syscall"

	"golang.org/x/sys/unix"
)

// prog names this program in its messages. os.Args[0] would not do: go run
// names the program after a temporary file, and a re-executed program is
// started as /proc/self/exe.
const prog = "step01-exec"

const usage = "usage: " + prog + " run CMD [ARG...]"

func main() {
	var err error = usageError("")
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "run":
			err = run(os.Args[2:])
		default:
			err = usageError(fmt.Sprintf("unknown command %q", os.Args[1]))
		}
	}
	os.Exit(exitStatus(err))
}

// config is what the command line of run asks for.
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

// run runs the command and passes its exit status back as its own.
func run(args []string) error {
	c, err := parseArgs(args)
	if err != nil {
		return err
	}

	path, err := exec.LookPath(c.argv[0])
	if err != nil {
		return commandError(c.argv[0], err)
	}
	cmd := exec.Command(path)
	cmd.Args = c.argv // the command sees its name as it was typed
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// If this process dies, the kernel kills the command too, so a
		// killed run leaves nothing running behind it.
		Pdeathsig: unix.SIGKILL,
	}
	return runAndWait(cmd)
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
