// Package lessons keeps the step READMEs honest: it regenerates their "What
// changed" diffs from the code, and its tests run their transcripts. A page
// shows main.go's diff, the lesson, open, and each other Go file's folded
// under a <details> whose summary is the first sentence of the file's first
// comment ("This file holds ...").
//
// After changing a step's Go files, regenerate the diffs from the repository
// root with:
//
//	go generate ./internal/lessons
package lessons

//go:generate go run ./updatediffs ../..

import (
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Steps are the step folders, in course order.
var Steps = []string{"step01-exec", "step02-uts", "step03-pid", "step04-chroot", "step05-proc", "step06-cgroups", "step07-pivot-root", "step08-overlay", "step09-net", "step10-userns", "step11-ipc", "step12-lockdown", "step13-image"}

// A FileDiff is one Go file's part of the diff between two steps.
type FileDiff struct {
	Name  string // the file's name in its step folder
	About string // what the file does: the first sentence of its first comment; empty for main.go
	New   bool   // the step before has no such file
	Gone  bool   // this step has no such file
	Diff  string // "diff -u", the files named by their paths from the repository root
}

// Diffs returns the Go files that differ between the previous step and this
// one, tests left out: main.go first, then the others that changed, are new
// or are gone, by name.
func Diffs(root, prev, step string) ([]FileDiff, error) {
	names := map[string]bool{}
	for _, dir := range []string{prev, step} {
		files, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if name := filepath.Base(f); !strings.HasSuffix(name, "_test.go") && name != "main.go" {
				names[name] = true
			}
		}
	}
	sorted := []string{"main.go"}
	for name := range names {
		sorted = append(sorted, name)
	}
	sort.Strings(sorted[1:])
	var diffs []FileDiff
	for _, name := range sorted {
		a, b := prev+"/"+name, step+"/"+name
		d := FileDiff{Name: name}
		labelA, labelB, about := a, b, b
		if _, err := os.Stat(filepath.Join(root, a)); err != nil {
			labelA, d.New = "/dev/null", true
		}
		if _, err := os.Stat(filepath.Join(root, b)); err != nil {
			labelB, d.Gone, about = "/dev/null", true, a
		}
		cmd := exec.Command("diff", "-u", "-N", "--label", labelA, "--label", labelB, a, b)
		cmd.Dir = root
		out, err := cmd.Output()
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 1 { // 1: the files differ
			err = nil
		}
		if err != nil {
			return nil, fmt.Errorf("diff %s %s: %w", a, b, err)
		}
		d.Diff = string(out)
		if name != "main.go" { // main.go is the lesson: its first comment is the step's man page
			if d.Diff == "" {
				continue
			}
			if d.About, err = About(filepath.Join(root, about)); err != nil {
				return nil, err
			}
		}
		diffs = append(diffs, d)
	}
	return diffs, nil
}

// About returns what a Go file of a step does: the first sentence of its
// first comment, which starts "This file", with "This file" left out.
func About(path string) (string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		return "", err
	}
	var text string
	if len(f.Comments) > 0 && f.Comments[0].Pos() < f.Package {
		text = strings.Join(strings.Fields(f.Comments[0].Text()), " ")
	}
	about, ok := strings.CutPrefix(text, "This file ")
	if !ok {
		return "", fmt.Errorf("%s: its first comment should say what the file does, starting \"This file\"", path)
	}
	if i := strings.Index(about, ". "); i >= 0 {
		about = about[:i+1]
	}
	return about, nil
}

// Markdown returns what a page shows of a step's diffs under "What
// changed": main.go's diff, the lesson, in an open ```diff block, then each
// other file's in a <details> of its own, whose one-line <summary> names the
// file and says what it does, so that the page reaches "Run it" soon.
// GitHub renders a fenced block inside <details> only after a blank line.
func Markdown(diffs []FileDiff) string {
	var md strings.Builder
	for i, d := range diffs {
		if i == 0 {
			md.WriteString("```diff\n" + d.Diff + "```\n")
			continue
		}
		status := ""
		switch {
		case d.New:
			status = " (new)"
		case d.Gone:
			status = " (removed)"
		}
		fmt.Fprintf(&md, "\n<details>\n<summary><code>%s</code>%s %s</summary>\n\n```diff\n%s```\n\n</details>\n",
			d.Name, status, htmlText.Replace(d.About), d.Diff)
	}
	return md.String()
}

// htmlText escapes the characters that HTML would take for markup.
var htmlText = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Plumbing is the file of every step that holds what no step teaches.
const Plumbing = "plumbing.go"

// PlumbingChanges are the steps whose plumbing.go is meant to differ from
// the step before's, and why. Every other step's copy is the same, byte for
// byte, as the step before's.
var PlumbingChanges = map[string]string{
	"step02-uts":        `run starts a "child" in new namespaces: root is needed, the child checks its namespaces and that run is alive, and run holds signals until the command runs`,
	"step04-chroot":     `the root filesystem: -rootfs is checked, "not found" says where the command was looked for, and run refuses a standard input or output that leads past the root into the host's files (a directory, a block device)`,
	"step07-pivot-root": `pivot_root's errors, each of which has several causes, say what they mean`,
	"step09-net":        `run does its part of the setup, the network, between starting the child and waiting for it; the handover stays file descriptor 3, and main.go's files follow it`,
	"step10-userns":     "run needs no root, and the child, whose root may not read run's /proc/PID/ns, checks instead that its user namespace is new; starting the child explains a user namespace the machine forbids",
	"step12-lockdown":   "handOver and lookPath say that the lockdown, not they, is the child's last step before the exec",
	"step11-ipc":        "the child checks too that every other namespace of the clone belongs to its user namespace, so none of them is the host's",
	"step13-image":      `-image reads the image, in place of -rootfs, and needs no command when the image has one; the child (and "remove") first waits for newuidmap's maps and execs itself as root`,
}

var (
	// whatChanged finds the "What changed" section: from its heading to the next.
	whatChanged = regexp.MustCompile(`(?ms)^## What changed\n.*?(?:^## |\z)`)
	// openDiff finds the section's first ```diff block.
	openDiff = regexp.MustCompile("(?ms)^```diff\n.*?^```\n")
	// folded finds a <details> holding a ```diff block right after it.
	folded = regexp.MustCompile("(?ms)\\A\n<details>\n<summary>[^\n]*</summary>\n\n```diff\n.*?^```\n\n</details>\n")
)

// diffBlocks returns where the diff blocks of a README's "What changed"
// section start and end: the first ```diff block and the folded ones that
// follow it. Prose before and after them is the page's own.
func diffBlocks(readme string) (start, end int, ok bool) {
	sec := whatChanged.FindStringIndex(readme)
	if sec == nil {
		return 0, 0, false
	}
	open := openDiff.FindStringIndex(readme[sec[0]:sec[1]])
	if open == nil {
		return 0, 0, false
	}
	start, end = sec[0]+open[0], sec[0]+open[1]
	for {
		m := folded.FindStringIndex(readme[end:sec[1]])
		if m == nil {
			return start, end, true
		}
		end += m[1]
	}
}

// DiffBlocks returns the diff blocks of a README's "What changed" section,
// as Markdown would write them.
func DiffBlocks(readme string) (string, bool) {
	start, end, ok := diffBlocks(readme)
	return readme[start:end], ok
}

// WithDiffs returns readme with the diff blocks of its "What changed"
// section replaced by blocks, which Markdown makes.
func WithDiffs(readme, blocks string) (string, error) {
	start, end, ok := diffBlocks(readme)
	if !ok {
		return "", errors.New("no ```diff block under \"## What changed\"")
	}
	return readme[:start] + blocks + readme[end:], nil
}

// UpdateDiffs rewrites the diff blocks of every step's README after the
// first from the code, and reports the READMEs it changed.
func UpdateDiffs(root string) ([]string, error) {
	var changed []string
	for i := 1; i < len(Steps); i++ {
		path := filepath.Join(root, Steps[i], "README.md")
		readme, err := os.ReadFile(path)
		if err != nil {
			return changed, err
		}
		diffs, err := Diffs(root, Steps[i-1], Steps[i])
		if err != nil {
			return changed, err
		}
		updated, err := WithDiffs(string(readme), Markdown(diffs))
		if err != nil {
			return changed, fmt.Errorf("%s: %w", path, err)
		}
		if updated != string(readme) {
			if err := os.WriteFile(path, []byte(updated), 0o644); err != nil {
				return changed, err
			}
			changed = append(changed, path)
		}
	}
	return changed, nil
}

// A Transcript is a console block of a README: commands typed at "$ ",
// lines typed into the container's shell at "# ", and the output expected
// after each command. Blocks may be indented, as in a list item.
//
// What follows "console" on the opening line, which GitHub does not show,
// tells the tests more: "terminal=2" puts the block in a second terminal
// window (the first is terminal 1); "cgroup=2" or "cgroup=1" makes it
// apply only on that version of cgroups; "ready=REGEXP", on a block whose
// last command is left running, says when it is: once a process of its
// command line (arguments joined by spaces) matches. A block that starts with output rather
// than a command continues the command left running in its terminal: the
// command the block before it in that terminal ended with, which keeps
// running while other terminals' blocks run. "^C" at its start is Ctrl-C
// typed into that terminal (which shows it so, often with no new line).
//
// A block of another language with "file=PATH" there, such as
// "```go file=breakout/main.go", is a file the page asks the reader to save:
// Path and Content are set, and it has no commands.
type Transcript struct {
	Line     int // where the block starts in the README, for messages
	Terminal int
	Then     string // output before the first command: the end of what runs in this terminal
	Commands []Command
	Cgroup   int    // 1 or 2 if the block is for that version of cgroups only
	Ready    string // a regexp: the command left running is ready once a process's command line matches
	NotRun   bool   // "notrun": the tests do not run it (it would change the machine: a firewall, forwarding)
	Path     string // for a file block: where to save Content
	Content  string
}

// A Command is one "$ " line with what is typed into it and what it prints.
type Command struct {
	Line   int
	Text   string // the command, without "$ "
	Input  string // the "# " lines, as typed into the command's standard input
	Output string // what the README shows it printing, stdout and stderr mixed
}

// fence opens a fenced block: its indentation, language and options.
var fence = regexp.MustCompile("^( *)```(\\w+)(.*)$")

// Transcripts returns every ```console block of a README, and every block
// with a file= option, in order.
func Transcripts(readme string) []Transcript {
	var ts []Transcript
	var cur *Transcript
	indent, file := "", false
	for i, line := range strings.Split(readme, "\n") {
		if cur == nil {
			m := fence.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			t := Transcript{Line: i + 1, Terminal: 1}
			for _, opt := range strings.Fields(m[3]) {
				k, v, _ := strings.Cut(opt, "=")
				switch k {
				case "terminal":
					t.Terminal, _ = strconv.Atoi(v)
				case "cgroup":
					t.Cgroup, _ = strconv.Atoi(v)
				case "ready":
					t.Ready = v
				case "file":
					t.Path = v
				case "notrun":
					t.NotRun = true
				}
			}
			if m[2] != "console" && t.Path == "" {
				continue
			}
			ts = append(ts, t)
			cur, indent, file = &ts[len(ts)-1], m[1], t.Path != ""
			continue
		}
		if strings.TrimSpace(line) == "```" {
			cur = nil
			continue
		}
		line = strings.TrimPrefix(line, indent)
		switch {
		case file:
			cur.Content += line + "\n"
		case strings.HasPrefix(line, "$ "):
			cur.Commands = append(cur.Commands, Command{Line: i + 1, Text: line[2:]})
		case len(cur.Commands) == 0:
			cur.Then += line + "\n"
		case strings.HasPrefix(line, "# ") || line == "#":
			c := &cur.Commands[len(cur.Commands)-1]
			c.Input += strings.TrimPrefix(strings.TrimPrefix(line, "#"), " ") + "\n"
		default:
			c := &cur.Commands[len(cur.Commands)-1]
			c.Output += line + "\n"
		}
	}
	return ts
}

// Matches reports whether a command's real output matches what a README
// shows. "…" in the README stands for any text that varies from run to run
// (a count, a mount ID, your machine's name), and white space need not match
// exactly: ls lays its output out in columns only on a terminal.
func Matches(shown, got string) bool {
	parts := strings.Split(squeeze(shown), "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(`^` + strings.Join(parts, `.*?`) + `$`).MatchString(squeeze(got))
}

// squeeze turns every run of white space into one space.
func squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }
