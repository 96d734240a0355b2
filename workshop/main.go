// Command workshop lets a learner write each step themselves, as the speaker
// does, and checks it with the course's own tests.
//
// Usage, from the repository's root:
//
//	go run ./workshop                  the steps: started, finished or the course's
//	go run ./workshop start N          step N's main.go becomes step N-1's, to write N's idea in
//	go run ./workshop check N          step N's tests on your main.go, one line per guarantee
//	go run ./workshop solution N       the course's main.go back; yours kept aside
//
// N is a step's number (3) or its folder (step03-pid). start refuses to
// overwrite a main.go you have changed, unless given -force; your main.go
// is kept aside in .workshop/ either way. check runs the tests with sudo when
// you are not root, as the README's commands do; -v lists every guarantee.
package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"containers-from-scratch/internal/lessons"
)

const prog = "workshop"

const usage = "usage: go run ./workshop [start [-force] N | check [-v] N | solution N]"

// state is where the tool keeps what it was given: the attempts it kept
// aside, and which main.go passed its check. git ignores it.
const state = ".workshop"

func main() {
	if err := run(os.Args[1:]); err != nil {
		var failed checkFailed
		if !errors.As(err, &failed) {
			fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
		}
		if errors.As(err, &usageError{}) {
			fmt.Fprintln(os.Stderr, usage)
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(args []string) error {
	if _, err := os.Stat(filepath.Join("workshop", "main.go")); err != nil {
		return errors.New("run it from the repository's root, where the step folders are: cd containers-from-scratch")
	}
	if len(args) == 0 {
		return list()
	}
	cmd, args := args[0], args[1:]
	var force, verbose bool
	var steps []string
	for _, a := range args {
		switch {
		case a == "-force" || a == "--force":
			force = true
		case a == "-v" || a == "--v":
			verbose = true
		case strings.HasPrefix(a, "-"):
			return usageError{fmt.Sprintf("unknown option %s", a)}
		default:
			steps = append(steps, a)
		}
	}
	if cmd != "start" && cmd != "check" && cmd != "solution" {
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	if len(steps) != 1 || (force && cmd != "start") || (verbose && cmd != "check") {
		return usageError{fmt.Sprintf("%s takes one step, a number from 1 to %d", cmd, len(lessons.Steps))}
	}
	i, err := stepNamed(steps[0])
	if err != nil {
		return err
	}
	switch cmd {
	case "start":
		return start(i, force)
	case "check":
		return check(i, verbose)
	case "solution":
		return solution(i)
	}
	return usageError{fmt.Sprintf("unknown command %q", cmd)}
}

// list says, for each step, whose main.go it has.
func list() error {
	for i, step := range lessons.Steps {
		course, err := courseMain(step)
		if err != nil {
			return err
		}
		mine, err := readMain(step)
		if err != nil {
			return err
		}
		begin, _, err := started(i)
		if err != nil {
			return err
		}
		var what string
		switch {
		case mine == nil:
			what = fmt.Sprintf("no main.go: go run ./workshop solution %d gives the course's back", i+1)
		case passed(step, mine) && bytes.Equal(mine, course):
			what = "finished: its check passed (the course's main.go)"
		case bytes.Equal(mine, course):
			what = "the course's main.go"
			if kept := keptAttempts(step); len(kept) > 0 {
				what += fmt.Sprintf(" (yours kept in %s)", filepath.Join(state, step))
			}
		case bytes.Equal(mine, begin):
			what = fmt.Sprintf("started, nothing written yet: go run ./workshop check %d", i+1)
		case passed(step, mine):
			what = "finished: your main.go passes its check"
		default:
			what = fmt.Sprintf("started, your main.go: go run ./workshop check %d", i+1)
		}
		fmt.Printf("%-18s %s\n", step, what)
	}
	return nil
}

// start puts the step before's main.go in step i's place.
func start(i int, force bool) error {
	step := lessons.Steps[i]
	begin, why, err := started(i)
	if err != nil {
		return err
	}
	course, err := courseMain(step)
	if err != nil {
		return err
	}
	mine, err := readMain(step)
	if err != nil {
		return err
	}
	if bytes.Equal(mine, begin) {
		fmt.Printf("%s: %s is started already: write its idea, then go run ./workshop check %d\n", prog, step, i+1)
		return nil
	}
	if mine != nil && !bytes.Equal(mine, course) {
		if !force {
			return fmt.Errorf("%s/main.go has your changes: go run ./workshop solution %d keeps them aside and gives back the course's, start -force %d starts again", step, i+1, i+1)
		}
		kept, err := keepAside(step, mine)
		if err != nil {
			return err
		}
		fmt.Printf("%s: your %s/main.go is kept as %s\n", prog, step, kept)
	}
	if err := os.WriteFile(filepath.Join(step, "main.go"), begin, 0o644); err != nil {
		return err
	}
	if i == 0 {
		fmt.Printf("%s: %s/main.go is the smallest program that builds: write run (%s/README.md)\n", prog, step, step)
	} else {
		fmt.Printf("%s: %s/main.go is %s's, under the name %s: write the step's idea (%s/README.md)\n", prog, step, lessons.Steps[i-1], step, step)
	}
	for _, w := range why {
		fmt.Printf("%s: kept from the course's %s/main.go: %s\n", prog, step, w)
	}
	fmt.Printf("%s: then check it: go run ./workshop check %d\n", prog, i+1)
	return nil
}

// solution gives back the course's main.go of step i, the learner's kept.
func solution(i int) error {
	step := lessons.Steps[i]
	course, err := courseMain(step)
	if err != nil {
		return err
	}
	mine, err := readMain(step)
	if err != nil {
		return err
	}
	if bytes.Equal(mine, course) {
		fmt.Printf("%s: %s/main.go is the course's already\n", prog, step)
		return nil
	}
	if mine == nil {
		if err := os.WriteFile(filepath.Join(step, "main.go"), course, 0o644); err != nil {
			return err
		}
		fmt.Printf("%s: %s/main.go is the course's\n", prog, step)
		return nil
	}
	kept, err := keepAside(step, mine)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(step, "main.go"), course, 0o644); err != nil {
		return err
	}
	fmt.Printf("%s: %s/main.go is the course's; yours is kept as %s (diff -u %s %s/main.go)\n", prog, step, kept, kept, step)
	return nil
}

// keepAside copies a learner's main.go into .workshop/STEP/, as main.go.1,
// main.go.2 and so on, never over one kept before.
func keepAside(step string, src []byte) (string, error) {
	dir := filepath.Join(state, step)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for n := len(keptAttempts(step)) + 1; ; n++ {
		name := filepath.Join(dir, fmt.Sprintf("main.go.%d", n))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		_, err = f.Write(src)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		giveBack(dir, name)
		return name, err
	}
}

func keptAttempts(step string) []string {
	kept, _ := filepath.Glob(filepath.Join(state, step, "main.go.*"))
	return kept
}

// passed tells whether this very main.go passed its check.
func passed(step string, src []byte) bool {
	sum, err := os.ReadFile(filepath.Join(state, step, "passed"))
	return err == nil && string(sum) == fmt.Sprintf("%x\n", sha256.Sum256(src))
}

// markPassed records that this main.go passed, or that none has.
func markPassed(step string, src []byte, ok bool) error {
	name := filepath.Join(state, step, "passed")
	if !ok {
		if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	err := os.WriteFile(name, fmt.Appendf(nil, "%x\n", sha256.Sum256(src)), 0o644)
	giveBack(filepath.Dir(name), name)
	return err
}

// giveBack gives what the tool made in .workshop/ to the learner, when they
// ran it with sudo ("go run -exec sudo ./workshop", as the steps run): root's
// files there would refuse them later.
func giveBack(paths ...string) {
	uid, err1 := strconv.Atoi(os.Getenv("SUDO_UID"))
	gid, err2 := strconv.Atoi(os.Getenv("SUDO_GID"))
	if os.Geteuid() != 0 || err1 != nil || err2 != nil {
		return
	}
	for _, p := range append([]string{state}, paths...) {
		_ = os.Lchown(p, uid, gid)
	}
}
