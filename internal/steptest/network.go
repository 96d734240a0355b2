package steptest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// networkEnv marks a test binary that runs in the network namespace that
// InOwnNetwork made for it.
const networkEnv = "CONTAINERS_FROM_SCRATCH_TEST_NETWORK"

// The tests' stand-in for a host's network, in the namespace that
// InOwnNetwork makes: a loopback, and a link named lan0 with an address of
// 192.0.2.0/24, a range kept for documentation that no network uses
// (RFC 5737). A container must not see it, and -net must not take its
// subnet.
const (
	HostLink   = "lan0"
	HostSubnet = "192.0.2.0/24"
	hostAddr   = "192.0.2.10/24"
)

// InOwnNetwork runs the tests, as root, in a new network namespace that it
// makes for them, with a stand-in for a host's network in it (HostLink).
// No packet of theirs, and no link, address or route they add, ever
// touches the machine's real network. It re-executes the test binary in
// that namespace, and returns the exit status to end with. Not as root,
// the tests run as they are, and those that need root are skipped.
func InOwnNetwork(runTests func() int) int {
	if os.Geteuid() != 0 {
		return runTests()
	}
	if os.Getenv(networkEnv) != "" {
		os.Unsetenv(networkEnv) // not for the programs the tests start
		// Only in a namespace of the tests' own: the variable could come
		// from somewhere else.
		if ours, err := newNetwork(); !ours {
			fmt.Fprintf(os.Stderr, "%s is set, but the tests run in the network namespace of their parent: not setting up a network here (%v)\n", networkEnv, err)
			return 1
		}
		if err := hostNetworkStandIn(); err != nil {
			fmt.Fprintf(os.Stderr, "setting up the tests' network: %v\n", err)
			return 1
		}
		return runTests()
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), networkEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// The parent-death signal follows the thread that forked: this one,
	// locked, stays until the tests end.
	runtime.LockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET, Pdeathsig: unix.SIGKILL}
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if status := exit.Sys().(syscall.WaitStatus); status.Signaled() {
			return 128 + int(status.Signal())
		}
		return exit.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "running the tests in a network namespace of their own: %v (in a container? run them on a machine or VM of your own)\n", err)
		return 1
	}
	return 0
}

// newNetwork reports whether this process is in another network namespace
// than its parent.
func newNetwork() (bool, error) {
	ours, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return false, err
	}
	theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", os.Getppid()))
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
	return nil
}
