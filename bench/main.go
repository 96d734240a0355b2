// Command bench times the course's containers: how long each step takes to
// start a container that runs /bin/true and to clean up after it, beside
// unshare(1) with the same namespaces and runc or crun, and where that time
// goes.
//
// Usage, as root, from the repository root:
//
//	go run ./bench [-rootfs DIR] [-runs N] [-steps LIST] [-svg FILE] [-md]
//
// It builds every step with go build, then runs rounds: in each, every
// contender (a step, an unshare, a runtime) runs once, and so does each
// kernel call that bench measures alone (a clone with a step's namespaces,
// its cgroup, its overlay, its veth pair), in a new random order each
// round, so that whatever the machine does meanwhile hits them all alike.
// Three rounds warm up first and count for nothing. It prints, for each
// contender, the median time and the middle half of the times, and for
// each step where its time goes; -md prints the tables as Markdown, and
// -svg FILE draws them as a chart. For example:
//
//	go run ./bench -runs 10 -steps 05,09
//
// Everything it makes (the binaries, a copy of the root filesystem, an
// image, the containers' scratch directory, namespaces) is its own, and is
// gone when it ends, also on Ctrl-C. The contenders run in network and
// mount namespaces of bench's: the steps' cables, cfs0 and eth0, and
// every mount made, are never the machine's.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"
)

const usage = "usage: bench [-rootfs DIR] [-runs N] [-steps LIST] [-svg FILE] [-md]"

// warmups are the rounds that run before those that count: the first
// runs fill the page cache and step13's layer store.
const warmups = 3

// options are what the command line asks for.
type options struct {
	rootfs string // the root filesystem the steps run in
	runs   int    // rounds that count
	steps  []step // the steps to time, from -steps
	svg    string // where to draw the chart, if anywhere
	md     bool   // Markdown tables instead of plain text
}

func main() {
	os.Exit(exitStatus(run(os.Args[1:])))
}

// run is the benchmark, from the command line to the tables.
func run(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New(`timing the steps needs root: sudo env "PATH=$PATH" go run ./bench`)
	}
	rootfs, err := checkRootfs(o.rootfs)
	if err != nil {
		return err
	}
	goTool, err := findGo()
	if err != nil {
		return err
	}
	// Ctrl-C stops the rounds after the run under way; the deferred
	// removals then run, and the exit status says which signal it was.
	ctx, stop := stopOnSignals()
	defer stop()
	start := time.Now()

	// 1. A directory for everything bench makes, removed at the end.
	// Steps 10 on give its files to the container's root, who must get
	// through it to them, but not list it.
	tmp, err := os.MkdirTemp("", "bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o711); err != nil {
		return err
	}

	// 2. Every step's program, built as the learner builds it.
	bins, err := buildSteps(ctx, goTool, filepath.Join(tmp, "bin"), o.steps)
	if err != nil {
		return err
	}

	// 3. What the steps run in: the root filesystem, for steps 10 on a copy
	// that is not root's (step10-userns/userns.go), and for step13 an
	// image of it.
	c := &course{rootfs: rootfs, scratch: filepath.Join(tmp, "scratch"), bins: bins}
	if err := c.prepare(tmp, o.steps); err != nil {
		return err
	}

	// The image's bytes go back to the system: a clone that cannot share
	// bench's memory (one with a user namespace) copies its page tables,
	// and would take longer than a step's small run does.
	debug.FreeOSMemory()

	// 4. The contenders: the steps, unshare with each step's namespaces,
	// and the runtimes that are installed (and work here: see rounds).
	contenders := c.contenders(o.steps)
	contenders = append(contenders, c.unshares(o.steps)...)
	contenders = append(contenders, c.runtimes(ctx, tmp)...)

	// 5. The kernel calls the steps make, each measured alone, from
	// threads in namespaces of bench's own.
	k, err := newKernel(tmp, c)
	if err != nil {
		return err
	}
	defer k.close()
	probes, err := k.probes(o.steps)
	if err != nil {
		return err
	}

	// 6. The rounds: all of them, interleaved, every round in a new order.
	fmt.Fprintf(os.Stderr, "bench: %d contenders, and %d sets of kernel calls measured alone, in %d rounds (%d to warm up)\n",
		len(contenders), len(probes), o.runs+warmups, warmups)
	times, contenders, err := k.rounds(ctx, contenders, probes, o.runs, warmups)
	if err != nil {
		return err
	}

	// 7. The tables, and the chart.
	r := newReport(o, times, contenders, machine(), time.Since(start))
	if o.md {
		r.markdown(os.Stdout)
	} else {
		r.text(os.Stdout)
	}
	if o.svg != "" {
		return writeChart(o.svg, r)
	}
	return nil
}

// parseFlags reads the command line.
func parseFlags(args []string) (options, error) {
	o := options{}
	flags := flag.NewFlagSet("bench", flag.ContinueOnError)
	flags.SetOutput(io.Discard) // usageError says what went wrong
	flags.StringVar(&o.rootfs, "rootfs", "rootfs", "run the steps in the root filesystem `DIR`, built by go run ./mkrootfs")
	flags.IntVar(&o.runs, "runs", 40, "time `N` rounds, after three to warm up")
	list := flags.String("steps", "01-13", "time the steps in `LIST`, as in 01,05,09 or 05-09")
	flags.StringVar(&o.svg, "svg", "", "draw the chart into `FILE`")
	flags.BoolVar(&o.md, "md", false, "print the tables as Markdown")
	err := flags.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		var help strings.Builder
		flags.SetOutput(&help)
		flags.PrintDefaults()
		return o, helpRequest(help.String())
	case err != nil:
		return o, usageError(err.Error())
	case flags.NArg() > 0:
		return o, usageError(fmt.Sprintf("unexpected %q: bench takes only options", flags.Arg(0)))
	case o.runs < 1 || o.runs > 10000:
		return o, usageError(fmt.Sprintf("-runs %d: give a number of rounds from 1 to 10000", o.runs))
	case o.rootfs == "":
		return o, usageError("-rootfs is empty: give the directory of a root filesystem")
	}
	o.steps, err = pickSteps(*list)
	return o, err
}
