package lessons

import (
	"bytes"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"containers-from-scratch/internal/steptest"
)

// root is the repository root, seen from this package's folder.
const root = "../.."

// TestMain runs the tests in a network namespace of their own, with a
// stand-in for a host's network, as root: see TestTranscriptsRun.
func TestMain(m *testing.M) { os.Exit(steptest.Isolated(true, m.Run)) }

func TestDiffBlocksMatchTheCode(t *testing.T) {
	for i := 1; i < len(Steps); i++ {
		t.Run(Steps[i], func(t *testing.T) {
			readme, err := os.ReadFile(filepath.Join(root, Steps[i], "README.md"))
			require.NoError(t, err)
			shown, ok := DiffBlocks(string(readme))
			require.True(t, ok, "no ```diff block under \"## What changed\"")
			diffs, err := Diffs(root, Steps[i-1], Steps[i])
			require.NoError(t, err)
			require.NotEmpty(t, diffs[0].Diff, "main.go's diff")
			assert.True(t, shown == Markdown(diffs),
				"%s/README.md shows a stale diff of its Go files: run go generate ./internal/lessons", Steps[i])
		})
	}
}

// TestOnlyMainGoIsOpen reads each page as a learner does: under "What
// changed", the one open diff is main.go's, and every other Go file that
// changed, is new or is gone is folded, once, under a <details> whose
// summary is one line that names it. The page is read line by line, not
// with the generator's own patterns.
func TestOnlyMainGoIsOpen(t *testing.T) {
	for i := 1; i < len(Steps); i++ {
		t.Run(Steps[i], func(t *testing.T) {
			readme, err := os.ReadFile(filepath.Join(root, Steps[i], "README.md"))
			require.NoError(t, err)
			section := string(readme)
			section = section[strings.Index(section, "\n## What changed\n")+1:]
			section = section[:strings.Index(section, "\n## Run it\n")]
			lines := strings.Split(section, "\n")

			var open [][]string // the files each open ```diff block names
			folded := map[string]int{}
			for n := 0; n < len(lines); n++ {
				switch lines[n] {
				case "```diff":
					var files []string
					files, n = diffFiles(t, lines, n+1)
					open = append(open, files)
				case "<details>":
					require.Less(t, n+3, len(lines), "a <details> at the end of the section")
					summary := lines[n+1]
					assert.Regexp(t, `^<summary>.+</summary>$`, summary, "a <details>'s summary is one line")
					assert.Empty(t, lines[n+2], "a blank line after </summary>, or GitHub shows the diff as text")
					require.Equal(t, "```diff", lines[n+3], "a <details> holds a ```diff block")
					var files []string
					files, n = diffFiles(t, lines, n+4)
					require.Len(t, files, 1, "a folded ```diff block holds one file's diff")
					assert.Contains(t, summary, "<code>"+files[0]+"</code>", "the summary names the file")
					folded[files[0]]++
					require.Less(t, n+2, len(lines))
					assert.Equal(t, []string{"", "</details>"}, lines[n+1:n+3], "a blank line, then </details>")
				}
			}
			require.Len(t, open, 1, "one open ```diff block")
			assert.Equal(t, []string{"main.go"}, open[0], "the open diff is main.go's")

			want := map[string]int{}
			for _, name := range goFiles(t, Steps[i-1], Steps[i]) {
				prev, _ := os.ReadFile(filepath.Join(root, Steps[i-1], name))
				this, _ := os.ReadFile(filepath.Join(root, Steps[i], name))
				if name != "main.go" && !bytes.Equal(prev, this) {
					want[name] = 1
				}
			}
			assert.Equal(t, want, folded, "the other files that changed, each folded once")
		})
	}
}

// diffFiles reads a ```diff block's lines from lines[from] to its closing
// fence, and returns the name of each file whose "---" and "+++" labels it
// holds, and where the fence is.
func diffFiles(t *testing.T, lines []string, from int) ([]string, int) {
	t.Helper()
	var files []string
	for n := from; n < len(lines); n++ {
		if lines[n] == "```" {
			return files, n
		}
		a, isA := strings.CutPrefix(lines[n], "--- ")
		if !isA || n+1 >= len(lines) {
			continue
		}
		b, isB := strings.CutPrefix(lines[n+1], "+++ ")
		if !isB {
			continue
		}
		name := filepath.Base(b)
		if b == "/dev/null" {
			name = filepath.Base(a)
		}
		files = append(files, name)
	}
	t.Fatalf("a ```diff block from line %d of the section is not closed", from)
	return nil, 0
}

// goFiles returns the names of the Go files, tests left out, in either step.
func goFiles(t *testing.T, steps ...string) []string {
	t.Helper()
	seen := map[string]bool{}
	var names []string
	for _, step := range steps {
		files, err := filepath.Glob(filepath.Join(root, step, "*.go"))
		require.NoError(t, err)
		for _, f := range files {
			if name := filepath.Base(f); !strings.HasSuffix(name, "_test.go") && !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	return names
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
	most := map[string]int{"step05-proc": 150, "step06-cgroups": 180, "step07-pivot-root": 200, "step08-overlay": 200, "step09-net": 220, "step10-userns": 230, "step11-ipc": 250, "step12-lockdown": 260, "step13-image": 285}
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
			assert.NotContains(t, exercises, "```sh", "exercise answers are ```console blocks, which the tests run")
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

// TestPagesSayWhatTheirStepCosts reads each step page's "What it costs",
// at the end of "How it works": its numbers must be its step's row of the
// course README's table (bench's), which the page links to.
func TestPagesSayWhatTheirStepCosts(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	require.Contains(t, string(readme), "\n## What each step costs\n", "the section the pages link to")
	costs, err := Costs(string(readme))
	require.NoError(t, err)
	for i, step := range Steps {
		t.Run(step, func(t *testing.T) {
			page, err := os.ReadFile(filepath.Join(root, step, "README.md"))
			require.NoError(t, err)
			text := string(page)
			works := text[strings.Index(text, "\n## How it works\n")+1:]
			works = works[:strings.Index(works, "\n## Exercises\n")]
			require.Contains(t, works, CostBegin, "no \"What it costs\" at the end of How it works")
			updated, err := WithCost(text, CostSentence(i, costs[step]))
			require.NoError(t, err)
			assert.True(t, updated == text, "%s/README.md says another cost than the README's table: run go generate ./internal/lessons", step)
			assert.Contains(t, works, costs[step].Median+" ms")
		})
	}
}
