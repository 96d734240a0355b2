package steptest

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// --- step09: network namespace and veth ---

// The addresses of the first container's cable, in run's default subnet
// 10.200.0.0/24, and of the second's.
const (
	HostEnd      = "10.200.0.1"
	ContainerEnd = "10.200.0.2"
	secondHost   = "10.200.0.5"
	secondInside = "10.200.0.6"
)

// ip runs ip(8) on the host (the tests' own network namespace).
func ip(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	require.NoError(t, err, "ip %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// hostNetwork describes the host's network: its links by name, its IPv4
// addresses and its IPv4 routes.
func hostNetwork(t *testing.T) string {
	t.Helper()
	var links []string
	for _, line := range strings.Split(ip(t, "-br", "link"), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			links = append(links, f[0])
		}
	}
	return "links: " + strings.Join(links, " ") + "\n" + ip(t, "-4", "-o", "addr") + ip(t, "-4", "route")
}

// holdNetwork keeps the network namespace of process pid alive until the
// test ends, as an "ip netns" name or a process that entered it would: the
// kernel then cannot remove the container's cable, and only run can.
func holdNetwork(t *testing.T, pid int) {
	t.Helper()
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
}

// noCables waits until the host has no cable of a container's left: a
// test before this one may have killed a run, whose cable the kernel
// removes a moment later. The network tests count on getting cfs0.
func noCables(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool { return !regexp.MustCompile(`(?m)^cfs\d`).MatchString(ip(t, "-br", "link")) },
		10*time.Second, 10*time.Millisecond, "cables left on the host:\n%s", ip(t, "-br", "link"))
}

// fallbackTunnel matches the devices that a tunnel module, once loaded,
// puts in every new network namespace, down: ipip's tunl0, sit's sit0...
var fallbackTunnel = regexp.MustCompile(`(?m)^(tunl0|sit0|gre0|gretap0|erspan0|ip_vti0|ip6_vti0|ip6tnl0|ip6gre0)@NONE +DOWN .*\n`)

// NetworkIsTheContainersOwn checks what a learner sees inside: lo and eth0,
// both up, eth0 with the page's address, a loopback that works, and none of
// the host's links (a tunnel module's idle fallback devices aside).
func NetworkIsTheContainersOwn(t *testing.T, s *Step) {
	RequireRoot(t)
	noCables(t)
	r := s.Run(t, "sh", "-c", "ip -br link; ip -br -4 addr; ping -c 1 -W 2 127.0.0.1 >/dev/null && echo lo works")
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Regexp(t, `^lo +UNKNOWN +00:00:00:00:00:00 <LOOPBACK,UP,LOWER_UP> *
eth0@if\d+ +UP +([0-9a-f]{2}:){5}[0-9a-f]{2} <BROADCAST,MULTICAST,UP,LOWER_UP> *
lo +UNKNOWN +127\.0\.0\.1/8 *
eth0@if\d+ +UP +`+regexp.QuoteMeta(ContainerEnd)+`/30 *
lo works
$`, fallbackTunnel.ReplaceAllString(r.Stdout, ""))
}

// ContainerAndHostReachEachOther pings the host's end from the container,
// and the container from the host, while it runs.
func ContainerAndHostReachEachOther(t *testing.T, s *Step) {
	RequireRoot(t)
	noCables(t)
	p := Start(t, s.Command(t, s.RunArgs("sh", "-c", "ping -c 1 -W 2 "+HostEnd+" >/dev/null && echo reached the host || echo no answer from the host; head -n 1")...))
	require.Equal(t, "reached the host", p.ReadLine(t))
	out, err := exec.Command("ping", "-c", "1", "-W", "2", ContainerEnd).CombinedOutput()
	assert.NoError(t, err, "ping %s from the host: %s", ContainerEnd, out)
	p.Stdin.Close()
	r := p.Wait(t)
	assert.Equal(t, 0, r.Status, r.Stderr)
}

// TwoContainersGetTwoCables runs two containers at once: the second gets
// the next /30 and the next host end, cfs1, and both can be reached.
func TwoContainersGetTwoCables(t *testing.T, s *Step) {
	RequireRoot(t)
	noCables(t)
	show := "ip -br -4 addr show eth0; head -n 1"
	first := Start(t, s.Command(t, s.RunArgs("sh", "-c", show)...))
	assert.Regexp(t, `^eth0@if\d+ +UP +`+regexp.QuoteMeta(ContainerEnd)+`/30 *$`, first.ReadLine(t))
	second := Start(t, s.Command(t, s.RunArgs("sh", "-c", show)...))
	assert.Regexp(t, `^eth0@if\d+ +UP +`+regexp.QuoteMeta(secondInside)+`/30 *$`, second.ReadLine(t))
	assert.Contains(t, ip(t, "-4", "-o", "addr", "show", "cfs0"), HostEnd+"/30")
	assert.Contains(t, ip(t, "-4", "-o", "addr", "show", "cfs1"), secondHost+"/30")
	for _, addr := range []string{ContainerEnd, secondInside} {
		out, err := exec.Command("ping", "-c", "1", "-W", "2", addr).CombinedOutput()
		assert.NoError(t, err, "ping %s from the host: %s", addr, out)
	}
	for _, p := range []*Started{first, second} {
		p.Stdin.Close()
		assert.Equal(t, 0, p.Wait(t).Status)
	}
}

// NothingIsLeftOnTheNetwork checks that no link, address or route of the
// container's stays on the host: when the command exits and when it is
// killed, right when run returns, even while something else holds the
// container's network namespace; and when run itself is killed, once the
// kernel has removed the namespace.
func NothingIsLeftOnTheNetwork(t *testing.T, s *Step) {
	RequireRoot(t)
	noCables(t)
	before := hostNetwork(t)
	t.Run("command exits", func(t *testing.T) {
		p := Start(t, s.Command(t, s.RunArgs("sh", "-c", "echo up; head -n 1")...))
		require.Equal(t, "up", p.ReadLine(t))
		holdNetwork(t, ChildPID(t, p.Cmd.Process.Pid))
		p.Stdin.Close()
		require.Equal(t, 0, p.Wait(t).Status)
		assert.Equal(t, before, hostNetwork(t))
	})
	t.Run("command killed", func(t *testing.T) {
		p := Start(t, s.Command(t, s.RunArgs("sh", "-c", "echo up; exec sleep 60")...))
		require.Equal(t, "up", p.ReadLine(t))
		command := ChildPID(t, p.Cmd.Process.Pid)
		holdNetwork(t, command)
		require.NoError(t, unix.Kill(command, unix.SIGKILL))
		require.Equal(t, 128+9, p.Wait(t).Status)
		assert.Equal(t, before, hostNetwork(t))
	})
	t.Run("run killed", func(t *testing.T) {
		p := Start(t, s.Command(t, s.RunArgs("sh", "-c", "echo up; exec sleep 60")...))
		require.Equal(t, "up", p.ReadLine(t))
		require.Contains(t, ip(t, "-br", "link"), "cfs0")
		require.NoError(t, p.Cmd.Process.Kill())
		p.Wait(t)
		// The kernel removes the namespace, and its links, in a worker of
		// its own once the container's last process is gone.
		assert.Eventually(t, func() bool { return hostNetwork(t) == before }, 10*time.Second, 10*time.Millisecond,
			"the host's network after run was killed:\n%s\nbefore:\n%s", hostNetwork(t), before)
	})
}

// CommandWaitsForTheCable holds run, and only run, before each netlink
// socket it opens (strace delays socket(2)), so that a child that did not
// wait for run to plug the cable in would find no eth0, and a command
// started before the child set it up would find it without its address.
func CommandWaitsForTheCable(t *testing.T, s *Step) {
	RequireRoot(t)
	noCables(t)
	p, _ := s.RunHeldBefore(t, unix.SYS_SOCKET, 200*time.Millisecond, s.RunArgs("ip", "-br", "-4", "addr", "show", "eth0")...)
	r := p.Wait(t)
	assert.Equal(t, 0, r.Status, r.Stderr)
	assert.Regexp(t, `^eth0@if\d+ +UP +`+regexp.QuoteMeta(ContainerEnd)+`/30 *\n$`, r.Stdout)
}

// SetupFailureWhileWiringIsOneLine makes the child fail its setup (a root
// filesystem without /proc) while run is still wiring its network (strace
// holds run's netlink sockets): the child's own line is all that shows, not
// run's failure to wire a container that has gone.
func SetupFailureWhileWiringIsOneLine(t *testing.T, s *Step) {
	RequireRoot(t)
	noCables(t)
	before := hostNetwork(t)
	noProc := noProcRootfs(t)
	p, _ := s.RunHeldBefore(t, unix.SYS_SOCKET, 300*time.Millisecond, s.RunIn(noProc, "true")...)
	r := p.Wait(t)
	assert.Equal(t, 1, r.Status)
	OneLine(t, r.Stderr)
	assert.Equal(t, s.Name+": mount proc on /proc: no such file or directory\n", r.Stderr)
	assert.Eventually(t, func() bool { return hostNetwork(t) == before }, 10*time.Second, 10*time.Millisecond)
}

// ContainerThatDiesWhileWiredIsOneLine lets run make the cable, then holds
// it for a second before its next netlink socket, the one with which it
// looks the new link up, while the child fails its setup (a root
// filesystem without /proc) and dies, and the kernel removes the cable
// with its namespace. The child's line is all that shows: run neither
// deletes a link it cannot find (or another run's of the same name) nor
// reports it.
func ContainerThatDiesWhileWiredIsOneLine(t *testing.T, s *Step) {
	RequireRoot(t)
	noCables(t)
	before := hostNetwork(t)
	noProc := noProcRootfs(t)
	p, _ := s.RunHeldFrom(t, unix.SYS_SOCKET, 2, time.Second, s.RunIn(noProc, "true")...)
	r := p.Wait(t)
	assert.Equal(t, 1, r.Status)
	assert.Equal(t, s.Name+": mount proc on /proc: no such file or directory\n", r.Stderr)
	assert.Eventually(t, func() bool { return hostNetwork(t) == before }, 10*time.Second, 10*time.Millisecond)
}

// BadSubnetsAreUsageErrors checks that a -net that is not an IPv4 subnet,
// too small for a cable, or in a range a cable cannot use, gets the
// reason, the usage line and status 2.
func BadSubnetsAreUsageErrors(t *testing.T, s *Step) {
	const unicast = "give -net a private unicast range such as 10.200.0.0/24"
	for value, reason := range map[string]string{
		"lots":          "not an IPv4 subnet such as 10.200.0.0/24",
		"10.200.0.0":    "not an IPv4 subnet such as 10.200.0.0/24",
		"10.200.0/24":   "not an IPv4 subnet such as 10.200.0.0/24",
		"fd00::/64":     "not an IPv4 subnet such as 10.200.0.0/24",
		"10.200.0.0/31": "too small: each container needs a /30, four addresses",
		"10.200.0.1/24": "not where a subnet starts: did you mean 10.200.0.0/24?",
		"0.0.0.0/0":     "too big: give it a /8 or smaller, of addresses your machine does not use",
		// Ranges that the kernel, or the network, treats apart.
		"0.0.0.0/8":          `0.0.0.0/8 is "this network", which no packet may be sent to: ` + unicast,
		"127.0.0.0/8":        "127.0.0.0/8 is loopback: " + unicast,
		"127.1.0.0/30":       "127.1.0.0/30 is loopback: " + unicast,
		"169.254.0.0/16":     "169.254.0.0/16 is link-local: " + unicast,
		"169.0.0.0/8":        "169.0.0.0/8 holds 169.254.0.0/16, link-local: " + unicast,
		"224.0.0.0/24":       "224.0.0.0/24 is multicast: " + unicast,
		"240.0.0.0/24":       "240.0.0.0/24 is class E, reserved: " + unicast,
		"255.255.255.252/30": "255.255.255.252/30 is class E, reserved: " + unicast,
	} {
		t.Run(value, func(t *testing.T) {
			r := s.Exec(t, "run", "-net", value, "true")
			assert.Equal(t, 2, r.Status)
			assert.Equal(t, fmt.Sprintf("%s: invalid value %q for flag -net: %s\n", s.Name, value, reason),
				strings.SplitAfter(r.Stderr, "\n")[0])
			assert.Contains(t, r.Stderr, "usage: ")
		})
	}
}

// TakenHostEndIsOneLine takes the only host end of a one-cable subnet,
// cfs0, with a link of the test's own: run says so in one line and leaves
// nothing behind. In the default subnet, the container gets the next cable.
func TakenHostEndIsOneLine(t *testing.T, s *Step) {
	RequireRoot(t)
	noCables(t)
	ip(t, "link", "add", "cfs0", "type", "veth", "peer", "name", "cfs0-peer")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", "cfs0").Run() })
	before := hostNetwork(t)
	r := s.Exec(t, s.args("run", s.Rootfs, "-net", "10.201.0.0/30", "true")...)
	assert.Equal(t, 1, r.Status)
	OneLine(t, r.Stderr)
	assert.Equal(t, s.Name+": -net 10.201.0.0/30 has room for one container, and the host end of its cable, cfs0, is taken (ip link show cfs0): wait for that container to end, or give -net a bigger subnet\n", r.Stderr)
	assert.Equal(t, before, hostNetwork(t))
	r = s.Run(t, "ip", "-br", "-4", "addr", "show", "eth0")
	assert.Regexp(t, `^eth0@if\d+ +UP +`+regexp.QuoteMeta(secondInside)+`/30 *\n$`, r.Stdout)
}

// SubnetInUseIsRefused gives -net the subnet of the host's own network:
// run refuses it in one line, rather than take over part of it, and leaves
// nothing behind.
func SubnetInUseIsRefused(t *testing.T, s *Step) {
	RequireRoot(t)
	noCables(t)
	before := hostNetwork(t)
	r := s.Exec(t, s.args("run", s.Rootfs, "-net", HostSubnet, "true")...)
	assert.Equal(t, 1, r.Status)
	OneLine(t, r.Stderr)
	assert.Equal(t, s.Name+": -net: 192.0.2.0/30, this container's part of it, overlaps "+HostSubnet+", which this machine already routes to "+HostLink+": give -net a subnet that no interface uses\n", r.Stderr)
	assert.Equal(t, before, hostNetwork(t))
}

// --- step09: the routes -net must keep clear of (issue 27) ---

// route adds a route in the tests' own network namespace (never the
// machine's: Isolated made it), and deletes it when the test ends.
func route(t *testing.T, args ...string) {
	t.Helper()
	ours, err := newNamespace("net")
	require.True(t, ours, "the tests run in their parent's network namespace: not adding routes to it (%v)", err)
	ip(t, append([]string{"route", "add"}, args...)...)
	t.Cleanup(func() { _ = exec.Command("ip", append([]string{"route", "del"}, args...)...).Run() })
}

// refusedFor runs a container in -net sub, which must be refused in one
// line for the route dst, and leave the host's network as it was.
func refusedFor(t *testing.T, s *Step, sub, mine, dst string) {
	t.Helper()
	before := hostNetwork(t)
	r := s.Exec(t, s.args("run", s.Rootfs, "-net", sub, "true")...)
	assert.Equal(t, 1, r.Status)
	OneLine(t, r.Stderr)
	assert.Equal(t, s.Name+": -net: "+mine+", this container's part of it, overlaps "+dst+", which this machine already routes to "+HostLink+": give -net a subnet that no interface uses\n", r.Stderr)
	assert.Equal(t, before, hostNetwork(t))
}

// RoutesOfEveryTableCount routes part of a subnet in a routing table of
// its own, as a VPN (WireGuard, Tailscale) does, not in main: run refuses
// the subnet all the same.
func RoutesOfEveryTableCount(t *testing.T, s *Step) {
	RequireRoot(t)
	noCables(t)
	for _, table := range []string{"100", "51820", "local"} {
		t.Run("table "+table, func(t *testing.T) {
			route(t, "10.99.0.0/16", "dev", HostLink, "table", table)
			refusedFor(t, s, "10.99.5.0/24", "10.99.5.0/30", "10.99.0.0/16")
		})
	}
}

// VPNHalvesDoNotCount adds what a VPN that takes all traffic adds, in
// main and in a table of its own: two routes, 0.0.0.0/1 and 128.0.0.0/1,
// that cover everything, as a default route does; neither counts as a
// route of the container's subnet, and the container runs.
func VPNHalvesDoNotCount(t *testing.T, s *Step) {
	RequireRoot(t)
	noCables(t)
	for _, table := range []string{"main", "100"} {
		for _, dst := range []string{"0.0.0.0/1", "128.0.0.0/1", "default"} {
			route(t, dst, "dev", HostLink, "table", table)
		}
	}
	// A subnet in each half.
	for sub, inside := range map[string]string{"10.200.0.0/24": ContainerEnd, "172.30.0.0/30": "172.30.0.2"} {
		r := s.Exec(t, s.args("run", s.Rootfs, "-net", sub, "ip", "-br", "-4", "addr", "show", "eth0")...)
		assert.Equal(t, 0, r.Status, "-net %s: %s", sub, r.Stderr)
		assert.Regexp(t, `^eth0@if\d+ +UP +`+regexp.QuoteMeta(inside)+`/30 *\n$`, r.Stdout)
	}
}

// AnyOverlappingRouteIsRefused routes, one at a time, each address of a
// one-container subnet alone (a host route, /32), and ranges that hold it,
// up to a quarter of all addresses: each is refused.
func AnyOverlappingRouteIsRefused(t *testing.T, s *Step) {
	RequireRoot(t)
	noCables(t)
	for _, dst := range []string{"10.201.0.0/32", "10.201.0.1/32", "10.201.0.2/32", "10.201.0.3/32", "10.201.0.2/31", "10.0.0.0/8", "0.0.0.0/2"} {
		t.Run(dst, func(t *testing.T) {
			route(t, dst, "dev", HostLink)
			refusedFor(t, s, "10.201.0.0/30", "10.201.0.0/30", dst)
		})
	}
}
