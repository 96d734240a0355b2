package lessons

import (
	"bytes"
	"context"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"containers-from-scratch/internal/rootfs"
	"containers-from-scratch/internal/steptest"
)

// root is the repository root, seen from this package's folder.
const root = "../.."

func TestDiffBlocksMatchTheCode(t *testing.T) {
	for i := 1; i < len(Steps); i++ {
		t.Run(Steps[i], func(t *testing.T) {
			readme, err := os.ReadFile(filepath.Join(root, Steps[i], "README.md"))
			require.NoError(t, err)
			shown, ok := DiffBlock(string(readme))
			require.True(t, ok, "no ```diff block under \"## What changed\"")
			want, err := Diff(root, Steps[i-1], Steps[i])
			require.NoError(t, err)
			require.NotEmpty(t, want)
			assert.True(t, shown == want,
				"%s/README.md shows a stale diff of its Go files: run go generate ./internal/lessons", Steps[i])
		})
	}
}

// TestPlumbingChangesOnlyWhereListed keeps the shared plumbing shared: a
// step's plumbing.go is the step before's, unless PlumbingChanges says why
// not.
func TestPlumbingChangesOnlyWhereListed(t *testing.T) {
	for i := 1; i < len(Steps); i++ {
		t.Run(Steps[i], func(t *testing.T) {
			prev, err := os.ReadFile(filepath.Join(root, Steps[i-1], Plumbing))
			require.NoError(t, err)
			this, err := os.ReadFile(filepath.Join(root, Steps[i], Plumbing))
			require.NoError(t, err)
			why, listed := PlumbingChanges[Steps[i]]
			if listed {
				assert.NotEqual(t, string(prev), string(this),
					"%s is listed in PlumbingChanges (%s), but its %s is the same as %s's", Steps[i], why, Plumbing, Steps[i-1])
				return
			}
			if !bytes.Equal(prev, this) {
				cmd := exec.Command("diff", "-u", Steps[i-1]+"/"+Plumbing, Steps[i]+"/"+Plumbing)
				cmd.Dir = root
				diff, _ := cmd.Output()
				t.Errorf("%s/%s differs from %s's, and PlumbingChanges does not say why:\n%s", Steps[i], Plumbing, Steps[i-1], diff)
			}
		})
	}
}

// TestStepsStandAlone checks that every step is a main package of its own
// that a learner can copy out: none imports anything from this repository,
// and main.go comes first in its folder's story.
func TestStepsStandAlone(t *testing.T) {
	for _, step := range Steps {
		t.Run(step, func(t *testing.T) {
			files, err := filepath.Glob(filepath.Join(root, step, "*.go"))
			require.NoError(t, err)
			fset := token.NewFileSet()
			for _, file := range files {
				if strings.HasSuffix(file, "_test.go") {
					continue
				}
				f, err := parser.ParseFile(fset, file, nil, parser.ImportsOnly)
				require.NoError(t, err)
				assert.Equal(t, "main", f.Name.Name, file)
				for _, imp := range f.Imports {
					assert.NotContains(t, imp.Path.Value, "containers-from-scratch", "%s imports from this repository", file)
				}
			}
			assert.FileExists(t, filepath.Join(root, step, "main.go"))
			assert.FileExists(t, filepath.Join(root, step, Plumbing))
		})
	}
}

// TestMainGoStaysTheLesson holds main.go to the size of a lesson: the
// container on a screen or two, and each step's diff one idea.
func TestMainGoStaysTheLesson(t *testing.T) {
	most := map[string]int{"step05-proc": 150, "step06-cgroups": 180}
	for i, step := range Steps {
		t.Run(step, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(root, step, "main.go"))
			require.NoError(t, err)
			if n, ok := most[step]; ok {
				assert.LessOrEqual(t, bytes.Count(src, []byte("\n")), n, "lines in %s/main.go", step)
			}
			if i == 0 {
				return
			}
			cmd := exec.Command("diff", "-u", Steps[i-1]+"/main.go", step+"/main.go")
			cmd.Dir = root
			out, _ := cmd.Output()
			changed := regexp.MustCompile(`(?m)^[-+]([^-+]|$)`).FindAll(out, -1)
			assert.LessOrEqual(t, len(changed), 60, "changed lines in diff -u %s/main.go %s/main.go", Steps[i-1], step)
		})
	}
}

// sections are the headings every step README has, in this order.
var sections = []string{"## Goal", "## What changed", "## Run it", "## Check your work", "## How it works", "## Exercises"}

func TestEveryStepHasItsSections(t *testing.T) {
	heading := regexp.MustCompile(`(?m)^## .*$`)
	for _, step := range Steps {
		t.Run(step, func(t *testing.T) {
			readme, err := os.ReadFile(filepath.Join(root, step, "README.md"))
			require.NoError(t, err)
			assert.Equal(t, sections, heading.FindAllString(string(readme), -1))
			exercises := string(readme[bytes.Index(readme, []byte("## Exercises")):])
			assert.GreaterOrEqual(t, strings.Count(exercises, "<details>"), 2, "exercises with folded answers")
			assert.NotEmpty(t, Transcripts(string(readme)), "a ```console transcript to run")
			assert.Contains(t, string(readme), "man7.org/linux/man-pages/", "links to the man pages")
		})
	}
}

func TestMatches(t *testing.T) {
	for _, c := range []struct {
		shown, got string
		want       bool
	}{
		{"container\n", "container\n", true},
		{"container\n", "vm\n", false},
		{"bin  dev  etc\n", "bin\ndev\netc\n", true},
		{"bin  dev  etc\n", "bin\ndev\n", false},
		{"… / /proc rw - proc proc rw\n", "63 43 0:39 / /proc rw - proc proc rw\n", true},
		{"… / /proc rw - proc proc rw\n", "63 43 0:39 / /sys rw - sysfs sysfs rw\n", false},
		{"in …\n", "in 8ms\n", true},
		{"status 3\n", "status 3\nmore\n", false},
	} {
		assert.Equal(t, c.want, Matches(c.shown, c.got), "shown %q, got %q", c.shown, c.got)
	}
}

// TestTranscriptsRun runs every ```console block of every README, as root,
// each README in a scratch directory of its own, and compares the output of
// each command with what the README shows.
//
// "go run" and "go build -o DIR/" in a transcript run the programs this test
// built beforehand, through a stand-in for the go command: root need not have
// Go, and -exec sudo is dropped, since the test is root already.
func TestTranscriptsRun(t *testing.T) {
	steptest.RequireRoot(t)
	bin := buildPrograms(t)

	readmes := []string{"README.md"}
	for _, step := range Steps {
		readmes = append(readmes, step+"/README.md")
	}
	for _, readme := range readmes {
		t.Run(readme, func(t *testing.T) {
			text, err := os.ReadFile(filepath.Join(root, readme))
			require.NoError(t, err)
			dir, err := os.MkdirTemp(steptest.TempParent(), "lessons-")
			require.NoError(t, err)
			t.Cleanup(func() { os.RemoveAll(dir) })
			if readme != "README.md" {
				// The steps' pages assume the quick start was followed.
				_, err := rootfs.Build(filepath.Join(dir, "rootfs"))
				require.NoError(t, err)
			}
			for _, tr := range Transcripts(string(text)) {
				for _, c := range tr.Commands {
					got := runCommand(t, bin, dir, c)
					assert.True(t, Matches(c.Output, got),
						"%s:%d: $ %s\nthe README shows:\n%s\nit printed:\n%s", readme, c.Line, c.Text, c.Output, got)
				}
			}
		})
	}
}

// goStandIn replaces the go command in the transcripts.
const goStandIn = `#!/bin/sh
# "go run [-exec sudo] ./PKG ARGS" and "go build -o DIR/ ./PKG", with the
# programs built beforehand in $PROGRAMS.
case "$1" in
run)
	shift
	if [ "$1" = -exec ]; then shift 2; fi
	prog="$PROGRAMS/${1#./}"
	shift
	"$prog" "$@"
	status=$?
	if [ $status -ne 0 ]; then
		echo "exit status $status" >&2
		exit 1
	fi
	exit 0
	;;
build)
	if [ "$2" = -o ] && [ $# -eq 4 ]; then
		mkdir -p "$3" && exec cp "$PROGRAMS/${4#./}" "$3"
	fi
	;;
esac
echo "go stand-in: cannot do: go $*" >&2
exit 2
`

// buildPrograms builds every step and mkrootfs into a directory, next to
// the go stand-in, and returns that directory.
func buildPrograms(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lessons-programs-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o777))

	// No version control stamp: as root in a clone owned by someone else,
	// git refuses to answer, and the stamp is of no use here.
	args := []string{"build", "-buildvcs=false", "-o", dir + "/"}
	for _, step := range append(Steps, "mkrootfs") {
		args = append(args, "./"+step)
	}
	cmd := exec.Command(goTool(t), args...)
	cmd.Dir = root
	runAsInvokingUser(t, cmd)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	require.NoError(t, os.Mkdir(filepath.Join(dir, "stand-in"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "stand-in", "go"), []byte(goStandIn), 0o755))
	return dir
}

// goTool finds the go command. Under "go test -exec sudo" it is not on
// root's PATH, but it is where the toolchain that built this test lives.
func goTool(t *testing.T) string {
	if path, err := exec.LookPath("go"); err == nil {
		return path
	}
	//lint:ignore SA1019 the test binary runs where it was built, so its GOROOT is right
	path := filepath.Join(runtime.GOROOT(), "bin", "go")
	_, err := os.Stat(path)
	require.NoError(t, err, "no go command on PATH or in GOROOT")
	return path
}

// runAsInvokingUser makes cmd run as the user who ran sudo, if this test
// runs under sudo, with that user's home and so their Go caches: root's
// would be empty and might need the network.
func runAsInvokingUser(t *testing.T, cmd *exec.Cmd) {
	uid, gid := os.Getenv("SUDO_UID"), os.Getenv("SUDO_GID")
	if uid == "" || gid == "" || uid == "0" {
		return
	}
	u, err := user.LookupId(uid)
	require.NoError(t, err)
	nuid, _ := strconv.Atoi(uid)
	ngid, _ := strconv.Atoi(gid)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(nuid), Gid: uint32(ngid)}}
	cmd.Env = append(os.Environ(), "HOME="+u.HomeDir, "USER="+u.Username)
}

// runCommand runs one transcript command with sh, in dir, with its input,
// and returns what it printed on stdout and stderr together.
func runCommand(t *testing.T, programs, dir string, c Command) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "env", steptest.Plain("sh", "-c", c.Text)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Join(programs, "stand-in")+":"+os.Getenv("PATH"),
		"PROGRAMS="+programs)
	cmd.Stdin = strings.NewReader(c.Input)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		require.NoError(t, err, fmt.Sprintf("$ %s", c.Text))
	}
	return out.String()
}
