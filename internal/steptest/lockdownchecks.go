package steptest

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// --- step12: lockdown ---

// lockProbeName is the name under which the test binary tries, from inside
// a container, each door that step12 closes, and says what the kernel
// answered.
const lockProbeName = "lockprobe"

// doors are what the probe tries, by name, each returning the error (nil:
// it worked). Each is harmless where it works: a character pushed into
// the probe's own terminal is read back by nobody, a key goes into the
// probe's own keyring, a namespace is made by a child that exits at once.
var doors = []struct {
	name string
	try  func() error
}{
	{"TIOCSTI", func() error {
		c := byte(' ')
		return errnoErr(ioctl(0, unix.TIOCSTI, uintptr(unsafe.Pointer(&c))))
	}},
	{"TIOCSTI with a high bit set", func() error {
		c := byte(' ')
		return errnoErr(ioctl(0, unix.TIOCSTI|1<<32, uintptr(unsafe.Pointer(&c))))
	}},
	{"TIOCLINUX", func() error {
		sub := byte(6) // TIOCL_GETSHIFTSTATE: reads only
		return errnoErr(ioctl(0, unix.TIOCLINUX, uintptr(unsafe.Pointer(&sub))))
	}},
	{"keyctl", func() error { _, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false); return err }},
	{"add_key", func() error {
		_, err := unix.AddKey("user", "cfs-probe", []byte("x"), unix.KEY_SPEC_PROCESS_KEYRING)
		return err
	}},
	{"request_key", func() error {
		_, err := unix.RequestKey("user", "cfs-probe-none", "", unix.KEY_SPEC_PROCESS_KEYRING)
		return err
	}},
	{"a user namespace, with clone", func() error { return cloneAndExit(unix.CLONE_NEWUSER) }},
	{"a user namespace, with unshare", func() error {
		_, _, errno := unix.RawSyscall(unix.SYS_UNSHARE, unix.CLONE_NEWUSER, 0, 0)
		return errnoErr(errno)
	}},
	{"clone3", func() error {
		_, _, errno := unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)
		return errnoErr(errno)
	}},
	{"ptrace", func() error {
		_, _, errno := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKDATA, uintptr(os.Getppid()), 0, 0, 0, 0)
		return errnoErr(errno)
	}},
	{"set_mempolicy", func() error {
		_, _, errno := unix.RawSyscall(unix.SYS_SET_MEMPOLICY, 0, 0, 0) // MPOL_DEFAULT
		return errnoErr(errno)
	}},
	{"load a module", func() error {
		_, _, errno := unix.RawSyscall(unix.SYS_FINIT_MODULE, 0, uintptr(unsafe.Pointer(&[]byte{0}[0])), 0)
		return errnoErr(errno)
	}},
	{"mount proc", func() error { return unix.Mount("proc", "/tmp", "proc", 0, "") }},
	{"mount tmpfs", func() error { return unix.Mount("tmpfs", "/tmp", "tmpfs", 0, "") }},
	{"write /proc/sys", func() error {
		return os.WriteFile("/proc/sys/kernel/printk_ratelimit", []byte("5\n"), 0)
	}},
}

func ioctl(fd int, req, arg uintptr) unix.Errno {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
	return errno
}

// cloneAndExit makes a child with clone(flags), which exits at once.
func cloneAndExit(flags uintptr) error {
	pid, _, errno := unix.RawSyscall6(unix.SYS_CLONE, flags|uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	if errno != 0 {
		return errno
	}
	if pid == 0 {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
	var ws unix.WaitStatus
	_, err := unix.Wait4(int(pid), &ws, 0, nil)
	return err
}

// lockProbe is the program lockprobe: one line per door, "name: ok" or
// the error.
func lockProbe() {
	for _, d := range doors {
		result := "ok"
		if err := d.try(); err != nil {
			result = err.Error()
		}
		fmt.Printf("%s: %s\n", d.name, result)
	}
	os.Exit(0)
}

// closed is what the probe says in a locked-down container.
const closed = `TIOCSTI: operation not permitted
TIOCSTI with a high bit set: operation not permitted
TIOCLINUX: operation not permitted
keyctl: operation not permitted
add_key: operation not permitted
request_key: operation not permitted
a user namespace, with clone: operation not permitted
a user namespace, with unshare: operation not permitted
clone3: function not implemented
ptrace: operation not permitted
set_mempolicy: operation not permitted
load a module: operation not permitted
mount proc: operation not permitted
mount tmpfs: operation not permitted
write /proc/sys: open /proc/sys/kernel/printk_ratelimit: read-only file system
`

// DoorsAreClosed runs the probe in the container, on a terminal of its own
// as a learner's, with sudo and without: every door is closed, each with
// the error the filter, the capabilities or the read-only /proc gives.
func DoorsAreClosed(t *testing.T, s *Step) {
	RequireRoot(t)
	self, err := os.Executable()
	require.NoError(t, err)
	bin := filepath.Join(s.Rootfs, lockProbeName)
	require.NoError(t, copyFile(self, bin, 0o755))
	t.Cleanup(func() { os.Remove(bin) })
	for _, user := range []string{"root", "without root"} {
		t.Run(user, func(t *testing.T) {
			cmd := s.Command(t, s.RunArgs("/"+lockProbeName)...)
			if user != "root" {
				cmd = s.asUser(t, "run", "-rootfs", s.Rootfs, "-scratch", userScratch(t, s), "/"+lockProbeName)
			}
			term := StartOnTerminal(t, cmd)
			shown := term.Wait(t)
			shown = strings.ReplaceAll(shown, "\r\n", "\n")
			i := strings.Index(shown, "TIOCSTI: ")
			require.GreaterOrEqual(t, i, 0, "the probe never ran: %s", shown)
			assert.Equal(t, closed, shown[i:])
		})
	}
}

// StatusShowsTheLockdown checks what the kernel says of the command in
// /proc/self/status: no_new_privs, a seccomp filter, Docker's fourteen
// capabilities and no others in any set.
func StatusShowsTheLockdown(t *testing.T, s *Step) {
	RequireRoot(t)
	const want = "CapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n"
	status := []string{"grep", "-E", "^(Cap|NoNewPrivs|Seccomp:)", "/proc/self/status"}
	t.Run("root", func(t *testing.T) {
		r := s.Run(t, status...)
		require.Equal(t, 0, r.Status, r.Stderr)
		assert.Equal(t, want, r.Stdout)
	})
	t.Run("without root", func(t *testing.T) {
		r := Finish(t, s.asUser(t, append([]string{"run", "-rootfs", s.Rootfs, "-scratch", userScratch(t, s)}, status...)...))
		require.Equal(t, 0, r.Status, r.Stderr)
		assert.Equal(t, want, r.Stdout)
	})
}

// ProcIsMasked checks that each file of /proc that shows the host's
// kernel (those this kernel has) is the container's /dev/null, each such
// directory an empty read-only tmpfs, and /proc/sys and the other
// read-only paths read-only mounts, as the container's mount table says;
// and that a write there fails, while /proc itself works (ps).
func ProcIsMasked(t *testing.T, s *Step) {
	RequireRoot(t)
	r := s.Run(t, "sh", "-c", "cat /proc/self/mountinfo; echo @@@; cat /proc/keys /proc/timer_list; echo 5 >/proc/sys/kernel/printk_ratelimit; echo @@@; ps -o comm= -p 1")
	parts := strings.Split(r.Stdout, "@@@\n")
	require.Len(t, parts, 3, "%s%s", r.Stdout, r.Stderr)
	mounts := map[string][]string{} // mount point: its fields
	for _, line := range strings.Split(strings.TrimSpace(parts[0]), "\n") {
		f := strings.Fields(line)
		mounts[f[4]] = f
	}
	for _, name := range []string{"acpi", "asound", "interrupts", "kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug", "scsi"} {
		st, err := os.Stat("/proc/" + name)
		if err != nil {
			continue // not in this kernel
		}
		m, ok := mounts["/proc/"+name]
		if !assert.True(t, ok, "/proc/%s is not masked", name) {
			continue
		}
		sep := slices.Index(m, "-")
		if st.IsDir() {
			assert.Equal(t, "tmpfs", m[sep+1], "/proc/%s is not an empty tmpfs: %v", name, m)
			assert.Contains(t, strings.Split(m[5], ","), "ro", "/proc/%s can be written: %v", name, m)
		} else {
			assert.Equal(t, "/null", m[3], "/proc/%s is not /dev/null: %v", name, m)
		}
	}
	for _, name := range []string{"bus", "fs", "irq", "sys", "sysrq-trigger"} {
		if _, err := os.Stat("/proc/" + name); err != nil {
			continue
		}
		m, ok := mounts["/proc/"+name]
		if assert.True(t, ok, "/proc/%s is not read-only", name) {
			assert.Contains(t, strings.Split(m[5], ","), "ro", "/proc/%s can be written: %v", name, m)
		}
	}
	assert.Empty(t, parts[1], "/proc/keys or /proc/timer_list shows something")
	assert.Contains(t, r.Stderr, "/proc/sys/kernel/printk_ratelimit: Read-only file system")
	assert.Equal(t, "sh\n", parts[2], "ps does not work: %s", r.Stderr)
}

// OrdinaryWorkStillWorks checks that the container's root does what a
// shell as root does: start programs, write and own files, read one whose
// mode forbids it (CAP_DAC_OVERRIDE, kept), see its processes.
func OrdinaryWorkStillWorks(t *testing.T, s *Step) {
	RequireRoot(t)
	r := s.Run(t, "sh", "-c", "echo hi >/tmp/f && chmod 0 /tmp/f && cat /tmp/f && chown 0:0 /tmp/f && mkdir /tmp/d && sh -c 'echo nested' && ps -o comm= | head -n1 && id -u")
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Equal(t, "hi\nnested\nsh\n0\n", r.Stdout)
}

// InstalledFilterRefusesEachCall reads the seccomp filter installed in a
// running container's command (ptrace's PTRACE_SECCOMP_GET_FILTER, which
// needs the host's root) and runs it, as the kernel would, on each call
// the step refuses, and on some it allows: a rule left out shows here even
// for calls that the missing capabilities refuse too.
func InstalledFilterRefusesEachCall(t *testing.T, s *Step) {
	RequireRoot(t)
	p := Start(t, s.Command(t, s.RunArgs("sh", "-c", "echo ready; read line")...))
	p.WaitFor(t, "ready")
	prog := seccompFilter(t, ChildPID(t, p.Cmd.Process.Pid))
	_, err := p.Stdin.Write([]byte("\n"))
	require.NoError(t, err)
	require.Equal(t, 0, p.Wait(t).Status)

	arches := map[string][2]uint32{ // this build's, and a 32-bit one the processor also runs
		"amd64": {unix.AUDIT_ARCH_X86_64, unix.AUDIT_ARCH_I386},
		"arm64": {unix.AUDIT_ARCH_AARCH64, unix.AUDIT_ARCH_ARM},
	}
	native, other := arches[runtime.GOARCH][0], arches[runtime.GOARCH][1]
	require.NotZero(t, native, "no test for %s", runtime.GOARCH)
	const (
		eperm  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		enosys = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
		allow  = uint32(unix.SECCOMP_RET_ALLOW)
	)
	verdict := func(nr int, args ...uint64) uint32 { return runFilter(t, prog, nr, native, args...) }
	for name, nr := range map[string]int{
		"keyctl": unix.SYS_KEYCTL, "add_key": unix.SYS_ADD_KEY, "request_key": unix.SYS_REQUEST_KEY,
		"ptrace": unix.SYS_PTRACE, "perf_event_open": unix.SYS_PERF_EVENT_OPEN, "bpf": unix.SYS_BPF,
		"userfaultfd": unix.SYS_USERFAULTFD, "kexec_load": unix.SYS_KEXEC_LOAD, "kexec_file_load": unix.SYS_KEXEC_FILE_LOAD,
		"init_module": unix.SYS_INIT_MODULE, "finit_module": unix.SYS_FINIT_MODULE, "delete_module": unix.SYS_DELETE_MODULE,
		"mbind": unix.SYS_MBIND, "migrate_pages": unix.SYS_MIGRATE_PAGES, "move_pages": unix.SYS_MOVE_PAGES,
		"set_mempolicy": unix.SYS_SET_MEMPOLICY, "get_mempolicy": unix.SYS_GET_MEMPOLICY,
		"set_mempolicy_home_node": unix.SYS_SET_MEMPOLICY_HOME_NODE,
	} {
		assert.Equal(t, eperm, verdict(nr), "%s is not refused", name)
	}
	for _, req := range []uint64{unix.TIOCSTI, unix.TIOCSTI | 1<<32, unix.TIOCLINUX} {
		assert.Equal(t, eperm, verdict(unix.SYS_IOCTL, 0, req), "ioctl %#x is not refused", req)
	}
	for _, flag := range []uint64{unix.CLONE_NEWUSER, unix.CLONE_NEWNS, unix.CLONE_NEWPID, unix.CLONE_NEWNET,
		unix.CLONE_NEWUTS, unix.CLONE_NEWIPC, unix.CLONE_NEWCGROUP} {
		assert.Equal(t, eperm, verdict(unix.SYS_CLONE, flag|uint64(unix.SIGCHLD)), "clone with %#x is not refused", flag)
		assert.Equal(t, eperm, verdict(unix.SYS_UNSHARE, flag), "unshare with %#x is not refused", flag)
	}
	assert.Equal(t, enosys, verdict(unix.SYS_CLONE3), "clone3 does not say ENOSYS")
	// What a shell and the Go runtime do goes through.
	for name, call := range map[string][]uint64{
		"read": {unix.SYS_READ}, "write": {unix.SYS_WRITE}, "execve": {unix.SYS_EXECVE}, "getpid": {unix.SYS_GETPID},
		"ioctl TCGETS": {unix.SYS_IOCTL, 0, unix.TCGETS}, "ioctl TIOCSPGRP": {unix.SYS_IOCTL, 0, unix.TIOCSPGRP},
		"fork":     {unix.SYS_CLONE, uint64(unix.SIGCHLD)},
		"a thread": {unix.SYS_CLONE, unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_SYSVSEM | unix.CLONE_THREAD},
	} {
		assert.Equal(t, allow, verdict(int(call[0]), call[1:]...), "%s is not allowed", name)
	}
	// Another architecture's numbers are other calls: the process dies.
	assert.Equal(t, uint32(unix.SECCOMP_RET_KILL_PROCESS), runFilter(t, prog, unix.SYS_GETPID, other), "a call of another architecture")
	if runtime.GOARCH == "amd64" {
		assert.Equal(t, eperm, verdict(unix.SYS_GETPID|0x40000000), "an x32 call is not refused")
	}
}

// seccompFilter returns the first seccomp filter of process pid.
func seccompFilter(t *testing.T, pid int) []unix.SockFilter {
	t.Helper()
	runtime.LockOSThread() // ptrace's tracer is a thread
	defer runtime.UnlockOSThread()
	require.NoError(t, unix.PtraceSeize(pid))
	defer unix.PtraceDetach(pid)
	require.NoError(t, unix.PtraceInterrupt(pid))
	var ws unix.WaitStatus
	_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
	require.NoError(t, err)
	n, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SECCOMP_GET_FILTER, uintptr(pid), 0, 0, 0, 0)
	require.Zero(t, errno, "PTRACE_SECCOMP_GET_FILTER")
	prog := make([]unix.SockFilter, n)
	_, _, errno = unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SECCOMP_GET_FILTER, uintptr(pid), 0, uintptr(unsafe.Pointer(&prog[0])), 0, 0)
	require.Zero(t, errno, "PTRACE_SECCOMP_GET_FILTER")
	return prog
}

// runFilter is the kernel's classic BPF for seccomp, the instructions a
// filter may hold: it returns the verdict for a call.
func runFilter(t *testing.T, prog []unix.SockFilter, nr int, arch uint32, args ...uint64) uint32 {
	t.Helper()
	data := make([]byte, 64)
	binary.LittleEndian.PutUint32(data[0:], uint32(nr))
	binary.LittleEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.LittleEndian.PutUint64(data[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			pc += int(map[bool]uint8{true: in.Jt, false: in.Jf}[acc == in.K])
		case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			pc += int(map[bool]uint8{true: in.Jt, false: in.Jf}[acc&in.K != 0])
		default:
			t.Fatalf("instruction %d: code %#x, which this interpreter does not know", pc, in.Code)
		}
	}
	t.Fatal("the filter ends without a verdict")
	return 0
}
