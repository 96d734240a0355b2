// Command step13-image runs a command in a container that has its own
// hostname, process tree, root filesystem and mounts, and a resource budget,
// no way back to the host's files, an untouched image, a network, no root,
// its own shared memory and view of the cgroups, and few powers: an image's.
//
// Usage:
//
//	step13-image run [-image DIR[:TAG] | -rootfs DIR] [-scratch DIR] [-keep] [-net CIDR] [-pids N] [-memory SIZE] [-cpus F] [CMD [ARG...]]
//
// This step runs an OCI image, as skopeo saves one: its layers in the
// overlay, its command, environment, directory and user, and ids beyond root.
//
// Example, from the repository root, with an image saved by skopeo:
//
//	$ go run ./step13-image run -image debian:12 grep -E 'Seccomp|NoNewPrivs|CapBnd' /proc/self/status
//	CapBnd:	00000000a80425fb
//	NoNewPrivs:	1
//	Seccomp:	2
//	Seccomp_filters:	1
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
const prog = "step13-image"

const usage = "usage: " + prog + " run [-image DIR[:TAG] | -rootfs DIR] [-scratch DIR] [-keep] [-net CIDR] [-pids N] [-memory SIZE] [-cpus F] [CMD [ARG...]]"

func main() {
	var err error = usageError("")
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "run":
			err = run(os.Args[2:])
		case "child":
			err = child(os.Args[2:])
		case "remove":
			err = remove(os.Args[2:]) // what a container left (ids.go)
		default:
			err = unknownCommand(os.Args[1])
		}
	}
	os.Exit(exitStatus(err))
}

// config is what the command line asks for.
type config struct {
	image  string   // an OCI image layout and a tag in it, DIR:TAG
	img    image    // its layers and config (image.go), read by parseArgs
	rootfs string   // directory that becomes the container's /
	layers string   // where each container's changes go while it runs
	keep   bool     // keep the changes after the container ends
	net    subnet   // where the addresses of the containers' cables come from
	pids   int      // most processes at once
	memory int64    // most bytes of memory
	cpus   float64  // most CPUs' worth of processor time
	argv   []string // the command and its arguments
}

// flags declares the options of run. The limits' defaults let a shell and
// ps work, and stop a fork bomb; limitFlag (cgroup.go) refuses what the
// kernel would refuse.
func (c *config) flags(f *flag.FlagSet) {
	f.StringVar(&c.image, "image", "", "run the image `DIR:TAG`: an OCI image layout, and a tag in it")
	f.StringVar(&c.rootfs, "rootfs", "rootfs", "use `DIR` as the container's root filesystem")
	f.StringVar(&c.layers, "scratch", defaultScratch, "keep each container's changes in `DIR` while it runs")
	f.BoolVar(&c.keep, "keep", false, "keep the container's changes when it ends, and say where")
	c.net = defaultSubnet // 10.200.0.0/24: a /30 of it, four addresses, for each container (net.go)
	f.Var(&c.net, "net", "take each container's addresses from `CIDR`, four per container")
	c.pids, c.memory, c.cpus = 256, 256<<20, 1
	f.Func("pids", "most processes at once, `N` from 10 (default 256)", limitFlag(&c.pids, 10, 4194304))
	f.Func("memory", "most memory, `SIZE` in bytes or with K, M or G, from 16M (default 256M)", limitFlag(&c.memory, 16<<20, 1<<50))
	f.Func("cpus", "most CPUs' worth of processor time, `F` from 0.01 (default 1)", limitFlag(&c.cpus, 0.01, 1024))
}

// run starts this same program again as "child" in new namespaces, and
// passes the command's exit status back as its own.
func run(args []string) error {
	c, err := parseArgs(args) // and the image's index, manifest and config
	if err != nil {
		return err
	}
	if err := checkRootfs(c.rootfs); err != nil {
		return err
	}
	// The container's root is the root filesystem's owner, never root (userns.go).
	owner, err := rootfsOwner(c.rootfs)
	if err != nil {
		return err
	}
	ids := idMapFor(owner) // and ids 1 and up their subordinate ids (ids.go)
	// The container's cgroup is made before the container, so that its
	// limits hold from the start, and removed when it ends.
	cg, err := createCgroup(c)
	if err != nil {
		return err
	}
	defer cg.remove()
	// The directories of the container's overlay: its changes go there,
	// and go with them when it ends (unless -keep).
	ov, err := createOverlay(c, ids) // and the image's layer store
	if err != nil {
		return err
	}
	defer ov.remove(c.keep)

	// /proc/self/exe is this very binary, wherever it was built: the
	// container starts by running our own code in the new namespaces.
	cmd := exec.Command("/proc/self/exe", append([]string{"child", "-scratch", c.layers}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// The user namespace comes first, and owns the others: root in it is root over them only.
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWUTS | unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWNET |
			unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP,
		// Root (0) inside is the owner outside, and the child becomes it; ids
		// 1 and up, the owner's subordinate ids. With sudo it drops run's groups.
		UidMappings:                ids.uids,
		GidMappings:                ids.gids,
		GidMappingsEnableSetgroups: os.Geteuid() == 0,
		Credential:                 &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: os.Geteuid() != 0},
		// If this process dies, the kernel kills the command too, so a
		// killed run leaves nothing running behind it.
		Pdeathsig: unix.SIGKILL,
	}
	ids.leaveToHelpers(cmd) // without sudo, newuidmap maps them, once the child is there (ids.go)
	// On cgroup v2 the kernel starts the child in its cgroup (clone3's
	// CLONE_INTO_CGROUP), before any of its code runs. On v1 the child
	// is put in by run, below: root in its namespace only, it may not join.
	if cg.v2 {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, cg.fd
	}
	// The cable to the host, a veth pair (net.go), needs the container's
	// network namespace: the child waits on this pipe, its descriptor 4,
	// until run has plugged in the host's end and written eth0's address.
	childEnd, goOn, err := os.Pipe()
	if err != nil {
		return err
	}
	defer goOn.Close()
	cmd.ExtraFiles = []*os.File{childEnd}
	var cable veth
	// The kernel would remove it with the namespace too, but a moment later.
	defer cable.remove()
	return supervise(cmd, func(pid int) error {
		if err := cg.add(pid); err != nil {
			return err
		}
		if err := ids.write(pid, goOn); err != nil {
			return err
		}
		if err := cable.plugIn(c.net, pid); err != nil {
			return err
		}
		_, err := goOn.WriteString(cable.inside()) // eth0's address: go on
		return err
	})
}

// child sets the container up in the new namespaces, then becomes the command.
func child(args []string) error {
	c, err := parseChildArgs(args) // refuses to set up the host itself
	if err != nil {
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
	// The container's / is an overlay: the root filesystem as the lower
	// layer, never written, under the container's upper directory, where
	// every change goes (a file is copied up before it changes, in the work
	// directory). A mount is a mount point, as pivot_root needs.
	ov, err := findOverlay(c) // the directories that run made
	if err != nil {
		return err
	}
	if err := ov.stackLayers(c.img); err != nil { // an image's, unpacked once (store.go)
		return err
	}
	if err := unix.Mount("overlay", ov.merged, "overlay", 0, ov.options); err != nil {
		return overlayError(err)
	}
	if err := unix.Chdir(ov.merged); err != nil {
		return fmt.Errorf("chdir %s: %w", ov.merged, err)
	}
	// Before pivot_root, as a user namespace's procfs needs the host's in view.
	if err := mountInRoot("proc", "proc", "proc", 0); err != nil {
		return procError(err)
	}
	// Device files do not open on a mount made in a user namespace: bind the host's.
	if err := bindDevices(); err != nil {
		return err
	}
	// POSIX message queues are the files of an mqueue file system, which
	// shows those of the IPC namespace that mounts it: the container's (ipc.go).
	if err := mountMessageQueues(); err != nil {
		return err
	}
	// pivot_root(".", ".") makes the working directory the root of the
	// mount namespace, and mounts the old root on top of it, at /: no
	// directory of the container's has to hold it (pivot_root(2), NOTES).
	if err := unix.PivotRoot(".", "."); err != nil {
		return pivotRootError(ov.merged, err)
	}
	// Detach the old root, the top mount at /, with the namespace's copies
	// of every host mount under it. A plain unmount would fail while the
	// host's /proc, /sys and the rest sit under it; MNT_DETACH takes the
	// whole tree out of the namespace at once, and no path leads back to it.
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the old root: %w", err)
	}
	// Parts of /proc show the host's kernel, or change it: out of sight,
	// or read-only (lockdown.go).
	if err := maskProc(); err != nil {
		return err
	}

	// Wait for the cable, then set up its end and lo: the command needs them.
	addr, err := waitForCable()
	if err != nil {
		return err
	}
	if err := plugInside(addr); err != nil {
		return err
	}
	// A cgroup namespace's root is the cgroup its first process is in as it
	// is made. On v2 the clone made the child in its own cgroup: that is the
	// root. On v1 run has only now put it in: the root is still run's cgroup,
	// and the container would see the path from there. One made now has its
	// root here (cgroup.go). unshare changes this thread only: the one that
	// execs (plumbing.go locks it).
	if !cgroupIsRoot() {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("a cgroup namespace rooted in the container's cgroup: %w", err)
		}
	}

	// The image's config: the command's arguments, environment, directory and user (command.go).
	s, err := startOf(c)
	if err != nil {
		return err
	}
	// After pivot_root, the command is looked for in the container's files.
	path, err := lookPath(s.argv[0])
	if err != nil {
		return err
	}
	// Last, on the thread that execs: capabilities dropped, no_new_privs,
	// and the seccomp filter, which hold for the command and all it starts.
	if err := lockDown(); err != nil {
		return err
	}
	if err := s.becomeUser(); err != nil { // its exec gives it no capability
		return err
	}
	// Exec, not fork: the command takes over this process, so no Go code
	// stays between it and run, and the command, not a Go program, is PID 1.
	err = unix.Exec(path, s.argv, s.env)
	return commandError(s.argv[0], err)
}
