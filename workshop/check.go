package main

// This file holds check: a step's tests run on the learner's main.go, and
// what they found said in the words of their names.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"

	"golang.org/x/sys/unix"

	"containers-from-scratch/internal/lessons"
	"containers-from-scratch/internal/steptest"
)

// screen is how many lines check prints at most, a terminal's worth.
const screen = 40

// commandTimeout bounds each command a test runs, as in the mutation check,
// unless CONTAINERS_FROM_SCRATCH_TEST_TIMEOUT says otherwise.
const commandTimeout = 20 * time.Second

// checkFailed is check's error when a guarantee does not hold: it has
// said which, so main says nothing more.
type checkFailed struct{}

func (checkFailed) Error() string { return "a guarantee does not hold" }

// A result is what one test, one guarantee, found.
type result struct {
	name   string // TestCommandIsPID1
	action string // pass, fail or skip; "" if it never ended
	output []string
}

// check runs step i's tests on the main.go the step has now.
func check(i int, verbose bool) error {
	step := lessons.Steps[i]
	mine, err := readMain(step)
	if err != nil {
		return err
	}
	own, err := ownTests(i)
	if err != nil {
		return err
	}
	args := []string{"test", "-count=1"}
	if os.Geteuid() != 0 {
		args = append(args, "-exec", "sudo")
	}
	args = append(args, "./"+step)
	fmt.Printf("%s: %s's tests on %s/main.go: go %s (each command given %s)\n", prog, step, step, strings.Join(args, " "), timeoutFor())
	// A test gives a command of the learner's step 20 s, not 90: a step
	// half written may hang, and the learner waits. sudo would drop the
	// variable: env sets it again.
	cmd := exec.Command("go", testArgs(step, os.Geteuid() == 0)...)
	cmd.Stdin = os.Stdin // sudo may ask for a password
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	results, build, other := readEvents(out, terminal())
	waitErr := cmd.Wait()

	if len(results) == 0 {
		switch {
		case len(build) > 0:
			fmt.Printf("%s: %s does not build:\n", prog, step)
			for _, line := range firstLines(build, 12) {
				fmt.Println("  " + line)
			}
		case len(other) > 0:
			fmt.Printf("%s: %s's tests did not run:\n", prog, step)
			for _, line := range firstLines(other, 12) {
				fmt.Println("  " + line)
			}
		default:
			fmt.Printf("%s: %s's tests did not run (%v)\n", prog, step, waitErr)
		}
		_ = markPassed(step, mine, false)
		return checkFailed{}
	}
	ok := report(i, results, own, verbose)
	if err := markPassed(step, mine, ok && waitErr == nil); err != nil {
		return err
	}
	if !ok || waitErr != nil {
		return checkFailed{}
	}
	return nil
}

// ownTests returns the names of the tests step i adds: those the step
// before has not.
// testArgs are the go command's arguments that run a step's tests, as root
// or, for a normal user, with sudo.
func testArgs(step string, root bool) []string {
	wait := steptest.TimeoutEnv + "=" + timeoutFor().String()
	exec := "env " + wait
	if !root {
		// sudo resets PATH, where Go may be (/usr/local/go/bin), which
		// a test that builds a helper needs.
		exec = "sudo env PATH=" + os.Getenv("PATH") + " " + wait
	}
	return []string{"test", "-json", "-count=1", "-exec", exec, "./" + step}
}

// timeoutFor is how long a test waits for each command of the step.
func timeoutFor() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(steptest.TimeoutEnv)); err == nil && d > 0 {
		return d // yours, for a slow machine
	}
	return commandTimeout
}

func ownTests(i int) (map[string]bool, error) {
	names := func(step string) (map[string]bool, error) {
		files, err := filepath.Glob(filepath.Join(step, "*_test.go"))
		if err != nil {
			return nil, err
		}
		found := map[string]bool{}
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			for _, m := range testFunc.FindAllSubmatch(src, -1) {
				found[string(m[1])] = true
			}
		}
		return found, nil
	}
	own, err := names(lessons.Steps[i])
	if err != nil || i == 0 {
		return own, err
	}
	before, err := names(lessons.Steps[i-1])
	for name := range before {
		delete(own, name)
	}
	for _, name := range tightened[lessons.Steps[i]] {
		own[name] = true
	}
	return own, err
}

var testFunc = regexp.MustCompile(`(?m)^func (Test[A-Z0-9]\w*)\(t \*testing\.T\)`)

// An event is one line of go test -json.
type event struct {
	Action string
	Test   string
	Output string
}

// readEvents reads go test -json's events: each test's result and output,
// and what the build printed. On a terminal it counts the tests as they end.
func readEvents(r io.Reader, counting bool) (results map[string]*result, build, other []string) {
	results = map[string]*result{}
	done := 0
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		var e event
		if json.Unmarshal(scanner.Bytes(), &e) != nil {
			continue
		}
		if e.Test == "" {
			switch {
			case e.Action == "build-output":
				build = append(build, strings.TrimRight(e.Output, "\n"))
			case e.Action == "output" && !strings.HasPrefix(e.Output, "FAIL") && !strings.HasPrefix(e.Output, "ok "):
				other = append(other, strings.TrimRight(e.Output, "\n")) // vet, sudo, TestMain
			}
			continue
		}
		top, _, _ := strings.Cut(e.Test, "/")
		res := results[top]
		if res == nil {
			res = &result{name: top}
			results[top] = res
		}
		switch e.Action {
		case "output":
			res.output = append(res.output, strings.TrimRight(e.Output, "\n"))
		case "pass", "fail", "skip":
			if e.Test == top {
				res.action = e.Action
				done++
				if counting {
					fmt.Printf("\r%d guarantees checked", done)
				}
			}
		}
	}
	if counting && done > 0 {
		fmt.Print("\r\033[K")
	}
	return results, build, other
}

// report prints one line per guarantee, the step's own first, as many as
// fit on a screen, and for the first that does not hold what its test saw
// and where the step's page explains it. It returns whether all held.
func report(i int, results map[string]*result, own map[string]bool, verbose bool) bool {
	step := lessons.Steps[i]
	var mineOwn, before []*result
	for _, r := range results {
		if own[r.name] {
			mineOwn = append(mineOwn, r)
		} else {
			before = append(before, r)
		}
	}
	order := func(rs []*result) {
		sort.Slice(rs, func(a, b int) bool {
			if (rs[a].action == "pass") != (rs[b].action == "pass") {
				return rs[a].action != "pass"
			}
			return rs[a].name < rs[b].name
		})
	}
	order(mineOwn)
	order(before)
	failed, failedBefore, skipped := 0, 0, 0
	var first *result
	for _, rs := range [][]*result{mineOwn, before} {
		for _, r := range rs {
			if r.action == "fail" && !own[r.name] {
				failedBefore++
			}
			if r.action == "skip" {
				skipped++
			} else if r.action != "pass" {
				failed++
				if first == nil {
					first = r
				}
			}
		}
	}

	// Which fit on the screen: the guarantees that do not hold first, the
	// step's own before the earlier steps'; the rest are counted.
	shown := map[*result]bool{}
	budget := screen - 20 // the titles, the counts, the first failure, the summary
	for _, pick := range []func(r *result) bool{
		func(r *result) bool { return own[r.name] && r.action != "pass" },
		func(r *result) bool { return !own[r.name] && r.action != "pass" },
		func(r *result) bool { return own[r.name] },
		func(r *result) bool { return true },
	} {
		for _, rs := range [][]*result{mineOwn, before} {
			for _, r := range rs {
				if !shown[r] && pick(r) && (verbose || len(shown) < budget) {
					shown[r] = true
				}
			}
		}
	}
	show := func(title string, rs []*result) {
		if len(rs) == 0 {
			return
		}
		fmt.Println(title)
		held, notHeld := 0, 0
		for _, r := range rs {
			if !shown[r] {
				if r.action == "pass" {
					held++
				} else {
					notHeld++
				}
				continue
			}
			mark := map[string]string{"pass": "✓", "fail": "✗", "skip": "–", "": "?"}[r.action]
			note := ""
			switch r.action {
			case "skip":
				note = " (not checked here"
				if why := saw(r.output); len(why) > 0 {
					note += ": " + firstLines(why[len(why)-1:], 1)[0]
				}
				note += ")"
			case "":
				note = " (did not finish)"
			}
			fmt.Printf("  %s %s%s\n", mark, words(r.name), note)
		}
		if notHeld > 0 {
			fmt.Printf("  ✗ and %d more that do not hold (check -v lists them)\n", notHeld)
		}
		if held > 0 {
			fmt.Printf("  ✓ and %d more that hold (check -v lists them)\n", held)
		}
	}
	show(fmt.Sprintf("What %s adds:", step), mineOwn)
	if i > 0 {
		show("What the steps before guarantee:", before)
	}
	if failed == 0 && skipped == 0 {
		fmt.Printf("%s: all %d guarantees of %s hold\n", prog, len(results), step)
		return true
	}
	if failed == 0 {
		fmt.Printf("%s: the %d guarantees of %s checked hold; %d could not be checked here (–)\n", prog, len(results)-skipped, step, skipped)
		return true
	}
	fmt.Printf("%s: %d of %d guarantees of %s do not hold\n", prog, failed, len(results), step)
	if why, ok := refusals[step]; ok && failedBefore > 0 {
		fmt.Printf("Why the steps before's do not hold yet: %s.\n", why)
	}
	if first != nil {
		fmt.Printf("First: %s. The test saw:\n", words(first.name))
		for _, line := range firstLines(saw(first.output), 6) {
			fmt.Println("  " + line)
		}
		if where := look(step, first.name); where != "" {
			fmt.Printf("Read %s\n", where)
		}
	}
	return false
}

// words says a test's name in words: TestCommandIsPID1 is "command is PID 1".
func words(name string) string {
	name = strings.TrimPrefix(name, "Test")
	var out []string
	runes := []rune(name)
	start := 0
	for i := 1; i <= len(runes); i++ {
		if i < len(runes) {
			prev, r := runes[i-1], runes[i]
			next := rune(0)
			if i+1 < len(runes) {
				next = runes[i+1]
			}
			// IDsAre is "IDs are": an acronym's plural s stays with it;
			// IPCIsOut is "IPC is out".
			plural := next == 's' && r != 'I' && r != 'A' && (i+2 >= len(runes) || !unicode.IsLower(runes[i+2]))
			boundary := (unicode.IsLower(prev) && unicode.IsUpper(r)) ||
				(unicode.IsLetter(prev) && unicode.IsDigit(r)) ||
				(unicode.IsDigit(prev) && unicode.IsLetter(r)) ||
				(unicode.IsUpper(prev) && unicode.IsUpper(r) && unicode.IsLower(next) && !plural)
			if !boundary {
				continue
			}
		}
		word := string(runes[start:i])
		if !isAcronym(word) {
			word = strings.ToLower(word)
		}
		out = append(out, word)
		start = i
	}
	return strings.Join(out, " ")
}

// isAcronym: PID, IPC, IDs, OCI, CPU stay as they are written.
func isAcronym(w string) bool {
	w = strings.TrimSuffix(w, "s")
	return len(w) > 1 && strings.ToUpper(w) == w
}

// saw keeps of a test's output what it found: testify's Error and
// Messages, t.Errorf's lines; not the file paths nor the RUN lines.
func saw(output []string) []string {
	var kept []string
	skipping := false
	for _, line := range output {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "=== ") || strings.HasPrefix(trimmed, "--- "):
			continue
		case strings.HasPrefix(trimmed, "Error Trace:") || strings.HasPrefix(trimmed, "Test:") || trimmed == "Diff:":
			skipping = true
			continue
		case strings.HasPrefix(trimmed, "Error:") || strings.HasPrefix(trimmed, "Messages:"):
			skipping = false
		case skipping && strings.HasPrefix(line, "\t") || skipping && strings.HasPrefix(line, "        \t"):
			continue
		}
		skipping = false
		if m := fileLine.FindStringSubmatch(trimmed); m != nil {
			trimmed = m[1]
			if trimmed == "" {
				continue
			}
		}
		kept = append(kept, trimmed)
	}
	return kept
}

var fileLine = regexp.MustCompile(`^\w+\.go:\d+: ?(.*)$`)

func firstLines(lines []string, n int) []string {
	var out []string
	for _, line := range lines {
		if len(out) == n {
			out = append(out, "…")
			break
		}
		if r := []rune(line); len(r) > 110 {
			line = string(r[:110]) + "…"
		}
		out = append(out, line)
	}
	return out
}

// look finds where the step's page explains a guarantee, in its "What
// changed" or "How it works": the line that names its test, or else the
// paragraph that has most of its words, with the heading it is under; the
// diff under "What changed" if none has any.
func look(step, name string) string {
	page := filepath.Join(step, "README.md")
	src, err := os.ReadFile(page)
	if err != nil {
		return ""
	}
	lines := strings.Split(string(src), "\n")
	want := map[string]bool{}
	for _, w := range strings.Fields(words(name)) {
		if w = stem(w); len(w) >= 4 {
			want[w] = true
		}
	}
	best, bestScore, heading, bestHeading := -1, 0, "", ""
	section, changed := "", 0
	inCode := false
	for n := 0; n < len(lines); n++ {
		line := lines[n]
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
			continue
		}
		if inCode {
			continue
		}
		if strings.HasPrefix(line, "#") {
			heading = strings.TrimSpace(strings.TrimLeft(line, "#"))
			if strings.HasPrefix(line, "## ") {
				section = heading
				if section == "What changed" && changed == 0 {
					changed = n + 1
				}
			}
			continue
		}
		if section != "What changed" && section != "How it works" {
			continue // the goal, the commands, the exercises: not where a fix is
		}
		if strings.Contains(line, name) {
			return fmt.Sprintf("%s:%d, under \"%s\"", page, n+1, heading)
		}
		if strings.TrimSpace(line) == "" || (n > 0 && strings.TrimSpace(lines[n-1]) != "" && !strings.HasPrefix(lines[n-1], "#")) {
			continue
		}
		// A paragraph starts here: score it.
		seen := map[string]bool{}
		for m := n; m < len(lines) && strings.TrimSpace(lines[m]) != "" && !strings.HasPrefix(lines[m], "```"); m++ {
			for _, w := range strings.FieldsFunc(strings.ToLower(lines[m]), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
				if w = stem(w); want[w] {
					seen[w] = true
				}
			}
		}
		if len(seen) > bestScore {
			best, bestScore, bestHeading = n, len(seen), heading
		}
	}
	if best < 0 {
		if changed > 0 {
			return fmt.Sprintf("%s:%d, under \"What changed\"", page, changed)
		}
		return page
	}
	return fmt.Sprintf("%s:%d, under \"%s\"", page, best+1, bestHeading)
}

// stem folds a word's plural and verb endings, so that "signals" finds
// "signal" and "killed" finds "kill".
func stem(w string) string {
	w = strings.ToLower(w)
	for _, end := range []string{"ing", "ed", "es", "s"} {
		if len(w) > len(end)+3 && strings.HasSuffix(w, end) {
			return strings.TrimSuffix(w, end)
		}
	}
	return w
}

// terminal tells whether standard output is a terminal, where check
// counts the tests as they end.
func terminal() bool {
	_, err := unix.IoctlGetTermios(int(os.Stdout.Fd()), unix.TCGETS)
	return err == nil
}
