// This file maps a range of ids into the container, not one. An image's
// files belong to many users (Debian's _apt is 42, nobody is 65534), and
// a program such as apt changes to them. In step10 only root was mapped:
// any other id was no one inside, and chown or setgroups to it failed.
// Now ids 1 and up are the owner's subordinate ids, the ranges that
// /etc/subuid and /etc/subgid give each user (subuid(5)), as rootless
// Podman maps them. Root inside is still the owner outside.

package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// mapsEnv marks the children of a run whose ids newuidmap maps.
const mapsEnv = "CONTAINERS_FROM_SCRATCH_MAPS"

// An idMap says which ids outside are the container's ids: its lines, as
// uid_map and gid_map take them.
type idMap struct {
	uids, gids []syscall.SysProcIDMap
	// byHelpers is true when newuidmap and newgidmap write the maps: a
	// user without sudo may map only their own id themselves, and the
	// two setuid programs check /etc/subuid and /etc/subgid for the rest.
	byHelpers bool
	missing   string // why only root is mapped, when it is
}

// idMapFor maps root to the owner, and ids 1 and up to the owner's
// subordinate ids, if they have some. With sudo, run writes the maps
// itself (it may map any id); without, newuidmap and newgidmap do.
func idMapFor(o owner) idMap {
	os.Unsetenv(mapsEnv) // run's to set, not its caller's
	m := idMap{
		uids: []syscall.SysProcIDMap{{ContainerID: 0, HostID: o.uid, Size: 1}},
		gids: []syscall.SysProcIDMap{{ContainerID: 0, HostID: o.gid, Size: 1}},
	}
	// The owner's name, from the password file itself: os/user may ask
	// the C library, whose NSS modules do more than read a file.
	name := strconv.Itoa(o.uid)
	_ = eachLine("/etc/passwd", func(f []string) bool {
		if f[2] == name {
			name = f[0]
			return true
		}
		return false
	})
	subuids, errU := subordinate("/etc/subuid", name, o.uid)
	subgids, errG := subordinate("/etc/subgid", name, o.uid)
	switch {
	case errors.Join(errU, errG) != nil:
		m.missing = errors.Join(errU, errG).Error()
		return m
	case len(subuids) == 0 || len(subgids) == 0:
		m.missing = fmt.Sprintf("%s has no subordinate ids in /etc/subuid and /etc/subgid (sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s)", name, name)
		return m
	}
	if os.Geteuid() != 0 {
		for _, helper := range []string{"newuidmap", "newgidmap"} {
			if _, err := exec.LookPath(helper); err != nil {
				m.missing = helper + " is not installed (sudo apt-get install uidmap)"
				return m
			}
		}
		m.byHelpers = true
	}
	m.uids, m.gids = append(m.uids, subuids...), append(m.gids, subgids...)
	return m
}

// subordinate reads the ranges of file that belong to the user, by name
// or by uid, as container ids 1 and up, in the order the file gives them
// (lines "name:first:count"). It stops at 65536 ids: root and every id an
// image may use, nobody (65534) included.
func subordinate(file, name string, uid int) ([]syscall.SysProcIDMap, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	var ranges []syscall.SysProcIDMap
	next := 1
	lines := bufio.NewScanner(f)
	for lines.Scan() && next < 65536 {
		fields := strings.Split(strings.TrimSpace(lines.Text()), ":")
		if len(fields) != 3 || (fields[0] != name && fields[0] != strconv.Itoa(uid)) {
			continue
		}
		first, err1 := strconv.Atoi(fields[1])
		count, err2 := strconv.Atoi(fields[2])
		if err1 != nil || err2 != nil || first < 0 || count <= 0 {
			return nil, fmt.Errorf("%s: a line of %s's is not name:first:count: %q", file, name, lines.Text())
		}
		count = min(count, 65536-next)
		ranges = append(ranges, syscall.SysProcIDMap{ContainerID: next, HostID: first, Size: count})
		next += count
	}
	return ranges, lines.Err()
}

// key names the map, for the layer store: a layer unpacked with one map
// holds owners that another map would show as other ids.
func (m idMap) key() string {
	var b strings.Builder
	for i, lines := range [][]syscall.SysProcIDMap{m.uids, m.gids} {
		// In the order of the ids inside: the kernel may list them so.
		lines = slices.SortedFunc(slices.Values(lines), func(a, b syscall.SysProcIDMap) int { return a.ContainerID - b.ContainerID })
		b.WriteString([]string{"u", "-g"}[i])
		for j, l := range lines {
			if j > 0 {
				b.WriteString(".")
			}
			fmt.Fprintf(&b, "%d+%d", l.HostID, l.Size)
		}
	}
	return b.String() // e.g. u1000+1.100000+65535-g1000+1.100000+65535
}

// leaveToHelpers has the clone of cmd map no ids, when newuidmap and
// newgidmap are to map them, once the child is there (write), and marks
// the child: it is to wait for them.
func (m idMap) leaveToHelpers(cmd *exec.Cmd) {
	if !m.byHelpers {
		return
	}
	cmd.SysProcAttr.UidMappings, cmd.SysProcAttr.GidMappings, cmd.SysProcAttr.Credential = nil, nil, nil
	cmd.Env = append(os.Environ(), mapsEnv+"=newuidmap")
}

// write has newgidmap and newuidmap map the ids of process pid, run's
// child, then tells it to go on with a line on its descriptor 4 (goOn).
// With sudo, the maps are written already (Go's clone writes them).
func (m idMap) write(pid int, goOn *os.File) error {
	if !m.byHelpers {
		return nil
	}
	for _, h := range []struct {
		name  string
		lines []syscall.SysProcIDMap
	}{{"newgidmap", m.gids}, {"newuidmap", m.uids}} {
		args := []string{strconv.Itoa(pid)}
		for _, l := range h.lines {
			args = append(args, strconv.Itoa(l.ContainerID), strconv.Itoa(l.HostID), strconv.Itoa(l.Size))
		}
		if out, err := exec.Command(h.name, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v: %s", h.name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	_, err := goOn.WriteString("mapped\n")
	return err
}

// becomeRoot makes the child root in its user namespace, with every
// power in it. When newuidmap maps the ids, the child starts as no one:
// its exec came before the maps, and an exec by anyone but root drops
// every capability (user_namespaces(7)). It waits for the maps, then
// execs itself again, now as root. (A Go program cannot wait before its
// first exec: the clone and the exec are one call, exec.Cmd.Start.) It
// runs first thing, from init (plumbing.go), and so keeps the descriptors
// and the environment that run gave the child. (The exec clears the
// signal the child gets when run dies: becomeUser, in command.go, sets it
// again just before the command's exec, and checks that run is there.)
func becomeRoot() error {
	if os.Getenv(mapsEnv) == "" {
		// Mapped by the clone, or execed again already (or not run's
		// child: checkNewUserNamespace says so).
		return nil
	}
	os.Unsetenv(mapsEnv)
	// One byte at a time: what follows the line, eth0's address, is for
	// the child that this exec becomes. The line comes once the maps are
	// written: the uid may be 0 before, but the exec that started this
	// program came first, and gave it no power.
	var line []byte
	for b := make([]byte, 1); len(line) == 0 || line[len(line)-1] != '\n'; line = append(line, b[0]) {
		if n, err := unix.Read(wired, b); n != 1 || err != nil {
			return errors.New("run has gone before mapping the container's ids: not starting the command")
		}
	}
	return unix.Exec("/proc/self/exe", os.Args, os.Environ())
}

// removeAll removes dir, the container's changes, also files that belong
// to ids 1 and up, which run without sudo may not remove: its child does,
// root in a user namespace with the same map (Podman's "podman unshare").
func (m idMap) removeAll(dir string) error {
	err := removeAll(dir)
	if err == nil || !m.byHelpers {
		return err
	}
	cmd := exec.Command("/proc/self/exe", "remove", dir)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER, Pdeathsig: unix.SIGKILL}
	m.leaveToHelpers(cmd)
	childEnd, goOn, err := os.Pipe()
	if err != nil {
		return err
	}
	defer goOn.Close()
	cmd.ExtraFiles = []*os.File{nil, childEnd} // its descriptor 4, as the child's
	err = cmd.Start()
	childEnd.Close()
	if err == nil {
		if err = m.write(cmd.Process.Pid, goOn); err != nil {
			_ = cmd.Process.Kill()
		}
		err = errors.Join(err, cmd.Wait())
	}
	return err
}

// remove is the program that removeAll starts: root in a user namespace
// of its own with the container's ids, it removes the directory.
func remove(args []string) error {
	internal := usageError(`"remove" is internal: run starts it to remove what a container left`)
	if len(args) != 1 {
		return internal
	}
	// Only as root in a user namespace of its own, and only a directory
	// of a scratch directory: never the host's root, on the host's files.
	uidMap, err := os.ReadFile("/proc/self/uid_map")
	if f := strings.Fields(string(uidMap)); err != nil || os.Getuid() != 0 || len(f) < 3 || f[1] == "0" ||
		!exists(filepath.Join(filepath.Dir(args[0]), scratchMarker)) {
		return internal
	}
	return removeAll(args[0])
}

// mappedIDs reads the map of this process's user namespace, for the child:
// the same lines as run's idMap.
func mappedIDs() (idMap, error) {
	var m idMap
	for _, file := range []string{"uid_map", "gid_map"} {
		data, err := os.ReadFile("/proc/self/" + file)
		if err != nil {
			return m, err
		}
		var lines []syscall.SysProcIDMap
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var l syscall.SysProcIDMap
			if _, err := fmt.Sscan(line, &l.ContainerID, &l.HostID, &l.Size); err != nil {
				return m, fmt.Errorf("/proc/self/%s: %w", file, err)
			}
			lines = append(lines, l)
		}
		if file == "uid_map" {
			m.uids = lines
		} else {
			m.gids = lines
		}
	}
	return m, nil
}
