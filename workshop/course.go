package main

// This file holds the course's own code as the tool reads it: the steps,
// each step's main.go as git has it, and the main.go a learner starts from.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"containers-from-scratch/internal/lessons"
)

// stepNamed finds a step by its number (3, 03) or its folder (step03-pid).
func stepNamed(arg string) (int, error) {
	// ./step03-pid/, as a shell completes it, or step03-pid/main.go.
	name := filepath.Base(strings.TrimSuffix(filepath.Clean(arg), "/main.go"))
	for i, step := range lessons.Steps {
		if name == step {
			return i, nil
		}
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(arg, "step")); err == nil && n >= 1 && n <= len(lessons.Steps) {
		return n - 1, nil
	}
	return 0, fmt.Errorf("no step %q: a step is a number from 1 to %d, or a folder such as %s", arg, len(lessons.Steps), lessons.Steps[2])
}

// courseMain returns the course's main.go of a step, as the repository's
// last commit has it: the learner's main.go may have replaced the file.
func courseMain(step string) ([]byte, error) {
	cmd := exec.Command("git", "show", "HEAD:./"+step+"/main.go")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if _, lookErr := exec.LookPath("git"); lookErr != nil {
			return nil, errors.New("needs git, to read the course's code as it came: sudo apt-get install git")
		}
		return nil, fmt.Errorf("cannot read the course's %s/main.go from git (%s): workshop needs the repository as git clone made it",
			step, strings.TrimSpace(firstLine(stderr.String())))
	}
	return out, nil
}

// A keep is what a step's other files need from its main.go, which the
// main.go of the step before lacks: start keeps it, so that the step
// builds, and says so. old occurs once in the step before's main.go.
type keep struct {
	old, new string
	why      string
}

// keeps are, for each step whose other files would not build with the
// step before's main.go, the edits that make them build. TestStartBuilds
// fails, for every step, when a change to the course needs one more.
var keeps = map[string][]keep{
	"step04-chroot": {{
		old: "//\tstep04-chroot run CMD [ARG...]\n",
		new: "//\tstep04-chroot run [-rootfs DIR] CMD [ARG...]\n",
		why: "-rootfs in the usage of the package comment",
	}, {
		old: "const usage = \"usage: \" + prog + \" run CMD [ARG...]\"\n",
		new: "const usage = \"usage: \" + prog + \" run [-rootfs DIR] CMD [ARG...]\"\n",
		why: "-rootfs in the usage line",
	}, {
		old: "\targv []string // the command and its arguments\n}\n\n// flags declares the options of run: none yet.\nfunc (c *config) flags(f *flag.FlagSet) {}\n",
		new: "\trootfs string   // directory that becomes the container's /\n\targv   []string // the command and its arguments\n}\n\n" +
			"// flags declares the options of run.\nfunc (c *config) flags(f *flag.FlagSet) {\n" +
			"\tf.StringVar(&c.rootfs, \"rootfs\", \"rootfs\", \"use `DIR` as the container's root filesystem\")\n}\n",
		why: "config's rootfs and the -rootfs option: the step's tests run it with -rootfs, which the step before refuses",
	}},
	"step06-cgroups": {{
		old: "\trootfs string   // directory that becomes the container's /\n",
		new: "\trootfs string   // directory that becomes the container's /\n" +
			"\tpids   int      // most processes at once\n" +
			"\tmemory int64    // most bytes of memory\n" +
			"\tcpus   float64  // most CPUs' worth of processor time\n",
		why: "config's pids, memory and cpus: cgroup.go reads them",
	}},
	"step08-overlay": {{
		old: "//\tstep08-overlay run [-rootfs DIR] [-pids N]",
		new: "//\tstep08-overlay run [-rootfs DIR] [-scratch DIR] [-keep] [-pids N]",
		why: "-scratch and -keep in the usage of the package comment",
	}, {
		old: "\" run [-rootfs DIR] [-pids N]",
		new: "\" run [-rootfs DIR] [-scratch DIR] [-keep] [-pids N]",
		why: "-scratch and -keep in the usage line",
	}, {
		old: "\trootfs string   // directory that becomes the container's /\n",
		new: "\trootfs string   // directory that becomes the container's /\n" +
			"\tlayers string   // where each container's changes go while it runs\n" +
			"\tkeep   bool     // keep the changes after the container ends\n",
		why: "config's layers and keep: overlay.go reads them",
	}, {
		old: "\tf.StringVar(&c.rootfs, \"rootfs\", \"rootfs\", \"use `DIR` as the container's root filesystem\")\n",
		new: "\tf.StringVar(&c.rootfs, \"rootfs\", \"rootfs\", \"use `DIR` as the container's root filesystem\")\n" +
			"\tf.StringVar(&c.layers, \"scratch\", defaultScratch, \"keep each container's changes in `DIR` while it runs\")\n" +
			"\tf.BoolVar(&c.keep, \"keep\", false, \"keep the container's changes when it ends, and say where\")\n",
		why: "the -scratch and -keep options: the step's tests run it with -scratch, which the step before refuses",
	}},
	"step09-net": {{
		old: "\treturn supervise(cmd)\n",
		new: "\treturn supervise(cmd, func(pid int) error { return nil })\n",
		why: "supervise's second argument, a function run with the child's PID: plumbing.go's supervise takes it",
	}},
	"step10-userns": {{
		old: "\tif err := checkRoot(); err != nil {\n\t\treturn err\n\t}\n",
		new: "",
		why: "no checkRoot call: plumbing.go has no checkRoot any more",
	}, {
		old: "\tov, err := createOverlay(c)\n",
		new: "\tov, err := createOverlay(c, owner{})\n",
		why: "createOverlay's owner, the container's root outside (userns.go): overlay.go takes it",
	}, {
		old: "parseChildArgs(args, \"uts\", \"pid\", \"mnt\", \"net\")",
		new: "parseChildArgs(args)",
		why: "parseChildArgs without the namespaces: plumbing.go's checks them itself",
	}, {
		old: "\tif err := joinCgroup(); err != nil {\n\t\treturn err\n\t}\n",
		new: "",
		why: "no joinCgroup call in child: cgroup.go has none; run puts the child in (next line)",
	}, {
		old: "\treturn supervise(cmd, func(pid int) error {\n",
		new: "\treturn supervise(cmd, func(pid int) error {\n\t\tif err := cg.add(pid); err != nil {\n\t\t\treturn err\n\t\t}\n",
		why: "cg.add(pid) in supervise's function: the child is put in its cgroup by run (cgroup.go)",
	}},
	"step13-image": {{
		old: "\trootfs string   // directory that becomes the container's /\n",
		new: "\timage  string   // an OCI image layout and a tag in it, DIR:TAG\n" +
			"\timg    image    // its layers and config (image.go), read by parseArgs\n" +
			"\trootfs string   // directory that becomes the container's /\n",
		why: "config's image and img: command.go and image.go read them",
	}, {
		old: "\tov, err := createOverlay(c, owner)\n",
		new: "\tov, err := createOverlay(c, idMapFor(owner))\n",
		why: "createOverlay's id map (ids.go): overlay.go takes it",
	}},
}

// refusals are the steps whose plumbing.go refuses to set up a container
// at all until the step's idea is in main.go: there, the earlier steps'
// guarantees cannot hold before the step's own do, and check says why.
var refusals = map[string]string{
	"step10-userns": "plumbing.go's child runs only in a user namespace of its own, never on the host: run's clone must make one, with its id maps",
	"step11-ipc":    "plumbing.go's child runs only when every namespace of the clone is new, never the host's: run's clone must make the IPC and cgroup namespaces too",
}

// tightened are the tests of the steps before whose guarantee a step makes
// stronger, so that they are the step's own: its tests of them expect what
// its idea brings.
var tightened = map[string][]string{
	// The command is looked for in the root filesystem: one the host has
	// and the root filesystem has not is not found.
	"step04-chroot": {"TestCommandNotFoundExits127", "TestCommandThatCannotRunExits126"},
	// pivot_root's new root is the overlay, in the scratch directory.
	"step08-overlay": {"TestPivotRootErrorsAreExplained"},
	// The lockdown takes CAP_SYS_ADMIN away: sethostname is refused inside,
	// as are more of the host root's powers.
	"step12-lockdown": {"TestHostnameChangeStaysInside", "TestHostRootPowersFailInside"},
}

// firstStep is the main.go a learner starts step01 from: the smallest
// program that builds with step01's plumbing.go, which needs prog, usage
// and config from it.
const firstStep = `// Command step01-exec runs a command as the later steps run a container.
//
// Usage:
//
//	step01-exec run CMD [ARG...]
//
// Write the rest: main reads "run", and run starts the command with this
// program's standard input, output and error, and exits with its status.
package main

import "flag"

// prog names this program in its messages.
const prog = "step01-exec"

const usage = "usage: " + prog + " run CMD [ARG...]"

func main() {}

// config is what the command line asks for.
type config struct {
	argv []string // the command and its arguments
}

// flags declares the options of run: none yet.
func (c *config) flags(f *flag.FlagSet) {}
`

// started returns the main.go a learner starts step i from: the step
// before's, under this step's name, and what it kept from this step's
// main.go so that the step builds.
func started(i int) ([]byte, []string, error) {
	if i == 0 {
		return []byte(firstStep), nil, nil
	}
	prev, step := lessons.Steps[i-1], lessons.Steps[i]
	src, err := courseMain(prev)
	if err != nil {
		return nil, nil, err
	}
	text := strings.ReplaceAll(string(src), prev, step)
	var why []string
	for _, k := range keeps[step] {
		if strings.Count(text, k.old) != 1 {
			return nil, nil, fmt.Errorf("cannot start %s: %s/main.go has changed (%q is not in it once); the course's keeps in workshop/course.go need updating", step, prev, firstLine(k.old))
		}
		text = strings.Replace(text, k.old, k.new, 1)
		why = append(why, k.why)
	}
	return []byte(text), why, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// readMain returns the main.go a step has now: nil if there is none (the
// learner deleted it), which solution and start then write.
func readMain(step string) ([]byte, error) {
	src, err := os.ReadFile(step + "/main.go")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return src, err
}
