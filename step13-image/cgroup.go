// This file holds the cgroups of step06: the control groups that limit
// what a container may use. main.go calls createCgroup, remove and add
// (step10: run, not the child, puts the child in on v1); the rest is here.
// cgroup v2, the unified hierarchy that most machines have now, comes
// first; v1 (older distributions, and hybrid machines that mount v1
// controllers beside an empty v2) after it; last, step10's cgroup without
// the host's root, in a cgroup v2 delegated to the user; and what step11's
// cgroup namespace needs to know, whether the container's cgroup is its root.

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

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
	v2    bool
	dirs  []string
	made  []string // the directories this run made, and so may remove
	locks []int    // this run's locks on them, held while it lives
	fd    int      // on v2, its directory, open for CLONE_INTO_CGROUP

	// Without the host's root: the cgroup delegated to the user that run
	// started in, the leaf run moved to, and the controllers it enabled.
	given, leaf string
	enabled     []string
}

// mkdir makes one of the container's cgroup directories, locked.
func (cg *cgroup) mkdir(dir string) error {
	fd, err := mkdirLocked(dir)
	if err != nil {
		return err
	}
	cg.made, cg.locks = append(cg.made, dir), append(cg.locks, fd)
	return nil
}

// mkdirLocked makes a directory and locks it: the lock tells every other
// run, in any PID namespace, that it is in use, from before it holds
// anything until this run ends. Runs clean up (removeLeftovers) with the
// parent directory locked, so it is held, shared, until then. It returns
// the descriptor that holds the lock.
func mkdirLocked(dir string) (int, error) {
	parent, err := lock(filepath.Dir(dir), unix.LOCK_SH)
	if err != nil {
		return -1, err
	}
	defer unix.Close(parent)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return -1, err
	}
	fd, err := lock(dir, unix.LOCK_EX)
	if err != nil {
		_ = os.Remove(dir)
	}
	return fd, err
}

// lock locks a directory with flock(2) and returns the descriptor that
// holds the lock. The kernel lets go of it when the process ends, however
// it ends.
func lock(dir string, how int) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Flock(fd, how); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
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

// createCgroup makes the cgroup of the container that this run starts, with
// the limits c asks for. It cleans up after runs that were killed before
// they could remove theirs, and leaves nothing half made.
func createCgroup(c config) (cg *cgroup, err error) {
	name, err := cgroupName("self")
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return delegatedCgroup(c, name)
	}
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
		removeLeftovers(filepath.Dir(dir), unix.Rmdir) // which fails while it has processes
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
		return cg, cg.makeV2(c)
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

// makeV2 makes the container's cgroup v2, with the limits c asks for, and
// opens it for CLONE_INTO_CGROUP.
func (cg *cgroup) makeV2(c config) (err error) {
	if err := cg.mkdir(cg.dirs[0]); err != nil {
		return err
	}
	err = writeAll(cg.dirs[0], [][2]string{
		{"pids.max", strconv.Itoa(c.pids)},
		{"memory.max", strconv.FormatInt(c.memory, 10)},
		{"memory.swap.max", "0"}, // or the memory limit would only push pages to swap
		{"cpu.max", strconv.Itoa(int(math.Round(c.cpus*100000))) + " 100000"},
	})
	if err != nil {
		return err
	}
	cg.fd, err = unix.Open(cg.dirs[0], unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	return err
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

// add puts process pid in the container's cgroups on v1; on v2 the kernel
// started it there. The process itself, root in its user namespace only,
// may not write to the host's cgroup files.
func (cg *cgroup) add(pid int) error {
	if cg.v2 {
		return nil
	}
	for _, dir := range cg.dirs {
		if err := write(dir, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	return nil
}

// remove removes the container's cgroup. The kernel may call it busy for a
// moment after its last process has exited, so it tries again for a while.
func (cg *cgroup) remove() {
	if cg.fd > 0 {
		unix.Close(cg.fd)
	}
	for _, dir := range cg.made {
		for try := 0; try < 100; try++ {
			err := unix.Rmdir(dir)
			if err == nil || errors.Is(err, unix.ENOENT) || !errors.Is(err, unix.EBUSY) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, fd := range cg.locks {
		unix.Close(fd)
	}
	if cg.leaf != "" {
		// The delegated cgroup as it was given: its controllers off, run
		// back in it, run's leaf gone.
		off := strings.ReplaceAll(strings.Join(cg.enabled, " "), "+", "-")
		_ = write(cg.given, "cgroup.subtree_control", off)
		_ = write(cg.given, "cgroup.procs", strconv.Itoa(os.Getpid()))
		_ = unix.Rmdir(cg.leaf)
	}
}

// delegatedCgroup makes the container's cgroup without the host's root, in
// the cgroup v2 that run started in, where that one was delegated to the
// user (its directory and its files are theirs: cgroup-v2.rst,
// "Delegation") and holds run alone. systemd-run --user --scope -p
// Delegate=yes starts run in such a cgroup. Where there is none, it leaves
// the limits out, and says so.
func delegatedCgroup(c config, name string) (cg *cgroup, err error) {
	given, err := givenCgroup()
	if err != nil {
		return nil, err
	}
	if given == "" {
		leftOut("cgroup limits", "they need the host's root (sudo), or a cgroup v2 delegated to run alone (systemd-run --user --scope -p Delegate=yes)")
		return &cgroup{}, nil
	}
	procs, err := os.ReadFile(filepath.Join(given, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(given)
	if err != nil {
		return nil, err
	}
	alone := strings.TrimSpace(string(procs)) == strconv.Itoa(os.Getpid())
	for _, e := range entries {
		alone = alone && !e.IsDir() // no cgroup below it either
	}
	if !alone {
		leftOut("cgroup limits", "the cgroup delegated to you, "+given+", holds more than run: give run one of its own (systemd-run --user --scope -p Delegate=yes)")
		return &cgroup{}, nil
	}
	available, err := os.ReadFile(filepath.Join(given, "cgroup.controllers"))
	if err != nil {
		return nil, err
	}
	var enable, missing []string
	for _, controller := range []string{"pids", "memory", "cpu"} {
		if slices.Contains(strings.Fields(string(available)), controller) {
			enable = append(enable, "+"+controller)
		} else {
			missing = append(missing, controller)
		}
	}
	if len(enable) == 0 {
		leftOut("cgroup limits", "the cgroup delegated to you, "+given+", has no pids, memory or cpu controller")
		return &cgroup{}, nil
	}
	for _, controller := range missing {
		leftOut("the "+controller+" limit", "the cgroup delegated to you, "+given+", has no "+controller+" controller")
	}
	cg = &cgroup{v2: true, dirs: []string{filepath.Join(given, name)}, given: given}
	defer func() {
		if err != nil {
			cg.remove()
			err = fmt.Errorf("cgroup: %w", err)
		}
	}()
	// A cgroup that enables controllers for its children may hold no
	// process itself (the "no internal processes" rule): run moves to a
	// leaf of its own first, beside the container's cgroup.
	if err := os.Mkdir(filepath.Join(given, name+"-run"), 0o755); err != nil {
		return cg, err
	}
	cg.leaf = filepath.Join(given, name+"-run")
	if err := write(cg.leaf, "cgroup.procs", strconv.Itoa(os.Getpid())); err != nil {
		return cg, err
	}
	if err := write(given, "cgroup.subtree_control", strings.Join(enable, " ")); err != nil {
		return cg, err
	}
	cg.enabled = enable
	return cg, cg.makeV2(c)
}

// givenCgroup returns the directory of the cgroup v2 that run started in
// (/proc/self/cgroup's "0::" line), if it was delegated to the user: run,
// as who it runs as (its effective ids), may write to it and to the two
// files that move processes and enable controllers. Otherwise it returns "".
func givenCgroup() (string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupRoot, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return "", nil // cgroup v1: nothing there is ever delegated
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(self), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			dir := filepath.Join(cgroupRoot, path)
			for _, file := range []string{".", "cgroup.procs", "cgroup.subtree_control"} {
				if unix.Faccessat(unix.AT_FDCWD, filepath.Join(dir, file), unix.W_OK, unix.AT_EACCESS) != nil {
					return "", nil
				}
			}
			return dir, nil
		}
	}
	return "", nil
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

// removeLeftovers removes, with remove, what runs that have ended left
// under parent without removing it (killed with SIGKILL): directories
// named as runs name them that no run holds a lock on. Whether a run lives
// cannot be told from its PID, which another PID namespace numbers
// otherwise.
func removeLeftovers(parent string, remove func(string) error) {
	held, err := lock(parent, unix.LOCK_EX) // no run makes a cgroup meanwhile
	if err != nil {
		return
	}
	defer unix.Close(held)
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		pid, start, ok := strings.Cut(e.Name(), "-")
		if _, err := strconv.ParseUint(pid+start, 10, 64); !ok || pid == "" || start == "" || err != nil || !e.IsDir() {
			continue // not named as runs name them
		}
		dir := filepath.Join(parent, e.Name())
		if fd, err := lock(dir, unix.LOCK_EX|unix.LOCK_NB); err == nil {
			_ = remove(dir)
			unix.Close(fd)
		}
	}
}

// limitFlag reads the value of a limit's flag into v, and refuses one out of
// the range from least to most. The child counts against the limits too:
// on cgroup v2 it starts in the cgroup, and until it execs the command it
// is a Go program, with a few threads (pids counts threads) and a few MiB of
// its own. The kernel takes no less than 1 ms of CPU per 100 ms period, and
// no more than 4194304 processes.
func limitFlag[T int | int64 | float64](v *T, least, most T) func(string) error {
	return func(s string) error {
		var n T
		var err error
		switch p := any(&n).(type) {
		case *int:
			*p, err = strconv.Atoi(s)
		case *int64:
			*p, err = parseSize(s)
		case *float64:
			*p, err = strconv.ParseFloat(s, 64)
		}
		var numErr *strconv.NumError
		switch {
		case errors.As(err, &numErr):
			return errors.New("not a number")
		case err != nil:
			return err // parseSize's, which says how to write a size
		case !(n >= least): // also NaN
			return fmt.Errorf("must be at least %s", showLimit(least))
		case n > most:
			return fmt.Errorf("must be at most %s", showLimit(most))
		}
		*v = n
		return nil
	}
}

// showLimit writes a limit as the command line takes it: sizes with K, M or G.
func showLimit(v any) string {
	if size, ok := v.(int64); ok {
		for _, u := range []struct {
			shift uint
			name  string
		}{{30, "G"}, {20, "M"}, {10, "K"}} {
			if size%(1<<u.shift) == 0 {
				return fmt.Sprint(size>>u.shift, u.name)
			}
		}
	}
	return fmt.Sprint(v)
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

// cgroupIsRoot reports whether this process sees its cgroup as the root of
// its cgroup namespace, "/", in every hierarchy: /proc/self/cgroup gives a
// path from that root ("0::/" on v2, "4:pids:/" on v1), with "/.." in it
// for a cgroup outside the root.
func cgroupIsRoot() bool {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if !strings.HasSuffix(line, ":/") {
			return false
		}
	}
	return true
}
