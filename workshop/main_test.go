package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"containers-from-scratch/internal/lessons"
	"containers-from-scratch/internal/steptest"
)

// tool is the workshop program, built once for every test.
var tool string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "workshop-test-")
	if err != nil {
		panic(err)
	}
	tool = filepath.Join(dir, "workshop")
	// No VCS stamp: a repository another user owns (the VM's /vagrant, as
	// root) makes git refuse, and the tool needs none.
	if out, err := exec.Command("go", "build", "-buildvcs=false", "-o", tool, ".").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// course makes a git repository of the course as it is now, the work tree
// included, as a learner's clone: the tool reads the course's code from
// its last commit.
func course(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range courseFiles(t) {
		src, err := os.ReadFile(filepath.Join("..", name))
		if os.IsNotExist(err) {
			continue // deleted, not yet committed
		}
		require.NoError(t, err)
		info, err := os.Stat(filepath.Join("..", name))
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), src, info.Mode().Perm()))
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.name=learner", "-c", "user.email=learner@example.org", "commit", "-q", "-m", "the course"}} {
		git := exec.Command("git", args...)
		git.Dir = dir
		out, err := git.CombinedOutput()
		require.NoError(t, err, "git %v: %s", args, out)
	}
	return dir
}

// courseFiles lists the course's files: those git tracks and those not
// yet committed, or, in a copy that is no git repository (the mutation
// check's), every file but what the course builds.
func courseFiles(t *testing.T) []string {
	t.Helper()
	ls := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	ls.Dir = ".."
	if out, err := ls.Output(); err == nil {
		return strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	}
	var names []string
	built := map[string]bool{".git": true, "rootfs": true, "demo": true, "images": true, "bin": true, ".vagrant": true, ".workshop": true}
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && built[d.Name()] && filepath.Dir(path) == ".." {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			names = append(names, strings.TrimPrefix(path, "../"))
		}
		return nil
	})
	require.NoError(t, err)
	return names
}

// workshop runs the tool in a course, as a learner does from its root.
func workshop(t *testing.T, dir string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	// check's tests wait for a command as long as the suite's own do: an
	// emulated VM is slow.
	return workshopWaiting(t, steptest.CommandTimeout, dir, args...)
}

// workshopWaiting is workshop, check's tests waiting for each command
// as long as wait.
func workshopWaiting(t *testing.T, wait time.Duration, dir string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	cmd := exec.Command(tool, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), steptest.TimeoutEnv+"="+wait.String())
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), exit.ExitCode()
	}
	require.NoError(t, err)
	return o.String(), e.String(), 0
}

func read(t *testing.T, name string) string {
	t.Helper()
	src, err := os.ReadFile(name)
	require.NoError(t, err)
	return string(src)
}

func gitStatus(t *testing.T, dir string) string {
	t.Helper()
	git := exec.Command("git", "status", "--porcelain")
	git.Dir = dir
	out, err := git.Output()
	require.NoError(t, err)
	return string(out)
}

// TestStartIsTheStepBeforeRenamed reads each started main.go against the
// step before's: what differs, once the step's name is put back, is only
// what start said it kept for the step to build.
func TestStartIsTheStepBeforeRenamed(t *testing.T) {
	dir := course(t)
	for i := 1; i < len(lessons.Steps); i++ {
		prev, step := lessons.Steps[i-1], lessons.Steps[i]
		t.Run(step, func(t *testing.T) {
			out, stderr, status := workshop(t, dir, "start", step)
			require.Equal(t, 0, status, stderr)
			assert.Contains(t, out, "go run ./workshop check")
			kept := strings.Count(out, "kept from the course's")

			begin := read(t, filepath.Join(dir, step, "main.go"))
			assert.Contains(t, begin, `const prog = "`+step+`"`)
			assert.NotContains(t, begin, prev, "the step before's name is left")
			before := strings.Split(read(t, filepath.Join("..", prev, "main.go")), "\n")
			after := strings.Split(strings.ReplaceAll(begin, step, prev), "\n")
			changed := changedLines(before, after)
			if kept == 0 {
				assert.Empty(t, changed, "the started main.go differs from %s's by more than the name, and start says nothing kept", prev)
			} else {
				assert.NotEmpty(t, changed, "start says it kept something and nothing differs")
				assert.LessOrEqual(t, len(changed), 8*kept, "more changed than what start says it kept: %q", changed)
			}
		})
	}
}

// changedLines returns the lines in one of a and b and not in the other,
// as diff would mark them, by counting.
func changedLines(a, b []string) []string {
	count := map[string]int{}
	for _, l := range a {
		count[l]++
	}
	for _, l := range b {
		count[l]--
	}
	var changed []string
	for l, n := range count {
		for ; n != 0; n -= sign(n) {
			changed = append(changed, l)
		}
	}
	return changed
}

func sign(n int) int {
	if n < 0 {
		return -1
	}
	return 1
}

// TestStartBuilds builds every step started: the learner begins with a
// program that builds, step01 with the smallest one.
func TestStartBuilds(t *testing.T) {
	dir := course(t)
	for i, step := range lessons.Steps {
		_, stderr, status := workshop(t, dir, "start", step)
		require.Equal(t, 0, status, "start %d: %s", i+1, stderr)
	}
	// The steps alone: start changes nothing else in the course.
	var steps []string
	for _, step := range lessons.Steps {
		steps = append(steps, "./"+step)
	}
	for _, arch := range []string{"amd64", "arm64"} { // arm64: Apple silicon Macs' VMs
		vet := exec.Command("go", append([]string{"vet"}, steps...)...)
		vet.Dir = dir
		vet.Env = append(os.Environ(), "GOARCH="+arch, "CGO_ENABLED=0")
		out, err := vet.CombinedOutput()
		assert.NoError(t, err, "the started steps do not build for %s:\n%s", arch, out)
	}
	assert.Less(t, strings.Count(read(t, filepath.Join(dir, lessons.Steps[0], "main.go")), "\n"), 40, "step01's start is small")
}

// TestStartKeepsTheLearnersWork: start refuses, in one line, a main.go the
// learner changed; -force starts again, the change kept aside.
func TestStartKeepsTheLearnersWork(t *testing.T) {
	dir := course(t)
	main := filepath.Join(dir, "step03-pid", "main.go")
	_, _, status := workshop(t, dir, "start", "3")
	require.Equal(t, 0, status)
	begin := read(t, main)
	out, _, status := workshop(t, dir, "start", "3")
	assert.Equal(t, 0, status, "start on a started step")
	assert.Contains(t, out, "started already")

	mine := begin + "\n// my work\n"
	require.NoError(t, os.WriteFile(main, []byte(mine), 0o644))
	out, stderr, status := workshop(t, dir, "start", "3")
	assert.Equal(t, 1, status)
	assert.Empty(t, out)
	assert.Regexp(t, `^workshop: step03-pid/main.go has your changes: .*-force.*\n$`, stderr)
	assert.Equal(t, mine, read(t, main), "a refused start left the learner's main.go")

	out, stderr, status = workshop(t, dir, "start", "-force", "3")
	require.Equal(t, 0, status, stderr)
	assert.Equal(t, begin, read(t, main))
	kept := regexp.MustCompile(`kept as (\S+)`).FindStringSubmatch(out)
	require.NotNil(t, kept, "start -force says where the learner's main.go went: %s", out)
	assert.Equal(t, mine, read(t, filepath.Join(dir, kept[1])))
}

// TestSolutionGivesTheCourseBack: the course's main.go back, the learner's
// kept aside where the tool says, every attempt, and git clean.
func TestSolutionGivesTheCourseBack(t *testing.T) {
	dir := course(t)
	main := filepath.Join(dir, "step05-proc", "main.go")
	course := read(t, main)
	var kept []string
	for n, attempt := range []string{"// one try\n", "// another\n"} {
		_, _, status := workshop(t, dir, "start", "-force", "5")
		require.Equal(t, 0, status)
		mine := read(t, main) + attempt
		require.NoError(t, os.WriteFile(main, []byte(mine), 0o644))

		out, stderr, status := workshop(t, dir, "solution", "5")
		require.Equal(t, 0, status, stderr)
		assert.Equal(t, course, read(t, main), "solution %d", n+1)
		m := regexp.MustCompile(`kept as (\S+)`).FindStringSubmatch(out)
		require.NotNil(t, m, out)
		assert.Equal(t, mine, read(t, filepath.Join(dir, m[1])))
		kept = append(kept, m[1])
		assert.Empty(t, gitStatus(t, dir), "git is clean after solution")
	}
	assert.NotEqual(t, kept[0], kept[1], "a later attempt is kept beside the first, not over it")

	out, _, status := workshop(t, dir, "solution", "step05-proc")
	assert.Equal(t, 0, status)
	assert.Contains(t, out, "the course's already")
}

// TestListSaysWhereEachStepIs: not started, started, the learner's own,
// finished (its check passed), given back.
func TestListSaysWhereEachStepIs(t *testing.T) {
	dir := course(t)
	out, _, status := workshop(t, dir)
	require.Equal(t, 0, status)
	assert.Equal(t, len(lessons.Steps), strings.Count(out, "the course's main.go"), out)

	workshop(t, dir, "start", "1")
	workshop(t, dir, "start", "2")
	main := filepath.Join(dir, "step02-uts", "main.go")
	require.NoError(t, os.WriteFile(main, []byte(read(t, main)+"// mine\n"), 0o644))
	out, _, _ = workshop(t, dir)
	assert.Regexp(t, `(?m)^step01-exec +started, nothing written yet`, out)
	assert.Regexp(t, `(?m)^step02-uts +started, your main.go`, out)

	workshop(t, dir, "solution", "2")
	out, _, _ = workshop(t, dir)
	assert.Regexp(t, `(?m)^step02-uts +the course's main.go \(yours kept in .workshop/step02-uts\)`, out)
}

// TestBadInputIsOneLine: a step that is not one, a command that is not one,
// outside the repository.
func TestBadInputIsOneLine(t *testing.T) {
	dir := course(t)
	for _, c := range []struct {
		args   []string
		status int
		says   string
	}{
		{[]string{"start", "14"}, 1, `no step "14"`},
		{[]string{"check", "pid"}, 1, `no step "pid"`},
		{[]string{"start"}, 2, "start takes one step"},
		{[]string{"start", "1", "2"}, 2, "start takes one step"},
		{[]string{"solution", "-force", "2"}, 2, "solution takes one step"},
		{[]string{"start", "-x", "2"}, 2, "unknown option -x"},
		{[]string{"begin", "2"}, 2, `unknown command "begin"`},
		{[]string{"begin"}, 2, `unknown command "begin"`},
	} {
		out, stderr, status := workshop(t, dir, c.args...)
		assert.Equal(t, c.status, status, "%v", c.args)
		assert.Empty(t, out, "%v", c.args)
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		assert.Contains(t, lines[0], c.says, "%v", c.args)
		assert.LessOrEqual(t, len(lines), 2, "one line, and the usage for a usage error: %q", stderr)
	}
	_, stderr, status := workshop(t, t.TempDir(), "start", "3")
	assert.Equal(t, 1, status)
	assert.Contains(t, stderr, "run it from the repository's root")
	assert.Empty(t, gitStatus(t, dir))
}

func TestWords(t *testing.T) {
	for name, want := range map[string]string{
		"TestCommandIsPID1":                     "command is PID 1",
		"TestPID1IgnoresSignalsItDoesNotHandle": "PID 1 ignores signals it does not handle",
		"TestUsageErrorsExit2":                  "usage errors exit 2",
		"TestHostIPCIsOutOfReach":               "host IPC is out of reach",
		"TestGroupsWithoutIDsAreLeftOut":        "groups without IDs are left out",
		"TestCPUQuotaGivesWhatCpusAsks":         "CPU quota gives what cpus asks",
	} {
		assert.Equal(t, want, words(name))
	}
}

// TestCheckNamesTheStepsOwnGuarantees starts every step and checks it: the
// guarantees that do not hold are the step's own, at least one, never an
// earlier step's, each named in words; the first is explained, with where
// to read; all on a screen.
func TestCheckNamesTheStepsOwnGuarantees(t *testing.T) {
	dir := course(t)
	for i, step := range lessons.Steps {
		t.Run(step, func(t *testing.T) {
			// Two steps' suites at a time, as go test ./... runs two
			// packages: the whole takes half as long.
			t.Parallel()
			_, stderr, status := workshop(t, dir, "start", step)
			require.Equal(t, 0, status, stderr)
			// A started step may hang a test until its command's time
			// is up: 30 s, between check's own 20 and the suite's 90.
			out, stderr, status := workshopWaiting(t, 30*time.Second, dir, "check", step)
			assert.Equal(t, 1, status, "check of a started step: %s", stderr)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			assert.LessOrEqual(t, len(lines), screen, "at most a screen:\n%s", out)

			own, before := section(lines, "What "+step+" adds:"), section(lines, "What the steps before guarantee:")
			assert.NotEmpty(t, own, "the step's own guarantees listed:\n%s", out)
			assert.NotEmpty(t, marked(own, "✗"), "none of %s's own guarantees fails on the step before's main.go:\n%s", step, out)
			if why, refused := refusals[step]; refused {
				// The child refuses outside the step's namespaces: the
				// earlier guarantees fail too, and check says why.
				assert.Contains(t, out, "Why the steps before's do not hold yet: "+why+".\n")
			} else {
				assert.Empty(t, marked(before, "✗"), "an earlier step's guarantee fails on the step before's main.go:\n%s", out)
				assert.NotContains(t, out, "Why the steps before's")
			}
			assert.Empty(t, marked(append(own, before...), "?"), "a test did not finish:\n%s", out)
			if i > 0 {
				assert.NotEmpty(t, before, "the earlier steps' guarantees listed:\n%s", out)
			}
			for _, name := range marked(own, "✗") {
				assert.Regexp(t, `^[a-zA-Z0-9 ]+$`, name, "a guarantee in the words of its test's name")
			}
			assert.Regexp(t, `(?m)^workshop: \d+ of \d+ guarantees of `+step+` do not hold$`, out)
			assert.Regexp(t, `(?m)^First: .+\. The test saw:\n  \S`, out)
			assert.Regexp(t, `(?m)^Read `+step+`/README.md:\d+, under ".+"$`, out)
		})
	}
}

// section returns the lines under a title, up to the next line that is not
// indented.
func section(lines []string, title string) []string {
	for n, line := range lines {
		if line != title {
			continue
		}
		var under []string
		for _, l := range lines[n+1:] {
			if !strings.HasPrefix(l, "  ") {
				break
			}
			under = append(under, strings.TrimPrefix(l, "  "))
		}
		return under
	}
	return nil
}

// marked returns the guarantees of a section marked so, in words.
func marked(lines []string, mark string) []string {
	var names []string
	for _, l := range lines {
		if name, ok := strings.CutPrefix(l, mark+" "); ok {
			name, _, _ = strings.Cut(name, " (")
			names = append(names, name)
		}
	}
	return names
}

// TestCheckPassesTheCoursesCode: a learner's main.go that does what the
// course's does holds every guarantee, and the list then says finished.
func TestCheckPassesTheCoursesCode(t *testing.T) {
	dir := course(t)
	main := filepath.Join(dir, "step01-exec", "main.go")
	require.NoError(t, os.WriteFile(main, []byte(read(t, main)+"\n// written by the learner\n"), 0o644))
	out, stderr, status := workshop(t, dir, "check", "1")
	assert.Equal(t, 0, status, "%s%s", out, stderr)
	assert.Regexp(t, `(?m)^workshop: all \d+ guarantees of step01-exec hold$`, out)
	assert.NotContains(t, out, "✗")
	out, _, _ = workshop(t, dir)
	assert.Regexp(t, `(?m)^step01-exec +finished: your main.go passes its check$`, out)

	require.NoError(t, os.WriteFile(main, []byte(read(t, main)+"// and changed again\n"), 0o644))
	out, _, _ = workshop(t, dir)
	assert.Regexp(t, `(?m)^step01-exec +started, your main.go`, out, "a main.go changed after its check is not finished")

	// Standard input left out: one guarantee fails, and check says so.
	broken := strings.Replace(read(t, main), "cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr", "cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr", 1)
	require.NoError(t, os.WriteFile(main, []byte(broken), 0o644))
	out, _, status = workshop(t, dir, "check", "1")
	assert.Equal(t, 1, status)
	assert.Contains(t, out, "  ✗ stdio is wired\n")
	assert.Regexp(t, `(?m)^workshop: \d+ of \d+ guarantees of step01-exec do not hold$`, out)
	assert.Regexp(t, `(?m)^First: .+\. The test saw:$`, out)
	out, _, _ = workshop(t, dir)
	assert.Regexp(t, `(?m)^step01-exec +started, your main.go`, out, "a main.go whose check failed is not finished")
}

// TestCheckOfAMainGoThatDoesNotBuild says what the compiler says.
func TestCheckOfAMainGoThatDoesNotBuild(t *testing.T) {
	dir := course(t)
	main := filepath.Join(dir, "step02-uts", "main.go")
	require.NoError(t, os.WriteFile(main, []byte(strings.Replace(read(t, main), "func child(", "func child(x int, ", 1)), 0o644))
	out, stderr, status := workshop(t, dir, "check", "2")
	assert.Equal(t, 1, status)
	assert.Contains(t, out, "workshop: step02-uts does not build:")
	assert.Contains(t, out, "main.go:", "the compiler's message, with where")
	assert.LessOrEqual(t, strings.Count(out, "\n"), 16, "%s%s", out, stderr)
}

// TestThePageRuns follows this tool's page as a learner does, in a course
// of its own: every console block's commands, what each prints compared
// with what the page shows ("…" stands for what varies).
func TestThePageRuns(t *testing.T) {
	dir := course(t)
	page, err := os.ReadFile("README.md")
	require.NoError(t, err)
	blocks := lessons.Transcripts(string(page))
	require.NotEmpty(t, blocks)
	for _, b := range blocks {
		if b.NotRun {
			continue
		}
		for _, c := range b.Commands {
			var cmd *exec.Cmd
			if args, ok := strings.CutPrefix(c.Text, "go run ./workshop"); ok {
				cmd = exec.Command(tool, strings.Fields(args)...)
			} else {
				cmd = exec.Command("sh", "-c", c.Text)
			}
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), steptest.TimeoutEnv+"="+steptest.CommandTimeout.String())
			out, _ := cmd.CombinedOutput()
			assert.True(t, lessons.Matches(c.Output, string(out)), "README.md:%d: %s printed:\n%s\nthe page shows:\n%s", c.Line, c.Text, out, c.Output)
		}
	}
}

// TestCheckRunsTheTestsAsTheREADMESays: as a normal user with sudo, which
// keeps PATH (Go may be in /usr/local/go/bin) and the time a command gets;
// as root without.
func TestCheckRunsTheTestsAsTheREADMESays(t *testing.T) {
	t.Setenv("PATH", "/usr/local/go/bin:/usr/bin:/bin")
	t.Setenv(steptest.TimeoutEnv, "")
	assert.Equal(t, []string{"test", "-json", "-count=1", "-exec", "sudo env PATH=/usr/local/go/bin:/usr/bin:/bin " + steptest.TimeoutEnv + "=20s", "./step03-pid"},
		testArgs("step03-pid", false))
	assert.Equal(t, []string{"test", "-json", "-count=1", "-exec", "env " + steptest.TimeoutEnv + "=20s", "./step03-pid"},
		testArgs("step03-pid", true))
	t.Setenv(steptest.TimeoutEnv, "1m")
	assert.Contains(t, testArgs("step03-pid", true), "env "+steptest.TimeoutEnv+"=1m0s", "a slow machine's own time")
}

// TestReportFitsAScreen reads report's output for a step with many
// guarantees: the failing ones first, the rest counted, -v lists all; a
// test skipped is not a failure; the steps before's failures are
// explained where the step's child refuses.
func TestReportFitsAScreen(t *testing.T) {
	results := map[string]*result{}
	own := map[string]bool{}
	add := func(name, action string, mine bool) {
		results[name] = &result{name: name, action: action, output: []string{"    x_test.go:1: saw " + name}}
		own[name] = mine
	}
	for n := 0; n < 30; n++ {
		add(fmt.Sprintf("TestOwn%02d", n), map[bool]string{true: "fail", false: "pass"}[n < 5], true)
		add(fmt.Sprintf("TestBefore%02d", n), map[bool]string{true: "fail", false: "pass"}[n < 30], false)
	}
	i := slices.Index(lessons.Steps, "step10-userns")
	out := capture(t, func() { assert.False(t, report(i, results, own, false)) })
	assert.LessOrEqual(t, strings.Count(out, "\n"), screen-1, out)
	assert.Equal(t, 5, strings.Count(out, "✗ own "), "the step's own failures, each listed:\n%s", out)
	assert.Contains(t, out, "✗ and ")
	assert.Contains(t, out, "Why the steps before's do not hold yet: "+refusals["step10-userns"])
	assert.Contains(t, out, "First: own 00. The test saw:\n  saw TestOwn00\n")
	all := capture(t, func() { report(i, results, own, true) })
	assert.Equal(t, 60, strings.Count(all, "\n  ✓ ")+strings.Count(all, "\n  ✗ "), "-v lists every guarantee:\n%s", all)

	// The earlier steps' all hold: no explanation, and a skip is no failure.
	for n := 0; n < 30; n++ {
		results[fmt.Sprintf("TestBefore%02d", n)].action = "pass"
		results[fmt.Sprintf("TestOwn%02d", n)].action = "pass"
	}
	results["TestOwn07"].action = "skip"
	out = capture(t, func() { assert.True(t, report(i, results, own, false), "a skipped test fails the check") })
	assert.NotContains(t, out, "Why the steps before's")
	assert.Contains(t, out, "– own 07 (not checked here: saw TestOwn07)")
	assert.Contains(t, out, "the 59 guarantees of step10-userns checked hold; 1 could not be checked here")
}

// capture returns what f prints on standard output.
func capture(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	stdout := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		data, _ := io.ReadAll(r)
		done <- string(data)
	}()
	f()
	os.Stdout = stdout
	w.Close()
	return <-done
}

// TestAStepIsNamedAsAShellWouldType it, and a main.go deleted is given back.
func TestAStepIsNamedAsAShellWouldType(t *testing.T) {
	dir := course(t)
	for _, name := range []string{"3", "03", "step03-pid", "./step03-pid/", "step03-pid/main.go"} {
		out, stderr, status := workshop(t, dir, "solution", name)
		assert.Equal(t, 0, status, "%s: %s", name, stderr)
		assert.Contains(t, out, "step03-pid/main.go is the course's", name)
	}
	main := filepath.Join(dir, "step05-proc", "main.go")
	course := read(t, main)
	require.NoError(t, os.Remove(main))
	out, _, status := workshop(t, dir)
	assert.Equal(t, 0, status)
	assert.Regexp(t, `(?m)^step05-proc +no main.go: go run ./workshop solution 5`, out)
	_, stderr, status := workshop(t, dir, "solution", "5")
	assert.Equal(t, 0, status, stderr)
	assert.Equal(t, course, read(t, main))
}
