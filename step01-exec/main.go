// Command step01-exec runs a command as the later steps run a container.
//
// Usage:
//
//	step01-exec run CMD [ARG...]
//
// This step is the skeleton every later step builds on, with no isolation
// yet: run starts the command with this program's standard input, output
// and error, passes signals on to it, and exits with its status (128+S if
// signal S killed it, as in a shell).
//
// Example:
//
//	$ go run ./step01-exec run echo hello
//	hello
package main

import (
	"flag"
	"os"
	"os/exec"
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

// run runs the command and passes its exit status back as its own.
func run(args []string) error {
	c, err := parseArgs(args)
	if err != nil {
		return err
	}

	path, err := lookPath(c.argv[0])
	if err != nil {
		return err
	}
	cmd := exec.Command(path)
	cmd.Args = c.argv // the command sees its name as it was typed
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// If this process dies, the kernel kills the command too, so a
		// killed run leaves nothing running behind it.
		Pdeathsig: unix.SIGKILL,
	}
	return supervise(cmd)
}
