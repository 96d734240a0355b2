// This file holds the lockdown of step12: the capabilities the container's
// root keeps, no_new_privs, the seccomp filter on its system calls, and the
// parts of /proc it may not read or write.

package main

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// keptCapabilities are the capabilities the container's root keeps: Docker's
// default fourteen. Without the others, CAP_SYS_ADMIN above all, it cannot
// mount, make namespaces (but a user namespace: see the filter), load
// modules or trace processes, even in its own namespaces.
var keptCapabilities = []int{
	unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FOWNER, unix.CAP_FSETID,
	unix.CAP_KILL, unix.CAP_SETGID, unix.CAP_SETUID, unix.CAP_SETPCAP,
	unix.CAP_NET_BIND_SERVICE, unix.CAP_NET_RAW, unix.CAP_SYS_CHROOT,
	unix.CAP_MKNOD, unix.CAP_AUDIT_WRITE, unix.CAP_SETFCAP,
}

// dropCapabilities takes every other capability out of the bounding set,
// the limit of what any program started from here may ever have. At exec,
// root's permitted and effective sets become the bounding set (the
// inheritable and ambient ones, which could add to it, start empty in a
// new user namespace): the command has the fourteen, and no more.
func dropCapabilities() error {
	kept := map[int]bool{}
	for _, c := range keptCapabilities {
		kept[c] = true
	}
	// A capability this kernel does not know is EINVAL: the end of the list.
	for c := 0; c <= 63; c++ {
		if kept[c] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); errors.Is(err, unix.EINVAL) {
			return nil
		} else if err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

// seccomp_data, what a filter reads (seccomp(2)): the call's number, the
// architecture, then six 64-bit arguments, low half first on amd64 and arm64.
const (
	offsetNr   = 0
	offsetArch = 4
	offsetArg0 = 16 // low 32 bits of args[0]; args[i] at 16+8i
	offsetArg1 = 24
)

// x32Bit marks a call of amd64's x32 ABI, which shares amd64's architecture
// value and numbers with this bit set: a filter that did not refuse them
// would be walked around.
const x32Bit = 0x40000000

// An architecture's numbers: system calls are numbers, and each processor
// has its own. unix.SYS_* are only this build's; these are both, written
// out, so that the arm64 ones are read here on any machine (and checked
// against unix's on each: TestSystemCallNumbers).
type arch struct {
	audit uint32         // seccomp_data.arch
	nr    map[string]int // system call numbers by name
}

var arches = map[string]arch{
	"amd64": {unix.AUDIT_ARCH_X86_64, map[string]int{
		"ioctl": 16, "clone": 56, "clone3": 435, "unshare": 272,
		"keyctl": 250, "add_key": 248, "request_key": 249,
		"ptrace": 101, "perf_event_open": 298, "bpf": 321, "userfaultfd": 323,
		"kexec_load": 246, "kexec_file_load": 320,
		"init_module": 175, "finit_module": 313, "delete_module": 176,
		"mbind": 237, "migrate_pages": 256, "move_pages": 279,
		"set_mempolicy": 238, "get_mempolicy": 239, "set_mempolicy_home_node": 450,
	}},
	"arm64": {unix.AUDIT_ARCH_AARCH64, map[string]int{
		"ioctl": 29, "clone": 220, "clone3": 435, "unshare": 97,
		"keyctl": 219, "add_key": 217, "request_key": 218,
		"ptrace": 117, "perf_event_open": 241, "bpf": 280, "userfaultfd": 282,
		"kexec_load": 104, "kexec_file_load": 294,
		"init_module": 105, "finit_module": 273, "delete_module": 106,
		"mbind": 235, "migrate_pages": 238, "move_pages": 239,
		"set_mempolicy": 237, "get_mempolicy": 236, "set_mempolicy_home_node": 450,
	}},
}

// refused are the calls the filter refuses whatever their arguments: the
// kernel keyring, which is not namespaced; tracing and the kernel's own
// programs (ptrace, perf, bpf); userfaultfd, a favourite of exploits;
// loading kernels and modules; and the NUMA calls, which move the host's
// memory about.
var refused = []string{
	"keyctl", "add_key", "request_key",
	"ptrace", "perf_event_open", "bpf", "userfaultfd",
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	"mbind", "migrate_pages", "move_pages", "set_mempolicy", "get_mempolicy", "set_mempolicy_home_node",
}

// newNamespaces are clone's and unshare's flags for new namespaces. Without
// CAP_SYS_ADMIN each is refused anyway, but CLONE_NEWUSER, which needs no
// capability and brings a full set with it: the filter refuses them all.
const newNamespaces = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

const (
	allow = unix.SECCOMP_RET_ALLOW
	eperm = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	// clone3 passes its flags in memory, which a filter cannot read: ENOSYS
	// makes the C library fall back to clone, whose flags it can.
	enosys = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	kill   = unix.SECCOMP_RET_KILL_PROCESS
)

// filter is the seccomp program for this machine's architecture, in
// classic BPF: each instruction loads a word of seccomp_data, compares it
// with a constant and jumps ahead (Jt instructions if true, Jf if false),
// or returns a verdict. Every call is allowed but those above.
func filter() ([]unix.SockFilter, error) {
	a, ok := arches[runtime.GOARCH]
	if !ok {
		return nil, fmt.Errorf("no seccomp filter for %s: its system call numbers are not in lockdown.go (amd64 and arm64 are)", runtime.GOARCH)
	}
	load := func(offset uint32) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offset}
	}
	ifEqual := func(k uint32, jt, jf uint8) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: k, Jt: jt, Jf: jf}
	}
	ifAnyBit := func(k uint32, jt, jf uint8) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K, K: k, Jt: jt, Jf: jf}
	}
	ret := func(verdict uint32) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: verdict}
	}

	prog := []unix.SockFilter{
		// Another architecture (32-bit code on this processor) has other
		// numbers: the process dies rather than get past the filter.
		load(offsetArch),
		ifEqual(a.audit, 1, 0),
		ret(kill),
		load(offsetNr),
	}
	if runtime.GOARCH == "amd64" {
		prog = append(prog, ifAnyBit(x32Bit, 0, 1), ret(eperm))
	}
	for _, name := range refused {
		prog = append(prog, ifEqual(uint32(a.nr[name]), 0, 1), ret(eperm))
	}
	// ioctl: TIOCSTI pushes characters into a terminal's input, TIOCLINUX's
	// selection pastes into a console's. The request is an unsigned int:
	// only its low 32 bits are compared (a compare of all 64 is walked
	// around with a high bit set: CVE-2019-7303).
	prog = append(prog,
		ifEqual(uint32(a.nr["ioctl"]), 0, 5),
		load(offsetArg1),
		ifEqual(unix.TIOCSTI, 2, 0),
		ifEqual(unix.TIOCLINUX, 1, 0),
		ret(allow),
		ret(eperm),
	)
	// clone and unshare with a new namespace's flag (the kernel reads the
	// low 32 bits of clone's flags, and refuses unknown high bits of
	// unshare's).
	for _, name := range []string{"clone", "unshare"} {
		prog = append(prog,
			ifEqual(uint32(a.nr[name]), 0, 4),
			load(offsetArg0),
			ifAnyBit(newNamespaces, 1, 0),
			ret(allow),
			ret(eperm),
		)
	}
	return append(prog,
		ifEqual(uint32(a.nr["clone3"]), 0, 1),
		ret(enosys),
		ret(allow),
	), nil
}

// lockDown is the child's last step before it execs the command, on the
// thread that execs (plumbing.go locks it): capabilities, no_new_privs and
// the filter hold for that thread, and exec ends the others.
func lockDown() error {
	runtime.LockOSThread() // already, since init (plumbing.go); and for good
	prog, err := filter()
	if err != nil {
		return err
	}
	if err := dropCapabilities(); err != nil {
		return err
	}
	// No exec gives more privileges from here on: no setuid program, no
	// file capabilities. It also lets a process without CAP_SYS_ADMIN
	// install a filter.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		return fmt.Errorf("seccomp filter: %w", errno)
	}
	return nil
}

// maskedPaths are files and directories of /proc the container may not
// read: they show the host's kernel, its memory (kcore), its keys and its
// timers. readOnlyPaths are settings of the whole machine (sys,
// sysrq-trigger) or its devices, which it may read only. The lists are
// those of runc's spec, Docker and containerd (with Docker's interrupts).
var (
	maskedPaths = []string{"acpi", "asound", "interrupts", "kcore", "keys", "latency_stats", "timer_list",
		"timer_stats", "sched_debug", "scsi"}
	readOnlyPaths = []string{"bus", "fs", "irq", "sys", "sysrq-trigger"}
)

// maskProc covers the container's /proc, after pivot_root, where every
// path is the container's: the container's /dev/null (the host's, bound)
// over each masked file, an empty read-only tmpfs over each masked
// directory, and each read-only path bound on itself and made read-only.
// What this kernel has not is left out.
func maskProc() error {
	for _, name := range maskedPaths {
		path := "/proc/" + name
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); errors.Is(err, unix.ENOENT) {
			continue
		} else if err != nil {
			return fmt.Errorf("mask %s: %w", path, err)
		}
		var err error
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = unix.Mount("tmpfs", path, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "nr_inodes=1")
		} else {
			err = unix.Mount("/dev/null", path, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("mask %s: %w", path, err)
		}
	}
	for _, name := range readOnlyPaths {
		path := "/proc/" + name
		if err := unix.Mount(path, path, "", unix.MS_BIND|unix.MS_REC, ""); errors.Is(err, unix.ENOENT) {
			continue
		} else if err != nil {
			return fmt.Errorf("bind %s: %w", path, err)
		}
		// A remount may not drop the flags the mount has (in a user
		// namespace some are locked): it keeps them, and adds read-only.
		var st unix.Statfs_t
		if err := unix.Statfs(path, &st); err != nil {
			return fmt.Errorf("statfs %s: %w", path, err)
		}
		flags := uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
		if err := unix.Mount(path, path, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|flags, ""); err != nil {
			return fmt.Errorf("make %s read-only: %w", path, err)
		}
	}
	return nil
}
