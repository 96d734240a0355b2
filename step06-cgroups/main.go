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
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// prog names this program in its messages. os.Args[0] would not do: go run
// names the program after a temporary file, and a re-executed program is
// started as /proc/self/exe.
const prog = "step06-cgroups"

const usage = "usage: " + prog + " run [-rootfs DIR] [-pids N] [-memory SIZE] [-cpus F] CMD [ARG...]"

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
	rootfs string   // directory that becomes the container's /
	pids   int      // most processes at once
	memory int64    // most bytes of memory
	cpus   float64  // most CPUs' worth of processor time
	argv   []string // the command and its arguments
}

func parseArgs(args []string) (config, error) {
	var c config
	flags := flag.NewFlagSet(prog, flag.ContinueOnError)
	flags.SetOutput(io.Discard) // usageError says what went wrong
	flags.StringVar(&c.rootfs, "rootfs", "rootfs", "directory to use as the container's root filesystem")
	// The defaults let a shell and ps work, and stop a fork bomb.
	flags.IntVar(&c.pids, "pids", 256, "most processes at once")
	c.memory = 256 << 20
	flags.Func("memory", "most memory, in bytes or with K, M or G (default 256M)", func(s string) (err error) {
		c.memory, err = parseSize(s)
		return err
	})
	flags.Float64Var(&c.cpus, "cpus", 1, "most CPUs' worth of processor time")
	// Parsing stops at the first argument that is not a flag, so the
	// command's own flags ("run ls -l") are left alone.
	if err := flags.Parse(args); errors.Is(err, flag.ErrHelp) {
		return c, usageError("")
	} else if err != nil {
		return c, usageError(err.Error())
	}
	// The child counts against the limits too: on cgroup v2 it starts in
	// the cgroup, and until it execs the command it is a Go program, with a
	// few threads (pids counts threads) and a few MiB of its own. The kernel
	// takes no less than 1 ms of CPU per 100 ms period, and no more than
	// 4194304 processes.
	if !(c.pids >= 10 && c.pids <= 4194304 && c.memory >= 16<<20 && c.cpus >= 0.01 && c.cpus <= 1024) {
		return c, usageError("-pids must be from 10 to 4194304, -memory at least 16M, -cpus from 0.01 to 1024")
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
	c, err := parseArgs(args)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("creating namespaces needs root: use sudo (go run -exec sudo ./" + prog + " run ...) or the workshop VM")
	}
	if err := checkRootfs(c.rootfs); err != nil {
		return err
	}
	name, err := cgroupName("self")
	if err != nil {
		return err
	}
	cg, err := createCgroup(name, c)
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
	// Our process group, the terminal's foreground group, does not exist
	// in the new PID namespace: an interactive shell as PID 1 could not
	// give the terminal back to it on exit. So the container gets a group
	// of its own, in the foreground, as a shell gives one to a job. Being
	// PID 1, it cannot be stopped by Ctrl-Z and keep the terminal.
	if _, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil {
		cmd.SysProcAttr.Foreground = true // Ctty 0 is its stdin, our terminal
	}
	// On cgroup v2 the kernel starts the child in its cgroup (clone3's
	// CLONE_INTO_CGROUP), before any of its code runs. On v1 the child
	// joins its cgroups itself, before it execs the command.
	if cg.v2 {
		dir, err := os.Open(cg.dirs[0])
		if err != nil {
			return err
		}
		defer dir.Close()
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(dir.Fd())
	}
	return runAndWait(cmd)
}

// child runs inside the new namespaces: it sets the container up, then
// replaces itself with the command.
func child(args []string) error {
	// child changes the hostname and mounts: on the host that would change
	// the host, so it only goes on where run has made new namespaces.
	if err := checkNewNamespaces("uts", "pid", "mnt"); err != nil {
		return err
	}
	c, err := parseArgs(args)
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

// checkRootfs makes sure dir looks like a root filesystem, so that a missing
// one gets a message that says how to build it.
func checkRootfs(dir string) error {
	entries, err := os.ReadDir(dir)
	if err == nil && len(entries) > 0 {
		return nil
	}
	abs, _ := filepath.Abs(dir)
	return fmt.Errorf("no root filesystem at %s: build one with \"go run ./mkrootfs %s\" from the repository root", abs, abs)
}

// cgroupRoot is where the cgroup file systems are mounted, and
// cgroupParent the cgroup of our own under which every container gets one:
// a child of the root, so that no cgroup of systemd's is touched.
const (
	cgroupRoot   = "/sys/fs/cgroup"
	cgroupParent = "containers-from-scratch"
)

// v1Controllers are the cgroup v1 hierarchies a container gets a cgroup in;
// cpuacct only counts, for whoever wants to see the CPU a container used.
var v1Controllers = []string{"pids", "memory", "cpu", "cpuacct"}

// A cgroup is one container's: one directory on cgroup v2, one in each
// controller's hierarchy on v1.
type cgroup struct {
	v2   bool
	dirs []string
	made []string // the directories this run made, and so may remove
}

func (cg *cgroup) mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	cg.made = append(cg.made, dir)
	return nil
}

// cgroupDirs finds the hierarchy this machine uses, and the directories of
// the cgroup called name in it. On a hybrid machine (v1 controllers beside
// an empty v2), the controllers are v1's.
func cgroupDirs(name string) (*cgroup, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupRoot, &st); err != nil {
		return nil, fmt.Errorf("no cgroup file system at %s: %w", cgroupRoot, err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return &cgroup{v2: true, dirs: []string{filepath.Join(cgroupRoot, cgroupParent, name)}}, nil
	}
	// v1 mounts its hierarchies in a tmpfs there; anything else is not a
	// cgroup hierarchy at all.
	if st.Type != unix.TMPFS_MAGIC {
		return nil, fmt.Errorf("no cgroup hierarchy is mounted at %s: mount cgroup2 there, or use a machine or VM of your own", cgroupRoot)
	}
	cg := &cgroup{}
	seen := map[string]bool{}
	for _, controller := range v1Controllers {
		// Hierarchies mounted together ("cpu,cpuacct") are one directory
		// under two names.
		hierarchy, err := filepath.EvalSymlinks(filepath.Join(cgroupRoot, controller))
		if err != nil {
			return nil, fmt.Errorf("the %s cgroup controller is not available: no %s/%s", controller, cgroupRoot, controller)
		}
		if !seen[hierarchy] {
			seen[hierarchy] = true
			cg.dirs = append(cg.dirs, filepath.Join(hierarchy, cgroupParent, name))
		}
	}
	return cg, nil
}

// createCgroup makes the cgroup of the container that run (PID name) starts,
// with the limits c asks for. It cleans up after runs that were killed
// before they could remove theirs, and leaves nothing half made.
func createCgroup(name string, c config) (cg *cgroup, err error) {
	if cg, err = cgroupDirs(name); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			cg.remove()
			err = fmt.Errorf("cgroup: %w", err)
		}
	}()
	for _, dir := range cg.dirs {
		removeLeftovers(filepath.Dir(dir))
	}
	if cg.v2 {
		// A controller is usable in a cgroup when its parent enables it for
		// its children; a cgroup with processes of its own may not (the
		// "no internal processes" rule), which is why every container's
		// cgroup is a leaf below a parent that holds none.
		for _, dir := range []string{cgroupRoot, filepath.Dir(cg.dirs[0])} {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return cg, err
			}
			if err := write(dir, "cgroup.subtree_control", "+pids +memory +cpu"); err != nil {
				return cg, fmt.Errorf("%w (are the pids, memory and cpu controllers available and delegated to %s?)", err, dir)
			}
		}
		if err := cg.mkdir(cg.dirs[0]); err != nil {
			return cg, err
		}
		return cg, writeAll(cg.dirs[0], [][2]string{
			{"pids.max", strconv.Itoa(c.pids)},
			{"memory.max", strconv.FormatInt(c.memory, 10)},
			{"memory.swap.max", "0"}, // or the memory limit would only push pages to swap
			{"cpu.max", strconv.Itoa(int(math.Round(c.cpus*100000))) + " 100000"},
		})
	}
	for _, dir := range cg.dirs {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return cg, err
		}
		if err := cg.mkdir(dir); err != nil {
			return cg, err
		}
		err := writeAll(dir, [][2]string{
			{"pids.max", strconv.Itoa(c.pids)},
			// Memory, then memory and swap together: never less than memory.
			{"memory.limit_in_bytes", strconv.FormatInt(c.memory, 10)},
			{"memory.memsw.limit_in_bytes", strconv.FormatInt(c.memory, 10)},
			{"cpu.cfs_period_us", "100000"},
			{"cpu.cfs_quota_us", strconv.Itoa(int(math.Round(c.cpus * 100000)))},
		})
		if err != nil {
			return cg, err
		}
	}
	return cg, nil
}

// writeAll writes, in order, each value to its file in dir, where the file
// exists: on v1 each hierarchy has its own controller's files only, and
// swap accounting may be off.
func writeAll(dir string, values [][2]string) error {
	for _, v := range values {
		if _, err := os.Stat(filepath.Join(dir, v[0])); err != nil {
			continue
		}
		if err := write(dir, v[0], v[1]); err != nil {
			return err
		}
	}
	return nil
}

func write(dir, file, value string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0o644); err != nil {
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err
		}
		return fmt.Errorf("write %q to %s: %w", value, filepath.Join(dir, file), err)
	}
	return nil
}

// joinCgroup moves the child into the v1 cgroups that run made for it,
// named after run. On v2 the kernel has put it in its cgroup already.
func joinCgroup() error {
	parent, err := parentPID()
	if err != nil {
		return err
	}
	name, err := cgroupName(parent)
	if err != nil {
		return err
	}
	cg, err := cgroupDirs(name)
	if err != nil || cg.v2 {
		return err
	}
	for _, dir := range cg.dirs {
		// "0" is the writing process itself.
		if err := write(dir, "cgroup.procs", "0"); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	return nil
}

// remove removes the container's cgroup. The kernel may call it busy for a
// moment after its last process has exited, so it tries again for a while.
func (cg *cgroup) remove() {
	for _, dir := range cg.made {
		for try := 0; try < 100; try++ {
			err := unix.Rmdir(dir)
			if err == nil || errors.Is(err, unix.ENOENT) || !errors.Is(err, unix.EBUSY) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// cgroupName names the cgroup of the container that run, process pid in
// /proc, starts: its PID and its start time, which run and child can both
// read, and which no other process shares even once the PID is reused.
func cgroupName(pid string) (string, error) {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "", err
	}
	// The fields after the command name, which is in parentheses: the
	// state is the first (field 3), the start time field 22.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 20 {
		return "", fmt.Errorf("/proc/%s/stat: too few fields", pid)
	}
	self := strings.Fields(string(stat))[0]
	return self + "-" + fields[19], nil
}

// removeLeftovers removes the cgroups, under parent, of runs that no longer
// exist: a run killed with SIGKILL cannot remove its own.
func removeLeftovers(parent string) {
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		pid, _, ok := strings.Cut(e.Name(), "-")
		if !ok || !e.IsDir() {
			continue
		}
		if name, err := cgroupName(pid); err != nil || name != e.Name() {
			_ = unix.Rmdir(filepath.Join(parent, e.Name())) // fails while it has processes
		}
	}
}

// parseSize reads a size such as 64M: bytes, or a number followed by K, M
// or G (powers of 1024).
func parseSize(s string) (int64, error) {
	digits, shift := s, uint(0)
	if n := len(s); n > 0 {
		if unit, ok := map[string]uint{"K": 10, "M": 20, "G": 30}[strings.ToUpper(s[n-1:])]; ok {
			digits, shift = s[:n-1], unit
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n <= 0 || n > 1<<(62-shift) {
		return 0, fmt.Errorf("invalid size %q: use bytes, or a number with K, M or G, as in 64M", s)
	}
	return n << shift, nil
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
		return &exitError{status: 127, err: fmt.Errorf("%s: command not found in the container's root filesystem", name)}
	case errors.Is(err, unix.ENOENT):
		// The file is there, so what is missing is what it needs to start:
		// its dynamic loader, or the interpreter its #! line names.
		return &exitError{status: 127, err: fmt.Errorf("%s: cannot run it: its dynamic loader or #! interpreter is missing from the container's root filesystem", name)}
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
