// This file holds the kernel calls that bench measures alone, to tell
// where a step's time goes: a clone with the step's namespaces and the
// exit that tears them down, its cgroup, its overlay, its veth pair. Each
// makes the calls the steps make, from a thread of bench's own in
// namespaces of its own: the machine's mounts and network never see them.

package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A thread is an OS thread that a goroutine holds for good, in namespaces
// of its own: unshare(2) changes the namespaces of the calling thread
// only, and a Go program's goroutines move between threads unless one is
// locked. The lock is never let go: when the goroutine returns, the Go
// runtime ends the thread instead of giving it to another goroutine, and
// the namespaces that only it was in end with it.
type thread struct{ work chan func() }

// newThread starts a thread and runs setup on it, to enter its namespaces.
func newThread(setup func() error) (*thread, error) {
	t := &thread{work: make(chan func())}
	ready := make(chan error)
	go func() {
		runtime.LockOSThread()
		if err := setup(); err != nil {
			ready <- err
			return
		}
		ready <- nil
		for f := range t.work {
			f()
		}
	}()
	return t, <-ready
}

// do runs f on the thread, and returns when it is done.
func (t *thread) do(f func()) {
	done := make(chan struct{})
	t.work <- func() { f(); close(done) }
	<-done
}

// end ends the thread, and its namespaces.
func (t *thread) end() {
	if t != nil {
		close(t.work)
	}
}

// The kernel is where bench runs things: the runner, a thread in network
// and mount namespaces of bench's own, starts every contender and makes
// every call measured alone but the overlay's, which a thread in a private
// mount namespace makes.
type kernel struct {
	runner, mounts  *thread
	nearNS          int // the runner's network namespace, open
	c               *course
	tmp             string
	devNull, stderr *os.File // what every run gets
	cat             string   // the clones' child (cloneProbe)
	n               int      // runs so far, to name what each makes
}

func newKernel(tmp string, c *course) (*kernel, error) {
	k := &kernel{c: c, tmp: tmp, nearNS: -1}
	var err error
	if k.cat, err = exec.LookPath("cat"); err != nil {
		return nil, err
	}
	if k.devNull, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
		return nil, err
	}
	// A run's error output goes to a file, not a pipe: no goroutine copies
	// it while the clock runs. It is read when a run fails.
	if k.stderr, err = os.Create(filepath.Join(tmp, "stderr")); err != nil {
		k.close()
		return nil, err
	}
	// The steps' cables (cfs0, and eth0 inside) are made in the network
	// namespace of the run that makes them: the runner's, not the
	// machine's. The runner's mount namespace receives the machine's
	// mounts and passes none back (a slave): runc bind-mounts itself in
	// its state directory while it starts a container, and the machine's
	// mount table never sees that either.
	k.runner, err = newThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET | unix.CLONE_NEWNS); err != nil {
			return err
		}
		return unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, "")
	})
	if err != nil {
		k.close()
		return nil, fmt.Errorf("namespaces for the contenders: %w", err)
	}
	return k, nil
}

// close ends the threads, and with them bench's namespaces.
func (k *kernel) close() {
	k.runner.end()
	k.mounts.end()
	if k.nearNS >= 0 {
		unix.Close(k.nearNS)
	}
	for _, f := range []*os.File{k.devNull, k.stderr} {
		if f != nil {
			f.Close()
		}
	}
}

// A probe is one measurement of kernel calls made alone: its times by part.
type probe struct {
	name string
	run  func() (map[string]time.Duration, error)
	// oneCPU runs it on one CPU, with the processes it starts: see onOneCPU.
	oneCPU bool
}

// probes are the measurements that the chosen steps' parts need.
func (k *kernel) probes(chosen []step) ([]probe, error) {
	// Every set of namespaces the steps use, and none: the time a clone
	// takes to start a child, and then for the child to exit and be
	// waited for.
	list := []probe{k.cloneProbe(0)}
	seen := map[uintptr]bool{}
	var cgroup, overlay, veth bool
	for _, s := range chosen {
		if s.flags != 0 && !seen[s.flags] {
			seen[s.flags] = true
			list = append(list, k.cloneProbe(s.flags))
		}
		cgroup, overlay, veth = cgroup || s.cgroup, overlay || s.overlay, veth || s.veth
	}
	if cgroup {
		cg, err := findCgroups()
		if err != nil {
			return nil, err
		}
		cg.removeLeftovers()
		list = append(list, probe{name: "cgroup", run: func() (map[string]time.Duration, error) { return k.cgroupProbe(cg) }, oneCPU: true})
	}
	if overlay {
		err := os.Mkdir(filepath.Join(k.tmp, "overlay"), 0o700)
		if err == nil {
			k.mounts, err = newThread(func() error {
				// Private first, as the steps make their /: a mount under a
				// shared one would reach the machine's mount table.
				if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
					return err
				}
				return unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
			})
		}
		if err != nil {
			return nil, fmt.Errorf("a mount namespace for the overlay: %w", err)
		}
		list = append(list, probe{name: "overlay", run: k.overlayProbe})
	}
	if veth {
		// The runner's own, to come back to from the container's.
		var err error
		k.runner.do(func() {
			k.nearNS, err = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		})
		if err != nil {
			return nil, err
		}
		list = append(list, probe{name: "veth", run: k.vethProbe, oneCPU: true})
	}
	return list, nil
}

// Part names, as the tables and the chart show them.
const (
	partClone    = "clone"
	partTeardown = "teardown"
	partCgroup   = "cgroup"
	partOverlay  = "overlay"
	partVethAdd  = "veth add"
	partVethDel  = "veth delete"
	partRest     = "Go programs and the rest"
)

// startKey and waitKey name a clone probe's times: the time to start its
// child with these namespaces, and then for it to exit and be waited for,
// its namespaces torn down.
func startKey(flags uintptr) string { return "start " + nsNames(flags) }
func waitKey(flags uintptr) string  { return "wait " + nsNames(flags) }

// nsNames names a set of namespaces as /proc/PID/ns does.
func nsNames(flags uintptr) string {
	if flags == 0 {
		return "none"
	}
	names := ""
	for _, n := range []struct {
		flag uintptr
		name string
	}{{unix.CLONE_NEWUSER, "user"}, {unix.CLONE_NEWUTS, "uts"}, {unix.CLONE_NEWPID, "pid"}, {unix.CLONE_NEWNS, "mnt"},
		{unix.CLONE_NEWNET, "net"}, {unix.CLONE_NEWIPC, "ipc"}, {unix.CLONE_NEWCGROUP, "cgroup"}} {
		if flags&n.flag != 0 {
			if names != "" {
				names += " "
			}
			names += n.name
		}
	}
	return names
}

// cloneProbe starts a child with these namespaces as a step starts its
// child (syscall.SysProcAttr.Cloneflags), then lets it exit, and waits
// for it. The child is cat, which bench hands a byte and gets it back
// before it lets it exit (by closing its input): then the time to start
// it ends with its exec, the time to exit begins once it has started,
// and neither holds the dynamic loader's work in between, which with
// /bin/true would fall in one or the other from run to run.
func (k *kernel) cloneProbe(flags uintptr) probe {
	return probe{name: "clone " + nsNames(flags), oneCPU: true, run: func() (map[string]time.Duration, error) {
		attr := &syscall.SysProcAttr{Cloneflags: flags, Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if flags&unix.CLONE_NEWUSER != 0 {
			// As step10 does as root: 0 inside is the root filesystem's
			// owner outside, and the child becomes it.
			attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: k.c.owner[0], Size: 1}}
			attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: k.c.owner[1], Size: 1}}
			attr.GidMappingsEnableSetgroups = true
			attr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
		}
		cat, err := k.startCat(attr)
		if err != nil {
			return nil, fmt.Errorf("clone with new %s namespaces: %w", nsNames(flags), err)
		}
		start, err := cat.ready()
		if err != nil {
			return nil, fmt.Errorf("cat in new %s namespaces: %w", nsNames(flags), err)
		}
		wait, err := cat.end()
		if err != nil {
			return nil, fmt.Errorf("cat in new %s namespaces: %w", nsNames(flags), err)
		}
		return map[string]time.Duration{startKey(flags): start, waitKey(flags): wait}, nil
	}}
}

// A cat is a child that waits for bench: cat(1), reading a pipe.
type cat struct {
	cmd     *exec.Cmd
	in, out *os.File // bench's ends of its input and output
	started time.Duration
}

// startCat starts cat, and times its start: from the fork to its exec.
func (k *kernel) startCat(attr *syscall.SysProcAttr) (*cat, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	c := &cat{in: inW, out: outR,
		cmd: &exec.Cmd{Path: k.cat, Args: []string{"cat"}, Stdin: inR, Stdout: outW, Stderr: k.devNull, SysProcAttr: attr}}
	start := time.Now()
	err = c.cmd.Start()
	c.started = time.Since(start)
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	return c, nil
}

// ready hands cat a byte and waits for it back: cat has then started,
// and waits for more. It returns the time cat took to start.
func (c *cat) ready() (time.Duration, error) {
	b := []byte{'.'}
	_, err := c.in.Write(b)
	if err == nil {
		_, err = io.ReadFull(c.out, b)
	}
	if err != nil {
		c.end()
	}
	return c.started, err
}

// end lets cat exit, by closing its input, and waits for it: it returns
// the time from there to when the kernel has reaped it.
func (c *cat) end() (time.Duration, error) {
	start := time.Now()
	c.in.Close()
	err := c.cmd.Wait()
	took := time.Since(start)
	c.out.Close()
	return took, err
}

// onOneCPU runs f with the calling thread, and the processes it starts,
// kept to one CPU, where the thread goes first. A process that wakes
// another on a CPU that sleeps waits for that CPU to wake up, which in a
// virtual machine can take longer than the kernel calls being measured,
// and more on some runs than on others. On one CPU, the one that wakes
// is the one that runs next; and with a real-time priority that its
// children do not inherit (SCHED_RESET_ON_FORK), the thread runs as soon
// as it may, not once a child is done with its own work, such as a
// program's dynamic loader after an exec. Where real-time priority is
// not allowed, f runs without it.
func onOneCPU(f func()) error {
	var all, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		return err
	}
	for cpu := 0; cpu < len(all)*64; cpu++ {
		if all.IsSet(cpu) {
			one.Set(cpu)
			break
		}
	}
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return err
	}
	first := unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1,
		Flags: unix.SCHED_FLAG_RESET_ON_FORK}, 0) == nil
	f()
	if first {
		if err := unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}, 0); err != nil {
			return err
		}
	}
	return unix.SchedSetaffinity(0, &all)
}

// The cgroups, as step06's cgroup.go finds them: cgroupParent in each
// hierarchy, where every container's cgroup goes.
const (
	cgroupRoot   = "/sys/fs/cgroup"
	cgroupParent = "containers-from-scratch"
)

// cgroups are the parent directories of the containers' cgroups: one on
// v2, one per hierarchy of step06's controllers on v1 (and hybrid).
type cgroups struct {
	v2      bool
	parents []string
}

func findCgroups() (cgroups, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupRoot, &st); err != nil {
		return cgroups{}, fmt.Errorf("no cgroup file system at %s: %w", cgroupRoot, err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return cgroups{v2: true, parents: []string{filepath.Join(cgroupRoot, cgroupParent)}}, nil
	}
	cg := cgroups{}
	seen := map[string]bool{}
	for _, controller := range []string{"pids", "memory", "cpu", "cpuacct"} {
		hierarchy, err := filepath.EvalSymlinks(filepath.Join(cgroupRoot, controller))
		if err != nil {
			return cg, fmt.Errorf("the %s cgroup controller is not available: no %s/%s", controller, cgroupRoot, controller)
		}
		if !seen[hierarchy] {
			seen[hierarchy] = true
			cg.parents = append(cg.parents, filepath.Join(hierarchy, cgroupParent))
		}
	}
	return cg, nil
}

// removeLeftovers removes the cgroups that a bench killed with SIGKILL
// left, named after its PID, now that no process has that PID: rmdir
// removes a cgroup only when no process is in it.
func (cg cgroups) removeLeftovers() {
	for _, parent := range cg.parents {
		dirs, _ := filepath.Glob(filepath.Join(parent, "bench-*-*"))
		for _, dir := range dirs {
			pid := strings.Split(filepath.Base(dir), "-")[1]
			if _, err := os.Stat("/proc/" + pid); errors.Is(err, os.ErrNotExist) {
				_ = unix.Rmdir(dir)
			}
		}
	}
}

// cgroupProbe times a container's cgroup as step06 and step10 handle
// it: made, with the default limits; a process put in it; removed once
// that process has ended. The process is cat, reading a pipe, and its own
// start and exit do not count. On v2 the clone starts it in the cgroup
// (CLONE_INTO_CGROUP), and nothing more is to be timed; on v1 a write of
// its PID to each hierarchy's cgroup.procs moves it there. That write
// takes the kernel's lock on moving processes between cgroups
// (cgroup_threadgroup_rwsem) for writing, which waits for an RCU grace
// period unless another move took it a moment before: a few milliseconds,
// some of the time. The cgroup's name starts with "bench-": the steps
// clean up only cgroups named as theirs.
func (k *kernel) cgroupProbe(cg cgroups) (map[string]time.Duration, error) {
	k.n++
	name := fmt.Sprintf("bench-%d-%d", os.Getpid(), k.n)
	var made []string
	fd := -1
	var mk, join, rm time.Duration
	clock := time.Now()

	err := makeCgroup(cg, name, &made, &fd)
	mk = time.Since(clock)
	if err == nil {
		var c *cat
		attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, UseCgroupFD: cg.v2, CgroupFD: fd}
		if c, err = k.startCat(attr); err == nil {
			clock = time.Now()
			if !cg.v2 {
				for _, dir := range made {
					if err = writeCgroup(dir, "cgroup.procs", strconv.Itoa(c.cmd.Process.Pid)); err != nil {
						break
					}
				}
			}
			join = time.Since(clock)
			_, endErr := c.end()
			err = errors.Join(err, endErr)
		}
	}

	clock = time.Now()
	if fd >= 0 {
		unix.Close(fd)
	}
	for _, dir := range made {
		err = errors.Join(err, removeCgroup(dir))
	}
	rm = time.Since(clock)
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	times := map[string]time.Duration{partCgroup: mk + join + rm, cgroupMade: mk, cgroupRemoved: rm}
	if !cg.v2 {
		times[cgroupJoined] = join
	}
	return times, nil
}

// The cgroup's parts, in the table of what was measured alone.
const (
	cgroupMade    = "cgroup made"
	cgroupJoined  = "cgroup joined"
	cgroupRemoved = "cgroup removed"
)

// makeCgroup makes the cgroup called name as step06's createCgroup does,
// and notes what it made, and on v2 the descriptor that clone3 takes.
func makeCgroup(cg cgroups, name string, made *[]string, fd *int) error {
	if cg.v2 {
		// The parents enable the controllers for their children.
		for _, dir := range []string{cgroupRoot, cg.parents[0]} {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if err := writeCgroup(dir, "cgroup.subtree_control", "+pids +memory +cpu"); err != nil {
				return err
			}
		}
		dir := filepath.Join(cg.parents[0], name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		*made = append(*made, dir)
		for _, f := range [][2]string{{"pids.max", "256"}, {"memory.max", "268435456"}, {"memory.swap.max", "0"}, {"cpu.max", "100000 100000"}} {
			if err := writeCgroup(dir, f[0], f[1]); err != nil {
				return err
			}
		}
		var err error
		*fd, err = unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		return err
	}
	for _, parent := range cg.parents {
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return err
		}
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		*made = append(*made, dir)
		for _, f := range [][2]string{{"pids.max", "256"}, {"memory.limit_in_bytes", "268435456"},
			{"memory.memsw.limit_in_bytes", "268435456"}, {"cpu.cfs_period_us", "100000"}, {"cpu.cfs_quota_us", "100000"}} {
			// Each hierarchy has its own controller's files only.
			if _, err := os.Stat(filepath.Join(dir, f[0])); err != nil {
				continue
			}
			if err := writeCgroup(dir, f[0], f[1]); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeCgroup removes a cgroup as the steps do: the kernel may call it
// busy for a moment after its last process has exited, so it tries again,
// every 10 ms, for a second.
func removeCgroup(dir string) error {
	for try := 0; ; try++ {
		err := unix.Rmdir(dir)
		if err == nil || !errors.Is(err, unix.EBUSY) || try == 100 {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeCgroup(dir, file, value string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0o644); err != nil {
		return fmt.Errorf("write %q to %s: %w", value, filepath.Join(dir, file), errors.Unwrap(err))
	}
	return nil
}

// overlayProbe makes a container's directories as step08 does, mounts its
// overlay on the root filesystem, unmounts it and removes them, on the
// thread in bench's mount namespace.
func (k *kernel) overlayProbe() (map[string]time.Duration, error) {
	k.n++
	dir := filepath.Join(k.tmp, "overlay", strconv.Itoa(k.n))
	var took time.Duration
	var err error
	k.mounts.do(func() {
		start := time.Now()
		upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
		err = os.Mkdir(dir, 0o700)
		for _, d := range []string{upper, work, merged} {
			if err == nil {
				err = os.Mkdir(d, 0o755)
			}
		}
		if err == nil {
			options := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", k.c.rootfs, upper, work)
			if err = unix.Mount("overlay", merged, "overlay", 0, options); err != nil {
				err = fmt.Errorf("mount overlay on %s: %w", merged, err)
			} else if err = unix.Unmount(merged, 0); err != nil {
				err = fmt.Errorf("unmount %s: %w", merged, err)
			}
		}
		err = errors.Join(err, os.RemoveAll(dir))
		took = time.Since(start)
	})
	if err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	return map[string]time.Duration{partOverlay: took}, nil
}

// vethProbe plugs in a cable as step09 does, with netlink, to a
// container of bench's: cat in a network namespace of its own. A veth
// pair whose far end is made in that namespace, each end with an address
// and up, the far one running: what step09's run and child do. Then cat
// exits, which sets the kernel tearing its namespace down, in the
// background; and bench deletes the cable, as step09's run does once its
// container has ended: the kernel's teardown may be deleting it already,
// and then the delete waits for it, and finds nothing left (ENODEV).
func (k *kernel) vethProbe() (map[string]time.Duration, error) {
	c, err := k.startCat(&syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET, Setpgid: true, Pdeathsig: syscall.SIGKILL})
	if err != nil {
		return nil, fmt.Errorf("veth: a container for its far end: %w", err)
	}
	if _, err := c.ready(); err != nil {
		return nil, fmt.Errorf("veth: a container for its far end: %w", err)
	}
	inside, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", c.cmd.Process.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		c.end()
		return nil, err
	}
	defer unix.Close(inside)

	start := time.Now()
	// ip link add bench0 type veth peer name eth0 netns PID
	link := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "bench0"}, PeerName: "eth0", PeerNamespace: netlink.NsPid(c.cmd.Process.Pid)}
	err = netlink.LinkAdd(link)
	if err == nil {
		err = plugIn(link, "10.200.0.1")
	}
	if err == nil {
		// The far end's side, which step09's child does inside: setns moves
		// this thread into the container's namespace, and back.
		if err = unix.Setns(inside, unix.CLONE_NEWNET); err == nil {
			var eth0 netlink.Link
			if eth0, err = netlink.LinkByName("eth0"); err == nil {
				err = plugIn(eth0, "10.200.0.2")
			}
			if err == nil {
				err = waitRunning("eth0")
			}
			if back := unix.Setns(k.nearNS, unix.CLONE_NEWNET); back != nil {
				// An error stops the rounds: no step runs in the wrong
				// namespace.
				err = errors.Join(err, fmt.Errorf("setns back to bench's network namespace: %w", back))
			}
		}
	}
	add := time.Since(start)

	_, endErr := c.end()
	start = time.Now()
	// ip link del bench0
	if delErr := netlink.LinkDel(link); delErr != nil && !errors.Is(delErr, unix.ENODEV) {
		err = errors.Join(err, delErr)
	}
	del := time.Since(start)
	if err = errors.Join(err, endErr); err != nil {
		return nil, fmt.Errorf("veth: %w", err)
	}
	return map[string]time.Duration{partVethAdd: add, partVethDel: del}, nil
}

// plugIn gives a link an address of a /30 and sets it up.
func plugIn(link netlink.Link, ip string) error {
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(ip), Mask: net.CIDRMask(30, 32)}}
	if err := netlink.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("ip addr add %s dev %s: %w", addr.IPNet, link.Attrs().Name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("ip link set %s up: %w", link.Attrs().Name, err)
	}
	return nil
}

// waitRunning waits, as step09's child does, for the link to be running
// (its operational state UP), for a second at most.
func waitRunning(name string) error {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Microsecond) {
		link, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		if link.Attrs().OperState == netlink.OperUp {
			return nil
		}
	}
	return nil
}
