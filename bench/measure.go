// This file times things: a program from its start to its exit, the
// rounds in which every contender and probe runs once, in a new order
// each time, and what the times say (median, quartiles).

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// times are the times measured, by contender and by part.
type times map[string][]time.Duration

// rounds runs, on the runner thread, each contender once to try it, then
// warmups rounds whose times count for nothing, then runs rounds. In each
// round every contender and every probe runs once, in an order shuffled
// anew, so that a machine that slows down or speeds up meanwhile (another
// program, the CPU's clock, the page cache) hits them all alike. It
// returns the times, and the contenders that ran: a runtime whose trial
// failed is left out.
func (k *kernel) rounds(ctx context.Context, contenders []contender, probes []probe, runs, warmups int) (times, []contender, error) {
	got := times{}
	var kept []contender
	var err error
	k.runner.do(func() {
		for _, c := range contenders {
			if ctx.Err() != nil {
				return // said below
			}
			_, err = k.runProgram(c)
			var failed *runError
			if errors.As(err, &failed) && c.runtime {
				// runc and crun are there to compare with, not the subject.
				fmt.Fprintf(os.Stderr, "bench: %s left out: %s (%v)\n", strings.TrimSuffix(c.name, " run"), failed.said, failed.err)
				err = nil
				continue
			}
			if err != nil {
				return
			}
			kept = append(kept, c)
		}
		var all []probe
		for _, c := range kept {
			all = append(all, probe{name: c.name, run: func() (map[string]time.Duration, error) {
				d, err := k.runProgram(c)
				return map[string]time.Duration{c.name: d}, err
			}})
		}
		all = append(all, probes...)
		show := onTerminal(os.Stderr)
		for round := -warmups; round < runs; round++ {
			if show {
				fmt.Fprintf(os.Stderr, "\rbench: round %d of %d ", round+warmups+1, runs+warmups)
			}
			rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
			for _, p := range all {
				if ctx.Err() != nil {
					err = context.Cause(ctx)
					return
				}
				var t map[string]time.Duration
				if p.oneCPU {
					if pinErr := onOneCPU(func() { t, err = p.run() }); pinErr != nil {
						err = fmt.Errorf("%s on one CPU: %w", p.name, pinErr)
					}
				} else {
					t, err = p.run()
				}
				if err != nil {
					return
				}
				if round >= 0 {
					for name, d := range t {
						got[name] = append(got[name], d)
					}
				}
			}
		}
		if show {
			fmt.Fprint(os.Stderr, "\r\033[K")
		}
	})
	if err == nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	return got, kept, err
}

// runProgram times a contender from its start to its exit.
func (k *kernel) runProgram(c contender) (time.Duration, error) {
	argv := c.argv
	if c.runtime {
		// A container ID of its own: a runtime refuses one it knows.
		k.n++
		argv = append(slices.Clip(argv[:len(argv)-1]), fmt.Sprintf("bench-%d-%d", os.Getpid(), k.n))
	}
	start, wait, err := k.time(c.name, argv, &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL})
	return start + wait, err
}

// time runs argv to its end, and returns how long it took to start (fork
// and exec) and then to exit and be waited for. It reads nothing and
// writes to /dev/null, but for its error output, which says why it
// failed, if it did. Setpgid puts it in a process group of its own, out
// of reach of the terminal's Ctrl-C; Pdeathsig kills it if bench dies.
func (k *kernel) time(name string, argv []string, attr *syscall.SysProcAttr) (start, wait time.Duration, err error) {
	if err := k.stderr.Truncate(0); err != nil {
		return 0, 0, err
	}
	if _, err := k.stderr.Seek(0, 0); err != nil {
		return 0, 0, err
	}
	cmd := &exec.Cmd{Path: argv[0], Args: argv, Stdin: k.devNull, Stdout: k.devNull, Stderr: k.stderr, SysProcAttr: attr}
	t0 := time.Now()
	err = cmd.Start()
	t1 := time.Now()
	if err == nil {
		err = cmd.Wait()
	}
	t2 := time.Now()
	if err != nil {
		out, _ := os.ReadFile(k.stderr.Name())
		return 0, 0, &runError{name, err, lastLine(out)}
	}
	return t1.Sub(t0), t2.Sub(t1), nil
}

// A runError is a run that failed, and the last line it said.
type runError struct {
	name string
	err  error
	said string
}

func (e *runError) Error() string { return fmt.Sprintf("%s: %v: %s", e.name, e.err, e.said) }

// onTerminal reports whether f is a terminal.
func onTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// ms is a duration in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// quartile returns the q-th quantile (0.5: the median) of the times, in
// milliseconds, interpolating between the two nearest times.
func quartile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Sorted(slices.Values(ds))
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i+1 >= len(sorted) {
		return ms(sorted[i])
	}
	frac := pos - float64(i)
	return ms(sorted[i]) + frac*(ms(sorted[i+1])-ms(sorted[i]))
}
