package steptest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// --- step11: IPC and cgroup namespaces ---

// ipcProbeName is the name under which the test binary looks for, or makes,
// the IPC objects of the namespace it runs in: System V shared memory,
// semaphores and message queues, and a POSIX message queue.
const ipcProbeName = "ipcprobe"

// ipcObjects are the IPC objects of one namespace that a test looks for:
// the System V ones by key (the name that programs share), the shared
// memory also by its id, and a POSIX message queue by name.
type ipcObjects struct {
	key   int    // of the segment, the semaphore set and the queue
	shmid int    // the segment's id in the namespace that made it
	queue string // the POSIX queue's name, "/" and a word
}

func (o ipcObjects) args() []string {
	return []string{strconv.Itoa(o.key), strconv.Itoa(o.shmid), o.queue}
}

// ipcProbe is the program ipcprobe: "look KEY SHMID QUEUE" says of each
// object whether this namespace has it; "make KEY SHMID QUEUE" makes a
// segment and a POSIX queue, says "made", and waits for a line on its
// input before it exits, without removing them.
func ipcProbe(args []string) {
	if len(args) != 4 {
		fmt.Println("usage: ipcprobe look|make KEY SHMID QUEUE")
		os.Exit(2)
	}
	key, _ := strconv.Atoi(args[1])
	shmid, _ := strconv.Atoi(args[2])
	o := ipcObjects{key, shmid, args[3]}
	switch args[0] {
	case "look":
		fmt.Print(lookFor(o, true))
	case "make":
		if _, err := unix.SysvShmGet(o.key, 4096, unix.IPC_CREAT|unix.IPC_EXCL|0o600); err != nil {
			fmt.Println("shmget:", err)
			os.Exit(1)
		}
		fd, err := mqOpen(o.queue, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR)
		if err != nil {
			fmt.Println("mq_open:", err)
			os.Exit(1)
		}
		unix.Close(fd)
		// The container's /dev/mqueue shows its namespace's queues.
		if _, err := os.Stat("/dev/mqueue" + o.queue); err != nil {
			fmt.Println("not in /dev/mqueue:", err)
			os.Exit(1)
		}
		fmt.Println("made")
		_, _ = os.Stdin.Read(make([]byte, 1))
	}
	os.Exit(0)
}

// lookFor says, one line for each of o's objects, "found" or what the
// kernel answered, in this process's IPC namespace; with files, also
// whether /dev/mqueue lists the queue.
func lookFor(o ipcObjects, files bool) string {
	found := func(err error) string {
		if err == nil {
			return "found"
		}
		return err.Error()
	}
	var b strings.Builder
	_, err := unix.SysvShmGet(o.key, 0, 0)
	fmt.Fprintf(&b, "shared memory by key: %s\n", found(err))
	mem, err := unix.SysvShmAttach(o.shmid, 0, unix.SHM_RDONLY)
	if err == nil {
		_ = unix.SysvShmDetach(mem)
	}
	fmt.Fprintf(&b, "shared memory by id: %s\n", found(err))
	_, _, errno := unix.Syscall(unix.SYS_SEMGET, uintptr(o.key), 0, 0)
	fmt.Fprintf(&b, "semaphores by key: %s\n", found(errnoErr(errno)))
	_, _, errno = unix.Syscall(unix.SYS_MSGGET, uintptr(o.key), 0, 0)
	fmt.Fprintf(&b, "message queue by key: %s\n", found(errnoErr(errno)))
	fd, err := mqOpen(o.queue, unix.O_RDONLY)
	if err == nil {
		unix.Close(fd)
	}
	fmt.Fprintf(&b, "POSIX queue by name: %s\n", found(err))
	if files {
		_, err = os.Stat("/dev/mqueue" + o.queue)
		if errors.Is(err, os.ErrNotExist) {
			err = unix.ENOENT
		}
		fmt.Fprintf(&b, "POSIX queue in /dev/mqueue: %s\n", found(err))
	}
	return b.String()
}

func errnoErr(errno unix.Errno) error {
	if errno != 0 {
		return errno
	}
	return nil
}

// mqOpen is mq_open(3): the system call takes the name without its "/".
func mqOpen(name string, flags int) (int, error) {
	p, err := unix.BytePtrFromString(strings.TrimPrefix(name, "/"))
	if err != nil {
		return -1, err
	}
	fd, _, errno := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)), uintptr(flags|unix.O_CLOEXEC), 0o666, 0, 0, 0)
	return int(fd), errnoErr(errno)
}

func mqUnlink(name string) error {
	p, err := unix.BytePtrFromString(strings.TrimPrefix(name, "/"))
	if err != nil {
		return err
	}
	_, _, errno := unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(p)), 0, 0)
	return errnoErr(errno)
}

// hostIPC makes, in the tests' IPC namespace, the host's, a shared memory
// segment, a semaphore set, a System V message queue and a POSIX message
// queue that anyone may use, and removes them when the test ends.
func hostIPC(t *testing.T) ipcObjects {
	t.Helper()
	o := ipcObjects{key: 0x43460000 | os.Getpid()&0xffff, queue: fmt.Sprintf("/cfs-test-%d", os.Getpid())}
	var err error
	for ; ; o.key++ { // a key no one else uses
		o.shmid, err = unix.SysvShmGet(o.key, 4096, unix.IPC_CREAT|unix.IPC_EXCL|0o666)
		if !errors.Is(err, unix.EEXIST) {
			break
		}
	}
	require.NoError(t, err, "shmget")
	t.Cleanup(func() { _, _ = unix.SysvShmCtl(o.shmid, unix.IPC_RMID, nil) })
	sem, _, errno := unix.Syscall(unix.SYS_SEMGET, uintptr(o.key), 1, unix.IPC_CREAT|unix.IPC_EXCL|0o666)
	require.NoError(t, errnoErr(errno), "semget")
	t.Cleanup(func() { unix.Syscall6(unix.SYS_SEMCTL, sem, 0, unix.IPC_RMID, 0, 0, 0) })
	msg, _, errno := unix.Syscall(unix.SYS_MSGGET, uintptr(o.key), unix.IPC_CREAT|unix.IPC_EXCL|0o666, 0)
	require.NoError(t, errnoErr(errno), "msgget")
	t.Cleanup(func() { unix.Syscall(unix.SYS_MSGCTL, msg, unix.IPC_RMID, 0) })
	_ = mqUnlink(o.queue) // a queue left by a killed test of the same PID
	fd, err := mqOpen(o.queue, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR)
	require.NoError(t, err, "mq_open")
	unix.Close(fd)
	t.Cleanup(func() { _ = mqUnlink(o.queue) })
	// The probe finds them here: what it says inside is not a blind probe's.
	require.Equal(t, "shared memory by key: found\nshared memory by id: found\nsemaphores by key: found\nmessage queue by key: found\nPOSIX queue by name: found\n",
		lookFor(o, false))
	return o
}

// withIPCProbe puts the test binary in the step's root filesystem as
// /ipcprobe for the test, and returns the command line that runs it.
func withIPCProbe(t *testing.T, s *Step, args ...string) []string {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	bin := filepath.Join(s.Rootfs, ipcProbeName)
	require.NoError(t, copyFile(self, bin, 0o755))
	t.Cleanup(func() { os.Remove(bin) })
	return append([]string{"/" + ipcProbeName}, args...)
}

// notFound is what the probe says inside a container that has an IPC
// namespace of its own, of the host's objects.
const notFound = `shared memory by key: no such file or directory
shared memory by id: invalid argument
semaphores by key: no such file or directory
message queue by key: no such file or directory
POSIX queue by name: no such file or directory
POSIX queue in /dev/mqueue: no such file or directory
`

// HostIPCIsOutOfReach makes IPC objects of every kind on the host, open to
// anyone, and checks that the container, run with sudo and without, finds
// none of them by key, id or name, and that ipcs and /dev/mqueue, a
// learner's way to look, do not show them.
func HostIPCIsOutOfReach(t *testing.T, s *Step) {
	RequireRoot(t)
	o := hostIPC(t)
	probe := strings.Join(withIPCProbe(t, s, append([]string{"look"}, o.args()...)...), " ")
	key := fmt.Sprintf("0x%08x", o.key)
	look := probe + "; echo @@@; ipcs; echo @@@; ls -a /dev/mqueue"
	check := func(t *testing.T, r Result) {
		require.Equal(t, 0, r.Status, r.Stderr)
		parts := strings.Split(r.Stdout, "@@@\n")
		require.Len(t, parts, 3, r.Stdout)
		assert.Equal(t, notFound, parts[0], "the container reaches the host's IPC objects")
		assert.NotContains(t, parts[1], key, "ipcs in the container lists the host's objects")
		assert.Contains(t, parts[1], "Shared Memory Segments", "ipcs did not run")
		assert.Equal(t, ".\n..\n", parts[2], "/dev/mqueue in the container is not its own, empty")
	}
	t.Run("root", func(t *testing.T) { check(t, s.Run(t, "sh", "-c", look)) })
	t.Run("without root", func(t *testing.T) {
		r := Finish(t, s.asUser(t, "run", "-rootfs", s.Rootfs, "-scratch", userScratch(t, s), "sh", "-c", look))
		check(t, r)
	})
}

// IPCMadeInsideStaysInside makes a segment and a POSIX queue in the
// container, the queue listed in its /dev/mqueue, and checks that the host
// cannot find them while it runs, nor after: the container's IPC namespace
// ends with its last process, and the kernel frees what it holds.
func IPCMadeInsideStaysInside(t *testing.T, s *Step) {
	RequireRoot(t)
	o := ipcObjects{key: 0x43470000 | os.Getpid()&0xffff, queue: fmt.Sprintf("/cfs-test-inside-%d", os.Getpid())}
	// A container in the host's IPC namespace would leave them here.
	t.Cleanup(func() {
		if id, err := unix.SysvShmGet(o.key, 0, 0); err == nil {
			_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
		}
		_ = mqUnlink(o.queue)
	})
	for _, user := range []string{"root", "without root"} {
		t.Run(user, func(t *testing.T) {
			argv := withIPCProbe(t, s, append([]string{"make"}, o.args()...)...)
			cmd := s.Command(t, s.RunArgs(argv...)...)
			if user != "root" {
				cmd = s.asUser(t, append([]string{"run", "-rootfs", s.Rootfs, "-scratch", userScratch(t, s)}, argv...)...)
			}
			p := Start(t, cmd)
			p.WaitFor(t, "made")
			child := ChildPID(t, p.Cmd.Process.Pid)
			ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/ipc", child))
			require.NoError(t, err)
			// Held, so that its number is no other namespace's once the
			// container ends (tests of other packages make namespaces
			// meanwhile): a descriptor is no process in it.
			held, err := unix.Open(fmt.Sprintf("/proc/%d/ns/ipc", child), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			require.NoError(t, err)
			defer unix.Close(held)
			host, err := os.Readlink("/proc/self/ns/ipc")
			require.NoError(t, err)
			require.NotEqual(t, host, ns, "the container is in the host's IPC namespace")
			assert.Equal(t, "shared memory by key: no such file or directory\n", strings.SplitAfter(lookFor(o, false), "\n")[0], "the host finds the container's segment")
			_, err = mqOpen(o.queue, unix.O_RDONLY)
			assert.ErrorIs(t, err, unix.ENOENT, "the host finds the container's queue")
			_, err = p.Stdin.Write([]byte("\n"))
			require.NoError(t, err)
			r := p.Wait(t)
			require.Equal(t, 0, r.Status, r.Stderr)
			assert.Equal(t, "shared memory by key: no such file or directory\n", strings.SplitAfter(lookFor(o, false), "\n")[0], "the container's segment is on the host after it")
			// The namespace ends with the last process in it: none is left.
			procs, _ := filepath.Glob("/proc/[0-9]*/ns/ipc")
			for _, link := range procs {
				if in, err := os.Readlink(link); err == nil && in == ns {
					t.Errorf("%s is still in the container's IPC namespace, which keeps its segment: %s", filepath.Dir(filepath.Dir(link)), describe(atoi(filepath.Base(filepath.Dir(filepath.Dir(link))))))
				}
			}
		})
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// CgroupIsRootInside checks that the container, run with sudo and
// without, sees its cgroup as the root of its cgroup namespace, "/", in
// every hierarchy, while the host sees it where run made it
// (CommandStartsInItsCgroup): on cgroup v1 the child makes the namespace
// once run has put it in its cgroups, not before.
func CgroupIsRootInside(t *testing.T, s *Step) {
	RequireRoot(t)
	check := func(t *testing.T, r Result) {
		require.Equal(t, 0, r.Status, r.Stderr)
		lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
		require.NotEmpty(t, lines)
		for _, line := range lines {
			assert.Regexp(t, `^\d+:[^:]*:/$`, line, "the container sees where its cgroup is on the host")
		}
	}
	t.Run("root", func(t *testing.T) {
		r := s.Run(t, "cat", "/proc/self/cgroup")
		check(t, r)
		if len(strings.Split(strings.TrimSpace(r.Stdout), "\n")) > 1 { // v1: the limits' own lines too
			assert.Regexp(t, `(?m)^\d+:pids:/$`, r.Stdout)
			assert.Regexp(t, `(?m)^\d+:memory:/$`, r.Stdout)
			assert.Regexp(t, `(?m)^\d+:(cpu,cpuacct|cpu):/$`, r.Stdout)
		}
	})
	t.Run("without root", func(t *testing.T) {
		check(t, Finish(t, s.asUser(t, "run", "-rootfs", s.Rootfs, "-scratch", userScratch(t, s), "cat", "/proc/self/cgroup")))
	})
	t.Run("run slow to put the child in its cgroups", func(t *testing.T) {
		check(t, s.heldBeforeItsCgroups(t, "cat", "/proc/self/cgroup"))
	})
}

// heldBeforeItsCgroups runs the container with argv, as root. On cgroup
// v1, where run puts the child in its cgroups after the clone, strace
// stops run just before its first write of the child's PID (into the pids
// hierarchy's cgroup.procs, which it makes fail with EINTR, and Go writes
// again), and lets it go on only once the child waits for run's go-on,
// its setup done. On v2 the clone puts the child in its cgroup: nothing
// to hold, and the container just runs.
func (s *Step) heldBeforeItsCgroups(t *testing.T, argv ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	t.Cleanup(cancel)
	// The shell stops, then becomes run: same PID, same start time.
	args := append([]string{"-c", `kill -STOP $$; exec "$@"`, "sh", "env"}, Plain(s.Bin, s.RunArgs(argv...)...)...)
	cmd := exec.CommandContext(ctx, "env", Plain("sh", args...)...)
	p := Start(t, cmd)
	run := cmd.Process.Pid
	require.Eventually(t, func() bool { return stopped(run) }, patience, time.Millisecond, "the shell never stopped")
	var st unix.Statfs_t
	require.NoError(t, unix.Statfs("/sys/fs/cgroup", &st))
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		require.NoError(t, unix.Kill(run, unix.SIGCONT))
		return p.Wait(t)
	}
	pids, err := filepath.EvalSymlinks("/sys/fs/cgroup/pids")
	require.NoError(t, err)
	log := filepath.Join(t.TempDir(), "strace.log")
	tracer := exec.CommandContext(ctx, "strace", "-f", "-qq", "-o", log, "-e", "trace=write",
		"-P", pids+"/containers-from-scratch/"+cgroupName(t, run)+"/cgroup.procs",
		"-e", "inject=write:error=EINTR:signal=SIGSTOP:when=1", "-p", strconv.Itoa(run))
	require.NoError(t, tracer.Start())
	t.Cleanup(func() {
		if tracer.ProcessState == nil {
			_ = tracer.Process.Kill()
			_ = tracer.Wait()
		}
		if t.Failed() {
			data, _ := os.ReadFile(log)
			t.Logf("strace:\n%s", data)
		}
	})
	require.Eventually(t, func() bool {
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", run))
		return strings.Contains(string(status), fmt.Sprintf("\nTracerPid:\t%d\n", tracer.Process.Pid))
	}, patience, time.Millisecond, "strace never attached")
	require.NoError(t, unix.Kill(run, unix.SIGCONT))
	// The write, then the stop: strace's log says the PID written.
	// (The only write traced, maybe in two lines, "<unfinished ...>".)
	injected := regexp.MustCompile(`write\(\d+, "(\d+)", \d+(?s:.*)\(INJECTED\)(?s:.*)--- stopped by SIGSTOP ---`)
	var child int
	require.Eventually(t, func() bool {
		data, _ := os.ReadFile(log)
		m := injected.FindSubmatch(data)
		if m != nil {
			child, _ = strconv.Atoi(string(m[1]))
		}
		return m != nil
	}, patience, time.Millisecond, "run never stopped at its write into cgroup.procs: %s", describe(run))
	// The child's main thread (its PID's) reads the pipe of the go-on, its
	// descriptor 4, once it has set up all it can alone.
	reading := fmt.Sprintf("%d 0x4 ", unix.SYS_READ)
	require.Eventually(t, func() bool {
		call, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", child))
		return strings.HasPrefix(string(call), reading)
	}, patience, time.Millisecond, "the child never waited for run's go-on: %s", describe(child))
	// strace counts the calls of each thread apart, and Go may write again
	// from another thread: strace lets go of run (SIGTERM: it detaches,
	// leaving run stopped) before run goes on.
	require.NoError(t, tracer.Process.Signal(unix.SIGTERM))
	if err := tracer.Wait(); err != nil {
		require.Equal(t, "signal: terminated", err.Error(), "strace") // it ends as it was told to
	}
	require.NoError(t, unix.Kill(run, unix.SIGCONT))
	return p.Wait(t)
}

// ChildRefusesOutsideItsNamespaces runs "child" by hand in a user namespace
// of its own, as root there, with every other namespace of run's clone but
// one: it refuses, naming the one that is the host's, and runs nothing.
func ChildRefusesOutsideItsNamespaces(t *testing.T, s *Step) {
	RequireRoot(t)
	all := map[string]string{"uts": "--uts", "pid": "--pid", "mnt": "--mount", "net": "--net", "ipc": "--ipc", "cgroup": "--cgroup"}
	for _, missing := range []string{"ipc", "cgroup", "uts", "pid", "mnt", "net"} {
		t.Run(missing, func(t *testing.T) {
			args := []string{"--user", "--map-root-user", "--fork"}
			for ns, flag := range all {
				if ns != missing {
					args = append(args, flag)
				}
			}
			args = append(args, s.Bin)
			r := Finish(t, exec.Command("unshare", append(args, s.args("child", s.Rootfs, "echo", "ran")...)...))
			assert.Equal(t, 1, r.Status)
			assert.Equal(t, s.Name+": the "+missing+" namespace is the host's, not the container's: run makes it in its clone\n", r.Stderr)
			assert.Empty(t, r.Stdout, "the child went on")
		})
	}
}

// MqueueLinkIsRefused gives the image a symbolic link at dev/mqueue: to a
// directory of the host's, climbing out to it, and to the container's own
// /proc. The mqueue file system is mounted on a directory the image has
// there, or nowhere: run refuses in one line, runs nothing, and makes
// nothing in the host's directory.
func MqueueLinkIsRefused(t *testing.T, s *Step) {
	RequireRoot(t)
	for name, target := range map[string]func(host string) string{
		"absolute":     func(host string) string { return host },
		"climbing out": climbOut,
		"to its /proc": func(string) string { return "/proc" },
	} {
		t.Run(name, func(t *testing.T) {
			image, host := hostileImage(t, s)
			link(t, image, "dev/mqueue", target(host))
			r := s.Exec(t, s.RunIn(image, "echo", "ran")...)
			assert.Equal(t, 1, r.Status, r.Stderr)
			OneLine(t, r.Stderr)
			assert.Equal(t, s.Name+": mount mqueue on /dev/mqueue: not a directory\n", r.Stderr)
			assert.Empty(t, r.Stdout, "the command ran")
			entries, err := os.ReadDir(host)
			require.NoError(t, err)
			assert.Empty(t, entries, "the setup made files in the host's directory that the image's link names")
		})
	}
}
