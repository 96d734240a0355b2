// Command step02-uts runs a command in a container that has its own hostname.
//
// Usage:
//
//	step02-uts run CMD [ARG...]
//
// This step adds a UTS namespace, which holds the hostname: run starts this
// same program again as "child" in a new one, which sets the hostname to
// "container" and becomes the command. The host's hostname is never touched.
//
// Example, as root:
//
//	$ go run ./step02-uts run hostname
//	container
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// prog names this program in its messages. os.Args[0] would not do: go run
// names the program after a temporary file, and a re-executed program is
// started as /proc/self/exe.
const prog = "step02-uts"

const usage = "usage: " + prog + " run CMD [ARG...]"

func main() {
	var err error = usageError("")
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "run":
			err = run(os.Args[2:])
		case "child":
			err = child(os.Args[2:])
		default:
			err = unknownCommand(os.Args[1])
		}
	}
	os.Exit(exitStatus(err))
}

// config is what the command line asks for.
type config struct {
	argv []string // the command and its arguments
}

// flags declares the options of run: none yet.
func (c *config) flags(f *flag.FlagSet) {}

// run starts this same program again as "child" in new namespaces, and
// passes the command's exit status back as its own.
func run(args []string) error {
	if _, err := parseArgs(args); err != nil {
		return err
	}
	if err := checkRoot(); err != nil {
		return err
	}

	// /proc/self/exe is this very binary, wherever it was built: the
	// container starts by running our own code in the new namespaces.
	cmd := exec.Command("/proc/self/exe", append([]string{"child"}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUTS,
		// If this process dies, the kernel kills the command too, so a
		// killed run leaves nothing running behind it.
		Pdeathsig: unix.SIGKILL,
	}
	return supervise(cmd)
}

// child sets the container up in the new namespaces, then becomes the command.
func child(args []string) error {
	c, err := parseChildArgs(args, "uts") // refuses to set up the host itself
	if err != nil {
		return err
	}

	if err := unix.Sethostname([]byte("container")); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}

	path, err := lookPath(c.argv[0])
	if err != nil {
		return err
	}
	// Exec, not fork: the command takes over this process, so no Go code
	// stays between it and run, and signals from run reach it directly.
	err = unix.Exec(path, c.argv, os.Environ())
	return commandError(c.argv[0], err)
}
