// Command step06-cgroups runs a command in a container that has its own
// hostname, process tree, root filesystem and mounts, and a resource budget.
//
// Usage:
//
//	step06-cgroups run [-rootfs DIR] [-pids N] [-memory SIZE] [-cpus F] CMD [ARG...]
//
// This step adds a control group (cgroup) per container: at most N processes
// (a fork bomb stops there), at most SIZE of memory (64M, 1G; past it the
// kernel kills the command, and run exits 137), and F CPUs' worth of
// processor time. It works with the unified cgroup v2 hierarchy of current
// distributions and WSL, and with the v1 hierarchies of older ones, where the
// talk's version only knew v1. The cgroup is removed when the container ends.
//
// Example, as root, from the repository root after "go run ./mkrootfs", on
// cgroup v2 (4242 is run's PID, 98765 its start time):
//
//	$ go run ./step06-cgroups run cat /proc/self/cgroup
//	0::/containers-from-scratch/4242-98765
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
const prog = "step06-cgroups"

const usage = "usage: " + prog + " run [-rootfs DIR] [-pids N] [-memory SIZE] [-cpus F] CMD [ARG...]"

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
	pids   int      // most processes at once
	memory int64    // most bytes of memory
	cpus   float64  // most CPUs' worth of processor time
	argv   []string // the command and its arguments
}

// flags declares the options of run. The limits' defaults let a shell and
// ps work, and stop a fork bomb; limitFlag (cgroup.go) refuses what the
// kernel would refuse.
func (c *config) flags(f *flag.FlagSet) {
	f.StringVar(&c.rootfs, "rootfs", "rootfs", "use `DIR` as the container's root filesystem")
	c.pids, c.memory, c.cpus = 256, 256<<20, 1
	f.Func("pids", "most processes at once, `N` from 10 (default 256)", limitFlag(&c.pids, 10, 4194304))
	f.Func("memory", "most memory, `SIZE` in bytes or with K, M or G, from 16M (default 256M)", limitFlag(&c.memory, 16<<20, 1<<50))
	f.Func("cpus", "most CPUs' worth of processor time, `F` from 0.01 (default 1)", limitFlag(&c.cpus, 0.01, 1024))
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
	// The container's cgroup is made before the container, so that its
	// limits hold from the start, and removed when it ends.
	cg, err := createCgroup(c)
	if err != nil {
		return err
	}
	defer cg.remove()

	// /proc/self/exe is this very binary, wherever it was built: the
	// container starts by running our own code in the new namespaces.
	cmd := exec.Command("/proc/self/exe", append([]string{"child"}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUTS | unix.CLONE_NEWPID | unix.CLONE_NEWNS,
		// If this process dies, the kernel kills the command too, so a
		// killed run leaves nothing running behind it.
		Pdeathsig: unix.SIGKILL,
	}
	// On cgroup v2 the kernel starts the child in its cgroup (clone3's
	// CLONE_INTO_CGROUP), before any of its code runs. On v1 the child
	// joins its cgroups itself, before it execs the command.
	if cg.v2 {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, cg.fd
	}
	return supervise(cmd)
}

// child sets the container up in the new namespaces, then becomes the command.
func child(args []string) error {
	c, err := parseChildArgs(args, "uts", "pid", "mnt") // refuses to set up the host itself
	if err != nil {
		return err
	}

	if err := joinCgroup(); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte("container")); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	// The new mount namespace starts with copies of the host's mounts, and
	// a copy of a shared mount (systemd makes / shared) passes every mount
	// and unmount on to the host. Making all of them private first keeps
	// the /proc below out of the host's mount table.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if err := unix.Chroot(c.rootfs); err != nil {
		return fmt.Errorf("chroot %s: %w", c.rootfs, err)
	}
	// chroot does not move the working directory: without this the command
	// would start outside its own root.
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	// A procfs shows the PID namespace of whoever mounts it, so this one
	// shows only the container's processes. No unmount is needed: the mount
	// goes away with the mount namespace when the container's last process
	// exits.
	if err := unix.Mount("proc", "/proc", "proc", 0, ""); err != nil {
		return fmt.Errorf("mount proc on /proc: %w", err)
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
