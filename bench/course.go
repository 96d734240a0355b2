// This file holds the contenders: the course's steps, each with the
// namespaces its child is cloned with and the parts it adds, unshare(1)
// with the same namespaces, and the runtimes runc and crun; and what they
// need to run: their binaries, a root filesystem, an image, a bundle.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"containers-from-scratch/internal/oci"
	"containers-from-scratch/internal/rootfs"
)

// A step is one of the course's programs, as bench times it.
type step struct {
	name string
	// flags are the namespaces its child is cloned with, as its main.go
	// sets Cloneflags (TestStepsAreAsTheirCode checks them).
	flags uintptr
	// What run makes for each container, as root: a cgroup (step06 on),
	// an overlay (step08 on), a veth pair (step09 on).
	cgroup, overlay, veth bool
}

// num is the step's number, as -steps takes it: "05".
func (s step) num() string { return s.name[4:6] }

// The namespaces of the steps' children: each set is the one before it
// and one or two more, as the course adds them.
const (
	withUTS   = unix.CLONE_NEWUTS
	withPID   = withUTS | unix.CLONE_NEWPID
	withMount = withPID | unix.CLONE_NEWNS
	withNet   = withMount | unix.CLONE_NEWNET
	withUser  = withNet | unix.CLONE_NEWUSER
	withAll   = withUser | unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP
)

// steps is the course, in order.
var steps = []step{
	{name: "step01-exec"},
	{name: "step02-uts", flags: withUTS},
	{name: "step03-pid", flags: withPID},
	{name: "step04-chroot", flags: withPID},
	{name: "step05-proc", flags: withMount},
	{name: "step06-cgroups", flags: withMount, cgroup: true},
	{name: "step07-pivot-root", flags: withMount, cgroup: true},
	{name: "step08-overlay", flags: withMount, cgroup: true, overlay: true},
	{name: "step09-net", flags: withNet, cgroup: true, overlay: true, veth: true},
	{name: "step10-userns", flags: withUser, cgroup: true, overlay: true, veth: true},
	{name: "step11-ipc", flags: withAll, cgroup: true, overlay: true, veth: true},
	{name: "step12-lockdown", flags: withAll, cgroup: true, overlay: true, veth: true},
	{name: "step13-image", flags: withAll, cgroup: true, overlay: true, veth: true},
}

// pickSteps reads -steps: numbers and ranges, as in 01,05,09 or 05-09.
func pickSteps(list string) ([]step, error) {
	picked := map[int]bool{}
	bad := func(what string) error {
		return usageError(fmt.Sprintf("-steps %s: %s: give step numbers from 01 to %02d, as in 01,05,09 or 05-09", list, what, len(steps)))
	}
	for _, item := range strings.Split(list, ",") {
		from, to, isRange := strings.Cut(strings.TrimSpace(item), "-")
		first, err1 := strconv.Atoi(from)
		last, err2 := first, error(nil)
		if isRange {
			last, err2 = strconv.Atoi(to)
		}
		switch {
		case err1 != nil || err2 != nil:
			return nil, bad(fmt.Sprintf("%q is no step number", item))
		case first < 1 || last > len(steps) || first > last:
			return nil, bad(fmt.Sprintf("there is no step %s", item))
		}
		for n := first; n <= last; n++ {
			picked[n] = true
		}
	}
	var chosen []step
	for i, s := range steps {
		if picked[i+1] {
			chosen = append(chosen, s)
		}
	}
	return chosen, nil
}

// buildSteps builds the steps' programs into dir, with the go command
// that built bench, from this module, wherever in it bench runs.
func buildSteps(ctx context.Context, goTool, dir string, chosen []step) (map[string]string, error) {
	// No VCS stamp: root building a clone that a user owns makes git
	// refuse, and the programs need none.
	args := []string{"build", "-buildvcs=false", "-o", dir + "/"}
	bins := map[string]string{}
	for _, s := range chosen {
		args = append(args, "containers-from-scratch/"+s.name)
		bins[s.name] = filepath.Join(dir, s.name)
	}
	out, err := exec.CommandContext(ctx, goTool, args...).CombinedOutput()
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("go build the steps (run bench from the repository): %s", lastLine(out))
	}
	return bins, nil
}

// A course is what the steps run in.
type course struct {
	rootfs  string            // the root filesystem, for steps 04 to 09 and the runtimes
	owned   string            // the same, for steps 10 on: not root's
	owner   [2]int            // the uid and gid that owned has, root in those containers
	image   string            // for step13: LAYOUT:TAG, an image of the root filesystem
	scratch string            // the containers' upper layers, step13's layer store
	bins    map[string]string // the steps' programs, by name
}

// nobody owns the copy of a root filesystem that root owns: steps 10 on
// refuse to make root the container's root (step10-userns/userns.go).
// The container's root is then nobody outside it.
const nobody = 65534

// prepare makes what steps 10 on and step13 need: a root filesystem that
// is not root's (a copy, if it is), and an image of it.
func (c *course) prepare(tmp string, chosen []step) error {
	c.owned = c.rootfs
	var st unix.Stat_t
	if err := unix.Stat(c.rootfs, &st); err != nil {
		return err
	}
	c.owner = [2]int{int(st.Uid), int(st.Gid)}
	need := false
	for _, s := range chosen {
		need = need || s.flags&unix.CLONE_NEWUSER != 0
	}
	if !need {
		return nil
	}
	if st.Uid == 0 || st.Gid == 0 {
		c.owned, c.owner = filepath.Join(tmp, "rootfs"), [2]int{nobody, nobody}
		if out, err := exec.Command("cp", "-a", c.rootfs, c.owned).CombinedOutput(); err != nil {
			return fmt.Errorf("copying %s for steps 10 on: %s", c.rootfs, lastLine(out))
		}
		if err := chownTree(c.owned, c.owner); err != nil {
			return err
		}
	}
	if chosen[len(chosen)-1].name == "step13-image" {
		if err := c.makeImage(filepath.Join(tmp, "image")); err != nil {
			// The other steps are worth timing without it.
			fmt.Fprintf(os.Stderr, "bench: step13-image left out: no image: %v\n", err)
			delete(c.bins, "step13-image")
		}
	}
	return nil
}

// makeImage writes an image of the root filesystem, one layer, that runs
// /bin/true as root: the same files as the other steps get. (mkrootfs's
// demo image runs as a user that only subordinate ids map, which this
// machine may not have.)
func (c *course) makeImage(layout string) error {
	layer, err := oci.LayerOf(c.rootfs, func(name string) bool {
		return name == rootfs.Marker || strings.HasPrefix(name, "dev/")
	})
	if err != nil {
		return err
	}
	for i := range layer {
		layer[i].Uid, layer[i].Gid = 0, 0 // an image's files are its root's
	}
	_, err = oci.WriteImage(layout, oci.Image{Layers: []oci.Layer{layer}, Tag: "bench",
		Config: map[string]any{"Cmd": []string{"/bin/true"}, "Env": []string{"PATH=/usr/bin:/bin"}}})
	if err != nil {
		return err
	}
	c.image = layout + ":bench"
	return chownTree(layout, c.owner)
}

// chownTree gives dir and everything in it to owner, a uid and a gid.
func chownTree(dir string, owner [2]int) error {
	return filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, owner[0], owner[1])
	})
}

// A contender is a program that bench times from start to exit.
type contender struct {
	name  string   // as the tables show it
	argv  []string // what runs
	step  *step    // the step it is, if it is one
	flags uintptr  // its namespaces
	// A runtime: one whose first run fails is left out, not an error; its
	// last argument is replaced by a container ID of its own each run.
	runtime bool
}

// contenders are the steps, each running /bin/true in its container.
func (c *course) contenders(chosen []step) []contender {
	var list []contender
	for i, s := range chosen {
		bin, ok := c.bins[s.name]
		if !ok {
			continue // left out, and said why
		}
		argv := []string{bin, "run"}
		switch {
		case s.name == "step13-image":
			// The image's own command, /bin/true.
			argv = append(argv, "-image", c.image, "-scratch", c.scratch)
		case s.flags&unix.CLONE_NEWUSER != 0:
			argv = append(argv, "-rootfs", c.owned, "-scratch", c.scratch, "/bin/true")
		case s.overlay:
			argv = append(argv, "-rootfs", c.rootfs, "-scratch", c.scratch, "/bin/true")
		case s.num() >= "04":
			argv = append(argv, "-rootfs", c.rootfs, "/bin/true")
		default:
			argv = append(argv, "/bin/true")
		}
		list = append(list, contender{name: s.name, argv: argv, step: &chosen[i], flags: s.flags})
	}
	return list
}

// unshareOptions are unshare(1)'s options for each namespace, in the
// order they are written.
var unshareOptions = []struct {
	flag    uintptr
	options []string
}{
	// Root in the new user namespace is root outside, as a step's is
	// the root filesystem's owner: one id, mapped.
	{unix.CLONE_NEWUSER, []string{"--user", "--map-root-user"}},
	{unix.CLONE_NEWUTS, []string{"--uts"}},
	// The new PID namespace is for unshare's children: --fork makes
	// /bin/true its PID 1, as the steps make the command.
	{unix.CLONE_NEWPID, []string{"--pid", "--fork"}},
	{unix.CLONE_NEWNS, []string{"--mount"}},
	{unix.CLONE_NEWNET, []string{"--net"}},
	{unix.CLONE_NEWIPC, []string{"--ipc"}},
	{unix.CLONE_NEWCGROUP, []string{"--cgroup"}},
}

// unshareName is how the tables name unshare with these namespaces.
func unshareName(flags uintptr) string {
	name := "unshare"
	for _, o := range unshareOptions {
		if flags&o.flag != 0 {
			name += " " + strings.Join(o.options, " ")
		}
	}
	return name
}

// unshares are unshare(1) running /bin/true in the namespaces of each
// step, once for each set of them: the least a container of those
// namespaces costs, made by a C program and no Go.
func (c *course) unshares(chosen []step) []contender {
	path, err := exec.LookPath("unshare")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: unshare left out: not installed (apt-get install util-linux)")
		return nil
	}
	var list []contender
	seen := map[uintptr]bool{}
	for _, s := range chosen {
		if seen[s.flags] {
			continue
		}
		seen[s.flags] = true
		name := unshareName(s.flags)
		argv := append([]string{path}, strings.Fields(strings.TrimPrefix(name, "unshare"))...)
		list = append(list, contender{name: name, argv: append(argv, "/bin/true"), flags: s.flags})
	}
	return list
}

// runtimes are runc and crun, where installed, each running /bin/true in
// the root filesystem from a bundle of bench's own, with runc spec's
// defaults otherwise (new PID, network, IPC, UTS and mount namespaces,
// a cgroup). One whose first run fails is left out (see rounds).
func (c *course) runtimes(ctx context.Context, tmp string) []contender {
	var list []contender
	bundle := filepath.Join(tmp, "bundle")
	made := false
	for _, name := range []string{"runc", "crun"} {
		path, err := exec.LookPath(name)
		if err != nil {
			continue // not installed: nothing to say
		}
		if !made {
			if err := makeBundle(ctx, path, bundle, c.rootfs); err != nil {
				fmt.Fprintf(os.Stderr, "bench: %s left out: %v\n", name, err)
				continue
			}
			made = true
		}
		// Its state in bench's directory, not in /run: nothing stays.
		state := filepath.Join(tmp, name)
		list = append(list, contender{name: name + " run", runtime: true,
			argv: []string{path, "--root", state, "run", "--bundle", bundle, "ID"}})
	}
	return list
}

// makeBundle writes an OCI bundle, config.json, from the runtime's own
// "spec", that runs /bin/true in rootfs without a terminal.
func makeBundle(ctx context.Context, runtime, bundle, rootfs string) error {
	if err := os.Mkdir(bundle, 0o755); err != nil {
		return err
	}
	spec := exec.CommandContext(ctx, runtime, "spec")
	spec.Dir = bundle
	if out, err := spec.CombinedOutput(); err != nil {
		return fmt.Errorf("%s spec: %s", filepath.Base(runtime), lastLine(out))
	}
	file := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var config struct {
		Process map[string]any `json:"process"`
		Root    map[string]any `json:"root"`
	}
	var all map[string]any
	if err := errors.Join(json.Unmarshal(data, &config), json.Unmarshal(data, &all)); err != nil || config.Process == nil {
		return fmt.Errorf("%s spec wrote no config that bench can read: %v", filepath.Base(runtime), err)
	}
	config.Process["args"] = []string{"/bin/true"}
	config.Process["terminal"] = false
	config.Root = map[string]any{"path": rootfs, "readonly": true}
	all["process"], all["root"] = config.Process, config.Root
	data, err = json.MarshalIndent(all, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(file, data, 0o644)
}
