package steptest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// isolatedEnv marks a test binary that runs in the namespaces that
// Isolated made for it.
const isolatedEnv = "CONTAINERS_FROM_SCRATCH_TEST_ISOLATED"

// The tests' stand-in for a host's network, in the namespace that
// Isolated makes: a loopback, and a link named lan0 with an address of
// 192.0.2.0/24, a range kept for documentation that no network uses
// (RFC 5737). A container must not see it, and -net must not take its
// subnet.
const (
	HostLink   = "lan0"
	HostSubnet = "192.0.2.0/24"
	hostAddr   = "192.0.2.10/24"
)

// Isolated runs the tests, as root, in namespaces that it makes for them,
// so that a broken step can damage only those:
//   - a UTS namespace: a step that sets the hostname outside its
//     container renames only the tests' stand-in for the host;
//   - a mount namespace, whose mounts receive the machine's but never pass
//     one back (slave), and pass theirs on among themselves (shared), as
//     systemd mounts a host: a mount that a step leaks shows in the tests'
//     mount table, not in the machine's, and goes with the namespace;
//   - with network, a network namespace with a stand-in for a host's
//     network in it (HostLink): no packet of theirs, and no link, address
//     or route they add, ever touches the machine's real network.
//
// It re-executes the test binary in them, and returns the exit status to
// end with. Not as root, the tests run as they are, and those that need
// root are skipped.
func Isolated(network bool, runTests func() int) int {
	if os.Geteuid() != 0 {
		return runTests()
	}
	if os.Getenv(isolatedEnv) != "" {
		os.Unsetenv(isolatedEnv) // not for the programs the tests start
		// Only in namespaces of the tests' own: the variable could come
		// from somewhere else.
		if ours, err := newNamespace("mnt"); !ours {
			fmt.Fprintf(os.Stderr, "%s is set, but the tests run in the mount namespace of their parent: not changing its mounts (%v)\n", isolatedEnv, err)
			return 1
		}
		for _, how := range []uintptr{unix.MS_SLAVE, unix.MS_SHARED} {
			if err := unix.Mount("", "/", "", unix.MS_REC|how, ""); err != nil {
				fmt.Fprintf(os.Stderr, "setting up the tests' mount namespace: %v\n", err)
				return 1
			}
		}
		if network {
			if ours, err := newNamespace("net"); !ours {
				fmt.Fprintf(os.Stderr, "%s is set, but the tests run in the network namespace of their parent: not setting up a network here (%v)\n", isolatedEnv, err)
				return 1
			}
			if err := hostNetworkStandIn(); err != nil {
				fmt.Fprintf(os.Stderr, "setting up the tests' network: %v\n", err)
				return 1
			}
		}
		return runTests()
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), isolatedEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// The parent-death signal follows the thread that forked: this one,
	// locked, stays until the tests end.
	runtime.LockOSThread()
	flags := uintptr(unix.CLONE_NEWUTS | unix.CLONE_NEWNS)
	if network {
		flags |= unix.CLONE_NEWNET
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags, Pdeathsig: unix.SIGKILL}
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if status := exit.Sys().(syscall.WaitStatus); status.Signaled() {
			return 128 + int(status.Signal())
		}
		return exit.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "running the tests in namespaces of their own: %v (in a container? run them on a machine or VM of your own)\n", err)
		return 1
	}
	return 0
}

// newNamespace reports whether this process is in another namespace of
// the kind named (as in /proc/PID/ns) than its parent.
func newNamespace(kind string) (bool, error) {
	ours, err := os.Readlink("/proc/self/ns/" + kind)
	if err != nil {
		return false, err
	}
	theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", os.Getppid(), kind))
	if err != nil {
		return false, err
	}
	return ours != theirs, nil
}

// hostNetworkStandIn sets up the new namespace: the loopback up, and lan0,
// one end of a veth pair (the other is lan1), up with its address. A normal
// user may ping, as systemd's sysctl.d lets them on the host: a new
// namespace's ping_group_range lets no one, and Debian 13's ping counts on
// it rather than on a capability.
func hostNetworkStandIn() error {
	if err := os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte("0 2147483647"), 0o644); err != nil {
		return err
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return err
	}
	lan := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: HostLink}, PeerName: "lan1"}
	if err := netlink.LinkAdd(lan); err != nil {
		return err
	}
	ip, subnet, err := net.ParseCIDR(hostAddr)
	if err != nil {
		return err
	}
	subnet.IP = ip
	if err := netlink.AddrAdd(lan, &netlink.Addr{IPNet: subnet}); err != nil {
		return err
	}
	for _, name := range []string{HostLink, "lan1"} {
		link, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(link); err != nil {
			return err
		}
	}
	// The kernel brings the carrier up a moment later, from a worker: the
	// tests compare the network before and after a container, and must not
	// see it change by itself in between.
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(time.Millisecond) {
		link, err := netlink.LinkByName(HostLink)
		if err != nil {
			return err
		}
		if link.Attrs().OperState == netlink.OperUp {
			return nil
		}
	}
	return fmt.Errorf("%s is not up after 5 s", HostLink)
}
