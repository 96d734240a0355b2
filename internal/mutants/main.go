// Command mutants checks that the tests fail when the lesson breaks. It
// makes each mutant of mutants.go in a scratch copy of the repository, two
// at a time in two copies, and runs the tests that guard what the mutant
// breaks, in its package only. A mutant they let pass is a hole in the tests: it is named,
// with the guarantee it breaks, and the command fails.
//
// Usage, as root (the tests run containers; and root needs Go on its PATH:
// sudo env "PATH=$PATH" go run ./internal/mutants), from the repository:
//
//	go run ./internal/mutants [-run REGEXP] [-only cgroup-v2] [-timeout D] [-list]
//	go run ./internal/mutants [-run REGEXP] [-only cgroup-v2] -build DIR
//	mutants [-run REGEXP] [-only cgroup-v2] [-timeout D] -built DIR
//
// -run makes only the mutants whose package or name matches; -only
// cgroup-v1 or cgroup-v2 only those that need that hierarchy (the systemd
// VM runs the cgroup v2 ones); -list lists them, and makes none. A mutant
// that needs the other hierarchy than this machine's is only built, and
// counted as such.
//
// -build DIR builds the tests of each mutant, and of its package as it is,
// into DIR (go test -c, for GOARCH's processor), and runs none; -built DIR
// runs those instead of building, in the repository as it is: an emulated
// machine, where a build takes minutes, runs its mutants so.
//
// The tests of a mutant run in namespaces of their own, as every step's
// tests do (steptest.Isolated): a mutant that leaks mounts, renames the
// host or plugs cables in does so there, and not on this machine.
package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"containers-from-scratch/internal/steptest"
	"golang.org/x/sys/unix"
)

func main() {
	match := flag.String("run", "", "make only the mutants whose package or name matches `REGEXP`")
	only := flag.String("only", "", "make only the mutants that need `HIERARCHY`: cgroup-v1 or cgroup-v2")
	list := flag.Bool("list", false, "list the mutants, and make none")
	flag.DurationVar(&timeout, "timeout", 20*time.Second, "how long a test waits for a command, at most: a mutant may hang it (the tests' own is 90s)")
	into := flag.String("build", "", "build the tests of each mutant into `DIR`, and run none")
	flag.StringVar(&built, "built", "", "run the tests that -build built in `DIR`, and build none")
	flag.Parse()
	if flag.NArg() > 0 || (*only != "" && *only != "cgroup-v1" && *only != "cgroup-v2") {
		flag.Usage()
		os.Exit(2)
	}
	re, err := regexp.Compile(*match)
	if err != nil {
		fail("-run: %v", err)
	}
	var chosen []mutant
	for _, m := range mutants {
		if re.MatchString(m.pkg+": "+m.name) && (*only == "" || m.needs == strings.Replace(*only, "-", " ", 1)) {
			chosen = append(chosen, m)
		}
	}
	if *list {
		for _, m := range chosen {
			fmt.Printf("%s: %s%s\n\tbreaks: %s\n\tguarded by: %s\n", m.pkg, m.name, where(m.needs), m.breaks, m.tests)
		}
		return
	}
	if *into != "" {
		os.Exit(buildInto(chosen, *into))
	}
	if os.Geteuid() != 0 {
		fail("run it as root, with Go on root's PATH: the tests run containers (sudo env \"PATH=$PATH\" go run ./internal/mutants)")
	}
	os.Exit(check(chosen))
}

// where says where a mutant shows, if not everywhere.
func where(needs string) string {
	if needs == "" {
		return ""
	}
	return " (on " + needs + ")"
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mutants: "+format+"\n", args...)
	os.Exit(1)
}

// workers is how many mutants are tried at once, each in a copy of the
// repository of its own: two, as go test ./... runs two packages at once,
// and, as there, never two of one package.
const workers = 2

// check makes each mutant in a scratch copy of the repository and runs its
// tests, and returns the exit status: 0 when every mutant was killed.
func check(chosen []mutant) int {
	start := time.Now()
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mutants: run it from inside the repository: %v\n", err)
		return 1
	}
	var copies []string
	for range workers {
		if built != "" { // nothing is made: the tests run in the repository
			copies = append(copies, strings.TrimSpace(string(top)))
			continue
		}
		dir, err := os.MkdirTemp("/var/tmp", "cfs-mutants-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "mutants: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		if err := copyRepository(strings.TrimSpace(string(top)), dir); err != nil {
			fmt.Fprintf(os.Stderr, "mutants: copying the repository: %v\n", err)
			return 1
		}
		copies = append(copies, dir)
	}
	hierarchy := "cgroup v1"
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		hierarchy = "cgroup v2"
	}

	// First the tests of every package as they are, with the same
	// settings: a kill counts only where they pass without the mutant.
	var here, elsewhere []mutant
	guards := map[string][]string{}
	var pkgs []string
	for _, m := range chosen {
		if m.needs != "" && m.needs != hierarchy {
			elsewhere = append(elsewhere, m)
			continue
		}
		here = append(here, m)
		if guards[m.pkg] == nil {
			pkgs = append(pkgs, m.pkg)
		}
		guards[m.pkg] = append(guards[m.pkg], m.tests)
	}
	unfit := make([]string, len(pkgs))
	failed := make([]bool, len(pkgs))
	inParallel(copies, pkgs, func(i int, dir string) {
		unfit[i], failed[i] = test(dir, pkgs[i], strings.Join(guards[pkgs[i]], "|"))
	})
	unfitOut := map[string]string{}
	for i, pkg := range pkgs {
		if failed[i] {
			unfitOut[pkg] = unfit[i]
		}
	}

	var mu sync.Mutex // over what follows, and the output
	var killed, survived, broken int
	var unkilled []string // named again at the end, where a log's tail shows them
	// Those that need the other hierarchy are made all the same, and
	// built: a mutant that no longer builds is found here too.
	inParallel(copies, packages(elsewhere), func(i int, dir string) {
		m := elsewhere[i]
		if built != "" {
			return // -build built it
		}
		err := build(dir, m)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			broken++
			unkilled = append(unkilled, "broken   "+m.pkg+": "+m.name)
			fmt.Printf("BROKEN   %s: %s: %v\n", m.pkg, m.name, err)
		}
	})
	inParallel(copies, packages(here), func(i int, dir string) {
		m := here[i]
		if out, ok := unfitOut[m.pkg]; ok {
			mu.Lock()
			defer mu.Unlock()
			broken++
			unkilled = append(unkilled, "broken   "+m.pkg+": "+m.name)
			fmt.Printf("BROKEN   %s: %s: its tests fail without the mutant:\n%s\n", m.pkg, m.name, out)
			return
		}
		began := time.Now()
		failed, err := try(dir, m)
		took := time.Since(began).Round(100 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			broken++
			unkilled = append(unkilled, "broken   "+m.pkg+": "+m.name)
			fmt.Printf("BROKEN   %s: %s: %v\n", m.pkg, m.name, err)
		case failed == "":
			survived++
			unkilled = append(unkilled, "survived "+m.pkg+": "+m.name+where(m.needs))
			fmt.Printf("SURVIVED %s: %s%s (%s)\n         breaks: %s; and %s pass\n", m.pkg, m.name, where(m.needs), took, m.breaks, m.tests)
		default:
			killed++
			fmt.Printf("killed   %s: %s%s, by %s (%s)\n", m.pkg, m.name, where(m.needs), failed, took)
		}
	})
	made := killed + survived
	ratio := 0.0
	if made > 0 {
		ratio = 100 * float64(killed) / float64(made)
	}
	fmt.Printf("mutants: %d made on %s, %d killed (%.0f%%), %d survived, %d broken; %d need the other hierarchy; %s\n",
		made, hierarchy, killed, ratio, survived, broken, len(elsewhere), time.Since(start).Round(time.Second))
	for _, name := range unkilled {
		fmt.Println(name)
	}
	if survived > 0 || broken > 0 {
		return 1
	}
	return 0
}

// packages lists the package of each mutant.
func packages(ms []mutant) []string {
	var pkgs []string
	for _, m := range ms {
		pkgs = append(pkgs, m.pkg)
	}
	return pkgs
}

// inParallel calls do for each job, job i being in package pkgs[i], one
// at a time in each copy of the repository, and never two of one package
// at once: the tests of one step share its cgroups' names, and a test
// that counts what is left behind would see the other's.
func inParallel(copies, pkgs []string, do func(i int, dir string)) {
	var mu sync.Mutex
	ready := sync.NewCond(&mu)
	taken := make([]bool, len(pkgs))
	busy := map[string]bool{}
	// pick returns the first job not taken whose package is free, or -1;
	// and whether any job is left to take.
	pick := func() (int, bool) {
		left := false
		for i, pkg := range pkgs {
			if taken[i] {
				continue
			}
			left = true
			if !busy[pkg] {
				return i, true
			}
		}
		return -1, left
	}
	var wg sync.WaitGroup
	for _, dir := range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			for {
				i, left := pick()
				if !left {
					return
				}
				if i < 0 {
					ready.Wait()
					continue
				}
				taken[i], busy[pkgs[i]] = true, true
				mu.Unlock()
				do(i, dir)
				mu.Lock()
				busy[pkgs[i]] = false
				ready.Broadcast()
			}
		}()
	}
	wg.Wait()
}

// copyRepository copies the files of the repository at top that git
// tracks, and those not yet committed, to dir.
func copyRepository(top, dir string) error {
	out, err := exec.Command("git", "-C", top, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return err
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(top, name)
		info, err := os.Lstat(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted, not yet committed
		}
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(src)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, dst); err != nil {
				return err
			}
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, info.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

// timeout is the tests' CommandTimeout, for a mutant.
var timeout time.Duration

// failLine is how go test names a test that failed.
var failLine = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)

// build makes mutant m in the copy at dir, and builds its package and
// tests (go vet), without running them; then puts the file back.
func build(dir string, m mutant) error {
	restore, err := mutate(dir, m)
	if err != nil {
		return err
	}
	defer restore()
	cmd := exec.Command("go", "vet", "./"+m.pkg)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("does not build:\n%s", out)
	}
	return nil
}

// mutate makes mutant m in the copy at dir, and returns what puts the file
// back.
func mutate(dir string, m mutant) (func(), error) {
	file := filepath.Join(dir, m.pkg, m.file)
	if strings.HasPrefix(m.file, "/") {
		file = filepath.Join(dir, m.file)
	}
	original, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	code := string(original)
	for i, edit := range m.edits {
		if n := strings.Count(code, edit[0]); n != 1 {
			return nil, fmt.Errorf("edit %d finds its text %d times in %s, not once: the code has changed; update internal/mutants/mutants.go", i+1, n, m.file)
		}
		code = strings.Replace(code, edit[0], edit[1], 1)
	}
	restore := func() { _ = os.WriteFile(file, original, 0o644) }
	if err := os.WriteFile(file, []byte(code), 0o644); err != nil {
		restore()
		return nil, err
	}
	return restore, nil
}

// try makes mutant m in the copy at dir, runs its tests, and puts the file
// back. It returns the tests of the mutant's that failed, "" if none did,
// or an error if the mutant could not be made or tested: an edit that no
// longer applies, code that does not build, tests that failed in another
// way (a panic, a timeout), which a kill must not be mistaken for.
func try(dir string, m mutant) (string, error) {
	var out string
	var failed bool
	if built != "" {
		out, failed = run(filepath.Join(built, m.id()+".test"), dir, m.pkg, m.tests)
	} else {
		restore, err := mutate(dir, m)
		if err != nil {
			return "", err
		}
		defer restore()
		out, failed = test(dir, m.pkg, m.tests)
	}
	if !failed {
		if strings.Contains(out, "no tests to run") {
			return "", fmt.Errorf("no test matches %s", m.tests)
		}
		return "", nil
	}
	if strings.Contains(out, "[build failed]") || strings.Contains(out, "[setup failed]") {
		return "", fmt.Errorf("does not build:\n%s", out)
	}
	guards := regexp.MustCompile("^(" + m.tests + ")$")
	var names []string
	for _, f := range failLine.FindAllStringSubmatch(out, -1) {
		if guards.MatchString(f[1]) { // the tests, not their subtests
			names = append(names, f[1])
		}
	}
	if len(names) == 0 {
		return "", fmt.Errorf("its tests failed, but none of them failed as a test does (a panic, a timeout?):\n%s", out)
	}
	return strings.Join(names, ", "), nil
}

// test runs the tests of pkg that match the pattern tests, in the copy at
// dir, and returns their output and whether they failed. A test that
// hangs is stopped, with every process it started.
func test(dir, pkg, tests string) (string, bool) {
	if built != "" {
		return run(filepath.Join(built, strings.ReplaceAll(pkg, "/", "+")+".test"), dir, pkg, tests)
	}
	cmd := exec.Command("go", "test", "-count=1", "-failfast", "-timeout=4m", "-run", "^("+tests+")$", "./"+pkg)
	cmd.Dir = dir
	return output(cmd)
}

// run runs the tests that match the pattern tests of a test binary that
// -build built, in pkg's folder in the repository at dir, as test does.
func run(binary, dir, pkg, tests string) (string, bool) {
	cmd := exec.Command(binary, "-test.count=1", "-test.failfast", "-test.timeout=4m", "-test.run", "^("+tests+")$")
	cmd.Dir = filepath.Join(dir, pkg)
	return output(cmd)
}

// output runs a test command and returns its output and whether it
// failed. A test that hangs is stopped, with every process it started.
func output(cmd *exec.Cmd) (string, bool) {
	// A mutant that hangs a command fails its test sooner.
	cmd.Env = append(os.Environ(), steptest.TimeoutEnv+"="+timeout.String())
	// In a process group of its own, which the timer below kills whole:
	// killing go alone would leave the test binary holding the output.
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err.Error(), true
	}
	timer := time.AfterFunc(5*time.Minute, func() { _ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL) })
	defer timer.Stop()
	err := cmd.Wait()
	return out.String(), err != nil
}

// built is where -built found the tests that -build built, or "".
var built string

// id names a mutant's tests in -build's folder.
func (m mutant) id() string {
	sum := sha256.Sum256([]byte(m.pkg + ": " + m.name))
	return fmt.Sprintf("mutant-%x", sum[:6])
}

// buildInto builds, into dir, the tests of each mutant and of the
// packages as they are, and returns the exit status: 0 when all built.
func buildInto(chosen []mutant, dir string) int {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mutants: run it from inside the repository: %v\n", err)
		return 1
	}
	copyDir, err := os.MkdirTemp("", "cfs-mutants-")
	if err == nil {
		defer os.RemoveAll(copyDir)
		err = copyRepository(strings.TrimSpace(string(top)), copyDir)
	}
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mutants: %v\n", err)
		return 1
	}
	compile := func(pkg, name string) error {
		cmd := exec.Command("go", "test", "-c", "-o", filepath.Join(dir, name+".test"), "./"+pkg)
		cmd.Dir = copyDir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("does not build:\n%s", out)
		}
		return nil
	}
	status := 0
	done := map[string]bool{}
	for _, m := range chosen {
		if !done[m.pkg] {
			done[m.pkg] = true
			if err := compile(m.pkg, strings.ReplaceAll(m.pkg, "/", "+")); err != nil {
				fmt.Printf("BROKEN   %s: %v\n", m.pkg, err)
				status = 1
			}
		}
		restore, err := mutate(copyDir, m)
		if err == nil {
			err = compile(m.pkg, m.id())
			restore()
		}
		if err != nil {
			fmt.Printf("BROKEN   %s: %s: %v\n", m.pkg, m.name, err)
			status = 1
		}
	}
	fmt.Printf("mutants: the tests of %d built into %s\n", len(chosen), dir)
	return status
}
