// This file holds the network of step09: the subnet that the containers'
// addresses come from, and the veth pair that wires a container to the host.
// main.go creates the network namespace, calls plugIn from run once the child
// exists, waitForCable and plugInside in the child, and remove when the
// container has ended.
// Next to each netlink call is the ip command (iproute2) that does the same
// by hand.
//
// netlink is how a program asks the kernel for interfaces, addresses and
// routes, ip included. Its messages are packed by hand in C; the
// github.com/vishvananda/netlink package, which Docker, containerd's plugins
// and most Go runtimes use, packs them here.

package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// defaultSubnet is where the containers' addresses come from unless -net
// says otherwise. 10.200.0.0/24 is private (RFC 1918) and away from what a
// home router (192.168.x.x, 10.0.0.x), Docker (172.17.0.0/16 and up),
// Podman (10.88.0.0/16) and Kubernetes' usual networks (10.42, 10.96,
// 10.244) hand out. run refuses it on a machine that already routes any of
// it elsewhere: see checkRoutes.
var defaultSubnet = subnet{netip.MustParsePrefix("10.200.0.0/24")}

// subnet is the value of -net: an IPv4 subnet big enough for one cable.
type subnet struct{ netip.Prefix }

// Set parses -net. Each container takes a /30 of the subnet, four addresses:
// the subnet's own, the host's end, the container's end and the broadcast.
func (s *subnet) Set(value string) error {
	p, err := netip.ParsePrefix(value)
	switch {
	case err != nil || !p.Addr().Is4():
		return fmt.Errorf("not an IPv4 subnet such as %s", defaultSubnet)
	case p.Bits() > 30:
		return errors.New("too small: each container needs a /30, four addresses")
	case p.Bits() < 8:
		return errors.New("too big: give it a /8 or smaller, of addresses your machine does not use")
	case p.Masked() != p:
		return fmt.Errorf("not where a subnet starts: did you mean %s?", p.Masked())
	}
	for _, r := range unusable {
		switch {
		case r.Contains(p.Addr()):
			return fmt.Errorf("%s is %s: give -net a private unicast range such as %s", p, r.what, defaultSubnet)
		case p.Overlaps(r.Prefix):
			return fmt.Errorf("%s holds %s, %s: give -net a private unicast range such as %s", p, r.Prefix, r.what, defaultSubnet)
		}
	}
	s.Prefix = p
	return nil
}

// unusable are the IPv4 ranges that are not one network's unicast
// addresses: a cable given one of them would come up, with its addresses,
// and carry nothing, or not what it should.
var unusable = []struct {
	netip.Prefix
	what string
}{
	// "This host on this network" (RFC 1122): a source before a host has
	// an address, as DHCP's 0.0.0.0, never a destination: the kernel will
	// not send from one, and drops a packet to one as a martian.
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network", which no packet may be sent to`},
	// The kernel answers 127.x.x.x on lo itself, in every namespace, and
	// drops a packet from or to it that comes through any other link.
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	// Addresses a host picks for itself on one link (RFC 3927), which no
	// router forwards; clouds answer 169.254.169.254 (their metadata
	// service) there, which a container's cable would hide.
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	// A group of receivers, not one interface: the kernel will not send
	// from one, and drops a packet that comes from one as a martian.
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	// Class E, kept for future use (RFC 1112): most systems and routers
	// drop it, and its last address, 255.255.255.255, is the broadcast of
	// every network.
	{netip.MustParsePrefix("240.0.0.0/4"), "class E, reserved"},
}

// hostEnd names the host's end of the cable of slot n: the n-th /30 of the
// subnet. The container's end is always eth0, in its own namespace.
func hostEnd(n int) string { return fmt.Sprintf("cfs%d", n) }

// veth is a container's cable: the link at the host's end, and the
// addresses of both ends.
type veth struct {
	host      netlink.Link
	hostAddr  *netlink.Addr // 10.200.0.1/30 for the first container
	innerAddr *netlink.Addr // 10.200.0.2/30, the container's eth0
}

// plugIn plugs the host's end of the container's cable in: a veth pair,
// one end in each network namespace, and the host's end up with an address
// of the container's /30. pid is the child, in the host's /proc. The
// child sets up its own end (plugInside), once run tells it the address.
func (v *veth) plugIn(sub subnet, pid int) error {
	if os.Geteuid() != 0 {
		leftOut("the cable to the host", "a veth pair needs the host's root (sudo); the container has lo only")
		return nil
	}
	// ip link add cfs0 type veth peer name eth0 netns PID
	if err := v.create(sub, pid); err != nil {
		return err
	}
	// ip addr add 10.200.0.1/30 dev cfs0
	if err := netlink.AddrAdd(v.host, v.hostAddr); err != nil {
		return fmt.Errorf("ip addr add %s dev %s: %w", v.hostAddr.IPNet, v.host.Attrs().Name, err)
	}
	// ip link set cfs0 up
	if err := netlink.LinkSetUp(v.host); err != nil {
		return fmt.Errorf("ip link set %s up: %w", v.host.Attrs().Name, err)
	}
	return nil
}

// inside is what run tells the child through the pipe: the address of the
// container's end, such as 10.200.0.2/30, on a line.
func (v *veth) inside() string {
	if v.innerAddr == nil {
		return "\n" // no cable: lo only
	}
	return v.innerAddr.IPNet.String() + "\n"
}

// plugInside sets up the container's end of the cable, in the child, which
// is in the container's network namespace already: all of its threads are.
// run could do it too, by entering that namespace with setns(2), but that
// moves one thread only, which a Go program must lock to its goroutine; and
// while that thread is the main one, /proc/PID/ns/net of the whole process
// shows the container's namespace, which confuses whoever looks at it then.
func plugInside(addr string) error {
	if addr == "" {
		return loUp()
	}
	// ip monitor link: the news of the links, for waitRunning.
	news, done := make(chan netlink.LinkUpdate, 16), make(chan struct{})
	defer close(done)
	if err := netlink.LinkSubscribe(news, done); err != nil {
		return fmt.Errorf("ip monitor link: %w", err)
	}
	ip, err := netlink.ParseAddr(addr)
	if err != nil {
		return fmt.Errorf("the address run gave for eth0: %w", err)
	}
	eth0, err := netlink.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("the container's eth0: %w", err)
	}
	// ip addr add 10.200.0.2/30 dev eth0
	if err := netlink.AddrAdd(eth0, ip); err != nil {
		return fmt.Errorf("ip addr add %s dev eth0: %w", addr, err)
	}
	// ip link set eth0 up
	if err := netlink.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("ip link set eth0 up: %w", err)
	}
	waitRunning(news, "eth0")
	return loUp()
}

// loUp brings the loopback up: a new namespace's loopback is down, and
// 127.0.0.1 unreachable, until someone does.
func loUp() error {
	// ip link set lo up
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("ip link set lo up: %w", err)
	}
	return nil
}

// waitRunning waits until the link is running, its operational state UP,
// which is what ip shows as "state UP". The kernel sets it after the link
// is up and has a carrier, from a worker of its own, most often before
// anyone looks, but not always: a command that looked too soon would see
// "NO-CARRIER ... state DOWN". Traffic flows either way, so after a second
// run goes on.
func waitRunning(news <-chan netlink.LinkUpdate, name string) {
	timeout := time.After(time.Second)
	// ip link show eth0, after subscribing: so no news is missed.
	if link, err := netlink.LinkByName(name); err == nil && link.Attrs().OperState == netlink.OperUp {
		return
	}
	for {
		select {
		case u, ok := <-news:
			if !ok || u.Attrs().Name == name && u.Attrs().OperState == netlink.OperUp {
				return
			}
		case <-timeout:
			return
		}
	}
}

// create makes the veth pair, with its host end named after the first slot
// of the subnet that no link of the host has: the kernel refuses a name that
// is taken (EEXIST), so two runs at once never get the same one, and the
// name decides the addresses.
func (v *veth) create(sub subnet, pid int) error {
	slots := 1 << (30 - sub.Bits())
	for n := 0; n < slots; n++ {
		link := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: hostEnd(n)},
			PeerName:      "eth0",
			PeerNamespace: netlink.NsPid(pid), // the peer is made in the container's namespace
		}
		err := netlink.LinkAdd(link)
		if errors.Is(err, unix.EEXIST) {
			continue // another container's cable, or a link of someone else's
		}
		if err != nil {
			return fmt.Errorf("ip link add %s type veth peer name eth0 netns %d: %w", hostEnd(n), pid, err)
		}
		// netlink looks the new link's number up by its name: none means
		// it is gone already, with the container's namespace (the child
		// has died), and the name may be another run's by now.
		if link.Index == 0 {
			return fmt.Errorf("ip link add %s: gone at once: the container has ended", hostEnd(n))
		}
		v.host = link
		first := sub.Addr().As4()
		v.hostAddr = address(first, 4*n+1)
		v.innerAddr = address(first, 4*n+2)
		return checkRoutes(v.hostAddr)
	}
	if slots == 1 {
		return fmt.Errorf("-net %s has room for one container, and the host end of its cable, %s, is taken (ip link show %s): wait for that container to end, or give -net a bigger subnet", sub, hostEnd(0), hostEnd(0))
	}
	return fmt.Errorf("-net %s has room for %d containers, and the host ends of their cables, %s to %s, are all taken (ip link): wait for a container to end, or give -net a bigger subnet", sub, slots, hostEnd(0), hostEnd(slots-1))
}

// address returns the address i after first, in a /30.
func address(first [4]byte, i int) *netlink.Addr {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, binary.BigEndian.Uint32(first[:])+uint32(i))
	return &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(30, 32)}}
}

// checkRoutes refuses a /30 that this machine already routes elsewhere,
// part or whole, in any routing table (a VPN such as Tailscale or WireGuard
// keeps its routes in a table of its own): the cable's own route would then
// take over those addresses, maybe a part of the learner's own network. A
// default route (0.0.0.0/0, or a VPN's two halves, 0.0.0.0/1 and
// 128.0.0.0/1) covers everything and does not count.
func checkRoutes(addr *netlink.Addr) error {
	// ip route show table all
	routes, err := netlink.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) { // interrupted: a route changed meanwhile, the rest is there
		return fmt.Errorf("ip route show table all: %w", err)
	}
	mine := netip.PrefixFrom(netip.AddrFrom4([4]byte(addr.IP.To4())), 30).Masked()
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		dst, ok := netip.AddrFromSlice(r.Dst.IP.To4())
		if !ok || ones <= 1 || !netip.PrefixFrom(dst, ones).Overlaps(mine) {
			continue
		}
		via := "another interface"
		if link, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
			via = link.Attrs().Name
		}
		return fmt.Errorf("-net: %s, this container's part of it, overlaps %s, which this machine already routes to %s: give -net a subnet that no interface uses", mine, r.Dst, via)
	}
	return nil
}

// remove deletes the cable, both ends, when the container has ended. The
// kernel would do it anyway once the container's network namespace is gone
// (its last process has exited), also after a "kill -9" of run, but in a
// worker of its own, a moment later; deleting it here means that nothing is
// left when run returns.
func (v *veth) remove() {
	if v.host == nil {
		return
	}
	// ip link del cfs0
	if err := netlink.LinkDel(v.host); err != nil && !errors.Is(err, unix.ENODEV) {
		fmt.Fprintf(os.Stderr, "%s: ip link del %s: %v\n", prog, v.host.Attrs().Name, err)
	}
}

// wired is the child's end of the pipe on which run says that the network
// is wired: file descriptor 4, main.go's first extra file, which supervise
// (plumbing.go) puts after its own, the handover.
const wired = handover + 1

// waitForCable blocks until run has plugged in the host's end of the cable
// and says, on a line, the address of this end. An end of file instead
// means that run failed or is gone: then run kills the child, or has
// killed it already.
func waitForCable() (string, error) {
	pipe := os.NewFile(wired, "wired")
	defer pipe.Close()
	line, err := bufio.NewReader(pipe).ReadString('\n')
	if err != nil {
		return "", errors.New("run has gone before wiring the container's network: not starting the command")
	}
	return strings.TrimSuffix(line, "\n"), nil
}
