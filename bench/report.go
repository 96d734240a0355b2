// This file turns the times into the tables: every contender's median and
// spread with the ratios, where each step's time goes, and the kernel
// calls measured alone; as plain text or as Markdown, with the machine
// they ran on.

package main

import (
	"cmp"
	"fmt"
	"io"
	"math/bits"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A report is what the tables and the chart show.
type report struct {
	runs     int
	rows     []row // every contender
	bars     []bar // every step: where its time goes
	alone    []row // the kernel calls measured alone
	runtimes []row // runc and crun, those that ran
	machine  string
	took     time.Duration
}

// A row is a contender's, or a measurement's, times in milliseconds.
type row struct {
	name           string
	median, q1, q3 float64
	cost           string // over the step above, for a step
	xUnshare       string // its median over unshare's with its namespaces
	runcOver       string // runc's median over its
}

// A bar is a step's median, split into where its time goes.
type bar struct {
	step    string
	median  float64
	parts   []part  // those the step has, in the order of partOrder
	exceeds float64 // how far the parts measured alone exceed the median, when they do
	unshare *row    // unshare with the step's namespaces, if it ran
}

type part struct {
	name string
	ms   float64
}

// partOrder is the order of the parts, in the tables and the bars: as a
// container's life goes, the rest (mostly before) last.
var partOrder = []string{partClone, partTeardown, partCgroup, partOverlay, partVethAdd, partVethDel, partRest}

func newReport(o options, t times, contenders []contender, machine string, took time.Duration) *report {
	r := &report{runs: o.runs, machine: machine, took: took}
	median := func(key string) float64 { return quartile(t[key], 0.5) }
	rowOf := func(name, key string) row {
		return row{name: name, median: median(key), q1: quartile(t[key], 0.25), q3: quartile(t[key], 0.75)}
	}
	unshares := map[uintptr]*row{}
	var runc *row
	for _, c := range contenders {
		r.rows = append(r.rows, rowOf(c.name, c.name))
		last := &r.rows[len(r.rows)-1]
		switch {
		case c.runtime:
			r.runtimes = append(r.runtimes, *last)
			if c.name == "runc run" {
				runc = last
			}
		case c.step == nil:
			unshares[c.flags] = last
		}
	}
	// The ratios, and each step's cost over the step above it.
	var above *row
	for i, c := range contenders {
		row := &r.rows[i]
		if runc != nil && row != runc && row.median > 0 {
			row.runcOver = fmt.Sprintf("%.1f", runc.median/row.median)
		}
		if c.step == nil {
			continue
		}
		if u := unshares[c.flags]; u != nil && u.median > 0 {
			row.xUnshare = fmt.Sprintf("%.1f×", row.median/u.median)
		}
		if above != nil {
			row.cost = fmt.Sprintf("%+.2f", row.median-above.median)
		}
		above = row
	}
	// Where each step's time goes: the parts it has, measured alone.
	for i, c := range contenders {
		if c.step == nil {
			continue
		}
		s := c.step
		b := bar{step: s.name, median: r.rows[i].median, unshare: unshares[c.flags]}
		has := map[string]float64{}
		if s.flags != 0 {
			has[partClone] = median(startKey(s.flags)) - median(startKey(0))
			has[partTeardown] = median(waitKey(s.flags)) - median(waitKey(0))
		}
		if s.cgroup {
			has[partCgroup] = median(partCgroup)
		}
		if s.overlay {
			has[partOverlay] = median(partOverlay)
		}
		if s.veth {
			has[partVethAdd], has[partVethDel] = median(partVethAdd), median(partVethDel)
		}
		rest := b.median
		for _, name := range partOrder[:len(partOrder)-1] {
			if v, ok := has[name]; ok {
				v = max(v, 0) // noise around nothing is nothing
				b.parts = append(b.parts, part{name, v})
				rest -= v
			}
		}
		if rest < 0 {
			b.exceeds, rest = -rest, 0
		}
		b.parts = append(b.parts, part{partRest, rest})
		r.bars = append(r.bars, b)
	}
	// The kernel calls measured alone: the clones, fewest namespaces first.
	keys := []uintptr{0}
	for _, c := range contenders {
		if _, ok := t[startKey(c.flags)]; ok && c.step != nil && !slices.Contains(keys, c.flags) {
			keys = append(keys, c.flags)
		}
	}
	slices.SortStableFunc(keys, func(a, b uintptr) int { return cmp.Compare(bits.OnesCount64(uint64(a)), bits.OnesCount64(uint64(b))) })
	for _, flags := range keys {
		what := "new " + nsNames(flags)
		if flags == 0 {
			what = "no new namespace"
		}
		r.alone = append(r.alone, rowOf("clone and exec cat, "+what, startKey(flags)), rowOf("its exit and wait, "+what, waitKey(flags)))
	}
	for _, p := range []struct{ key, name string }{
		{partCgroup, "cgroup made, joined, removed"},
		{cgroupMade, "of which made, with its limits"},
		{cgroupJoined, "of which a process moved in (v1: on v2 the clone puts it there)"},
		{cgroupRemoved, "of which removed, once the process has gone"},
		{partOverlay, "overlay made, mounted, unmounted, removed"},
		{partVethAdd, "veth pair added, addresses, up"},
		{partVethDel, "veth pair deleted"},
	} {
		if _, ok := t[p.key]; ok {
			r.alone = append(r.alone, rowOf(p.name, p.key))
		}
	}
	return r
}

// The tables' headers.
var (
	contenderHeader = []string{"contender", "median ms", "middle half", "cost over the step above", "× unshare", "runc ÷"}
	aloneHeader     = []string{"measured alone", "median ms", "middle half"}
)

func (r *report) contenderCells() [][]string {
	var cells [][]string
	for _, row := range r.rows {
		cells = append(cells, []string{row.name, fmt.Sprintf("%.2f", row.median), spread(row), dash(row.cost), dash(row.xUnshare), dash(row.runcOver)})
	}
	return cells
}

func (r *report) barHeader() []string {
	return append([]string{"where the time goes, ms", "median"}, partOrder...)
}

func (r *report) barCells() [][]string {
	var cells [][]string
	for _, b := range r.bars {
		line := []string{b.step, fmt.Sprintf("%.2f", b.median)}
		for _, name := range partOrder {
			cell := "—"
			for _, p := range b.parts {
				if p.name == name {
					cell = fmt.Sprintf("%.2f", p.ms)
				}
			}
			if name == partRest && b.exceeds > 0 {
				cell = fmt.Sprintf("0 (the parts exceed the median by %.2f)", b.exceeds)
			}
			line = append(line, cell)
		}
		cells = append(cells, line)
	}
	return cells
}

func (r *report) aloneCells() [][]string {
	var cells [][]string
	for _, row := range r.alone {
		cells = append(cells, []string{row.name, fmt.Sprintf("%.2f", row.median), spread(row)})
	}
	return cells
}

// spread is the middle half of a row's times: from the first quartile to
// the third.
func spread(r row) string { return fmt.Sprintf("%.2f–%.2f", r.q1, r.q3) }

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// notes say how to read the tables.
func (r *report) notes() []string {
	return []string{
		fmt.Sprintf("Start to exit of /bin/true, from fork to wait: medians of %d rounds after %d to warm up, in ms; "+
			"the middle half runs from the first quartile to the third. Each round ran every contender and measurement once, in a new random order. "+
			"× unshare: the median over that of unshare with the same namespaces; runc ÷: runc's median over the row's.", r.runs, warmups),
		"Where the time goes: clone and teardown are a clone of a child (cat) with the step's namespaces, less one without: " +
			"its start, then, once told to, its exit and wait; cgroup, overlay and veth are the step's own calls, made alone; " +
			"Go programs and the rest is what they leave of the median: two Go programs starting (run, then child), the setup calls not measured alone, the command.",
		"Machine: " + r.machine + fmt.Sprintf("; bench ran for %v.", r.took.Round(time.Second)),
	}
}

// text writes the tables as plain text, in aligned columns.
func (r *report) text(w io.Writer) {
	writeText(w, contenderHeader, r.contenderCells())
	fmt.Fprintln(w)
	writeText(w, r.barHeader(), r.barCells())
	fmt.Fprintln(w)
	writeText(w, aloneHeader, r.aloneCells())
	fmt.Fprintln(w)
	for _, n := range r.notes() {
		fmt.Fprintln(w, n)
	}
}

// writeText writes a table: the first column to the left, the numbers to
// the right, two spaces apart.
func writeText(w io.Writer, header []string, cells [][]string) {
	widths := make([]int, len(header))
	for _, line := range append([][]string{header}, cells...) {
		for i, cell := range line {
			widths[i] = max(widths[i], len([]rune(cell)))
		}
	}
	for _, line := range append([][]string{header}, cells...) {
		var b strings.Builder
		for i, cell := range line {
			pad := strings.Repeat(" ", widths[i]-len([]rune(cell)))
			switch {
			case i == 0:
				b.WriteString(cell + pad)
			default:
				b.WriteString("  " + pad + cell)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// markdown writes the tables as Markdown, for a README.
func (r *report) markdown(w io.Writer) {
	writeMarkdown(w, contenderHeader, r.contenderCells())
	fmt.Fprintln(w)
	writeMarkdown(w, r.barHeader(), r.barCells())
	fmt.Fprintln(w)
	writeMarkdown(w, aloneHeader, r.aloneCells())
	for _, n := range r.notes() {
		fmt.Fprintln(w)
		fmt.Fprintln(w, n)
	}
}

func writeMarkdown(w io.Writer, header []string, cells [][]string) {
	fmt.Fprintln(w, "| "+strings.Join(header, " | ")+" |")
	align := []string{"---"}
	for range header[1:] {
		align = append(align, "---:")
	}
	fmt.Fprintln(w, "|"+strings.Join(align, "|")+"|")
	for _, line := range cells {
		fmt.Fprintln(w, "| "+strings.Join(line, " | ")+" |")
	}
}

// machine describes this machine in one line: its kernel, processor,
// cgroups, distribution, Go, and the date.
func machine() string {
	var u unix.Utsname
	kernel := "Linux"
	if unix.Uname(&u) == nil {
		kernel += " " + unix.ByteSliceToString(u.Release[:])
	}
	return strings.Join([]string{kernel, cpuModel(), fmt.Sprintf("%d CPUs", runtime.NumCPU()), cgroupMode(), distribution(),
		runtime.Version(), time.Now().Format("2006-01-02")}, ", ")
}

// cpuModel reads the processor's name from /proc/cpuinfo: "model name" on
// x86, none on most arm64 machines, whose kernel names no model.
func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		key, value, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(key) == "model name" {
			return strings.Join(strings.Fields(value), " ")
		}
	}
	return runtime.GOARCH + " processor"
}

// cgroupMode says which cgroups the machine has, as step06 sees them.
func cgroupMode() string {
	var st unix.Statfs_t
	switch {
	case unix.Statfs(cgroupRoot, &st) != nil:
		return "no cgroups"
	case st.Type == unix.CGROUP2_SUPER_MAGIC:
		return "cgroup v2"
	case unix.Statfs(cgroupRoot+"/unified", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC:
		return "cgroup hybrid (v1 controllers)"
	}
	return "cgroup v1"
}

// distribution is /etc/os-release's PRETTY_NAME.
func distribution() string {
	data, _ := os.ReadFile("/etc/os-release")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return "an unknown distribution"
}
