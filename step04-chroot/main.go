// Command step04-chroot runs a command in a container that has its own
// hostname, its own process tree and its own root filesystem.
//
// Usage:
//
//	step04-chroot run [-rootfs DIR] CMD [ARG...]
//
// This step adds a root filesystem: the child changes its root directory to
// DIR (default "rootfs", built by "go run ./mkrootfs") before it runs the
// command, so the command finds its programs, libraries and files there and
// sees nothing of the host's. chroot is not a security boundary (a root
// process can leave it); step07 replaces it with pivot_root.
//
// Example, as root, from the repository root after "go run ./mkrootfs":
//
//	$ go run ./step04-chroot run ls /
//	bin  dev  etc  lib  lib64  proc  root  sbin  tmp  usr
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
const prog = "step04-chroot"

const usage = "usage: " + prog + " run [-rootfs DIR] CMD [ARG...]"

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
	rootfs string   // directory that becomes the container's /
	argv   []string // the command and its arguments
}

// flags declares the options of run.
func (c *config) flags(f *flag.FlagSet) {
	f.StringVar(&c.rootfs, "rootfs", "rootfs", "use `DIR` as the container's root filesystem")
}

// run starts this same program again as "child" in new namespaces, and
// passes the command's exit status back as its own.
func run(args []string) error {
	c, err := parseArgs(args)
	if err != nil {
		return err
	}
	if err := checkRoot(); err != nil {
		return err
	}
	if err := checkRootfs(c.rootfs); err != nil {
		return err
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
	return supervise(cmd)
}

// child sets the container up in the new namespaces, then becomes the command.
func child(args []string) error {
	c, err := parseChildArgs(args, "uts", "pid") // refuses to set up the host itself
	if err != nil {
		return err
	}

	if err := unix.Sethostname([]byte("container")); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	if err := unix.Chroot(c.rootfs); err != nil {
		return fmt.Errorf("chroot %s: %w", c.rootfs, err)
	}
	// chroot does not move the working directory: without this the command
	// would start outside its own root.
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}

	// After chroot, the command is looked for in the container's files.
	path, err := lookPath(c.argv[0])
	if err != nil {
		return err
	}
	// Exec, not fork: the command takes over this process, so no Go code
	// stays between it and run, and the command, not a Go program, is PID 1.
	err = unix.Exec(path, c.argv, os.Environ())
	return commandError(c.argv[0], err)
}
