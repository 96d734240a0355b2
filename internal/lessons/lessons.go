// Package lessons keeps the step READMEs honest: it regenerates their "What
// changed" diffs from the code, and its tests run their transcripts.
//
// After changing a step's main.go, regenerate the diffs from the repository
// root with:
//
//	go generate ./internal/lessons
package lessons

//go:generate go run ./updatediffs ../..

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Steps are the step folders, in course order.
var Steps = []string{"step01-exec", "step02-uts", "step03-pid", "step04-chroot", "step05-proc", "step06-cgroups", "step07-pivot-root", "step08-overlay", "step09-net", "step10-userns"}

// Diff returns "diff -u" of the previous step's Go files against this
// step's, main.go first, then the others that changed or are new, by name;
// the files are named by their paths from the repository root.
func Diff(root, prev, step string) (string, error) {
	names := map[string]bool{}
	for _, dir := range []string{prev, step} {
		files, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil {
			return "", err
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
	var all strings.Builder
	for _, name := range sorted {
		a, b := prev+"/"+name, step+"/"+name
		labelA := a
		if _, err := os.Stat(filepath.Join(root, a)); err != nil {
			labelA = "/dev/null"
		}
		cmd := exec.Command("diff", "-u", "-N", "--label", labelA, "--label", b, a, b)
		cmd.Dir = root
		out, err := cmd.Output()
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 1 { // 1: the files differ
			err = nil
		}
		if err != nil {
			return "", fmt.Errorf("diff %s %s: %w", a, b, err)
		}
		all.Write(out)
	}
	return all.String(), nil
}

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
}

// diffBlock finds the diff block of the "What changed" section.
var diffBlock = regexp.MustCompile("(?s)(## What changed\n.*?```diff\n)(.*?)(```\n)")

// DiffBlock returns the content of a README's "What changed" diff block.
func DiffBlock(readme string) (string, bool) {
	m := diffBlock.FindStringSubmatch(readme)
	if m == nil {
		return "", false
	}
	return m[2], true
}

// WithDiff returns readme with its "What changed" diff block replaced.
func WithDiff(readme, diff string) (string, error) {
	loc := diffBlock.FindStringSubmatchIndex(readme)
	if loc == nil {
		return "", errors.New("no ```diff block under \"## What changed\"")
	}
	return readme[:loc[4]] + diff + readme[loc[5]:], nil
}

// UpdateDiffs rewrites the diff block of every step's README after the
// first from the code, and reports the READMEs it changed.
func UpdateDiffs(root string) ([]string, error) {
	var changed []string
	for i := 1; i < len(Steps); i++ {
		path := filepath.Join(root, Steps[i], "README.md")
		readme, err := os.ReadFile(path)
		if err != nil {
			return changed, err
		}
		diff, err := Diff(root, Steps[i-1], Steps[i])
		if err != nil {
			return changed, err
		}
		updated, err := WithDiff(string(readme), diff)
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
