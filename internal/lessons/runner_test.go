package lessons

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"containers-from-scratch/internal/steptest"
)

// TestTranscriptsRun follows every README the way a reader does: it runs
// every console block, exercise answers included, in order, in a scratch
// copy of the repository, and compares what each command prints with what
// the page shows (see Transcript for what a block can say).
//
// The reader is a normal user with sudo: a command runs as root only if it
// says sudo (or is a go command: the go command below plays the reader's
// own), and otherwise as the user who ran sudo to start the tests, or as
// nobody. A command that needs root and does not say so fails here as it
// would for the reader.
//
// "go run" and "go build -o DIR/" run the programs this test built
// beforehand, through a stand-in for the go command, so that root needs no
// toolchain; a package whose code the page changed is built for real.
//
// A block with "cgroup=1" or "cgroup=2" among its options runs only on
// that version of cgroups (v1 meaning the pids controller's own hierarchy):
// the pages show both, and CI runs these tests on both. A block with
// "notrun" is not run: it would change the machine (exercise 2 of step09
// sets up NAT).
//
// The pages' containers get networks of their own from step09 on, with a
// cable to the host: the tests run in a network namespace that TestMain
// makes for them, so that no packet reaches the machine's real network.
func TestTranscriptsRun(t *testing.T) {
	steptest.RequireRoot(t)
	programs := buildPrograms(t)

	// One reader follows the pages in order, in one copy of the repository,
	// as a learner does: the quick start builds the root filesystem, and a
	// page may use what an earlier one left for it.
	r := newReader(t, programs)
	giveSubordinateIDs(t, r.uid)
	readmes := []string{"README.md"}
	for _, step := range Steps {
		readmes = append(readmes, step+"/README.md")
	}
	readmes = append(readmes, "pull/README.md") // after step13's, whose demo image it serves
	for _, readme := range readmes {
		t.Run(readme, func(t *testing.T) {
			text, err := os.ReadFile(filepath.Join(root, readme))
			require.NoError(t, err)
			r.follow(t, readme, Transcripts(string(text)))
		})
	}
}

// A reader follows a page in a repository of their own, with terminals
// that may each keep a command running.
type reader struct {
	programs string
	dir      string // the reader's copy of the repository
	uid, gid int
	running  map[int]*background
	sessions map[int]string // of the commands run so far: leader's PID, its start time
}

// background is a command left running in a terminal.
type background struct {
	term  *steptest.Terminal
	shown string // what the page showed it print so far
	line  int
}

// theReader is who runs the commands without sudo: the user who ran sudo
// to start the tests, or nobody.
func theReader() (uid, gid int) {
	uid, _ = strconv.Atoi(os.Getenv("SUDO_UID"))
	gid, _ = strconv.Atoi(os.Getenv("SUDO_GID"))
	if uid == 0 || gid == 0 {
		return 65534, 65534
	}
	return uid, gid
}

// newReader makes a scratch copy of the repository's code, a git
// repository owned by the reader, as a clone would be.
func newReader(t *testing.T, programs string) *reader {
	t.Helper()
	_, err := exec.LookPath("git")
	require.NoError(t, err, "the pages' exercises use git")
	dir, err := os.MkdirTemp(steptest.TempParent(), "lessons-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, copyCode(filepath.Join(programs, "src"), dir))
	r := &reader{programs: programs, dir: dir, running: map[int]*background{}}
	r.uid, r.gid = theReader()
	for _, git := range [][]string{
		{"init", "-q"},
		{"add", "."},
		{"-c", "user.name=Reader", "-c", "user.email=reader@example.invalid", "commit", "-q", "-m", "clone"},
	} {
		cmd := exec.Command("git", git...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "git %s: %s", git, out)
	}
	require.NoError(t, chownTree(dir, r.uid, r.gid))
	return r
}

// follow runs a page's blocks in order.
func (r *reader) follow(t *testing.T, readme string, blocks []Transcript) {
	t.Helper()
	r.sessions, r.running = map[int]string{}, map[int]*background{}
	t.Cleanup(func() {
		if left := r.leftovers(); len(left) > 0 {
			t.Errorf("%s: the page's commands left running:\n%s", readme, strings.Join(left, "\n"))
		}
	})
	for i, b := range blocks {
		if skip := skipped(b); skip != "" {
			t.Logf("%s:%d: skipped: %s", readme, b.Line, skip)
			continue
		}
		if b.Path != "" {
			r.save(t, b.Path, b.Content)
			continue
		}
		if b.Then != "" {
			r.finish(t, readme, b)
		}
		for j, c := range b.Commands {
			if j == len(b.Commands)-1 && continued(blocks[i+1:], b.Terminal) {
				r.start(t, readme, b.Terminal, c, b.Ready)
				continue
			}
			require.Nil(t, r.running[b.Terminal], "%s:%d: terminal %d still runs the command of line %d", readme, c.Line, b.Terminal, r.line(b.Terminal))
			got := r.run(t, c)
			assert.True(t, Matches(c.Output, got),
				"%s:%d: $ %s\nthe README shows:\n%s\nit printed:\n%s", readme, c.Line, c.Text, c.Output, got)
		}
	}
	for n := range r.running {
		t.Errorf("%s: terminal %d still runs the command of line %d at the end of the page", readme, n, r.line(n))
	}
}

func (r *reader) line(terminal int) int {
	if bg := r.running[terminal]; bg != nil {
		return bg.line
	}
	return 0
}

// skipped says why a block does not apply to this machine, if it does not.
func skipped(b Transcript) string {
	v1 := isDir("/sys/fs/cgroup/pids")
	switch {
	case b.NotRun:
		return "marked notrun: the page says why"
	case b.Cgroup == 1 && !v1:
		return "for cgroup v1"
	case b.Cgroup == 2 && v1:
		return "for cgroup v2"
	}
	return ""
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// continued reports whether a later block goes on with what the given
// terminal runs: the next block of that terminal starts with output.
func continued(later []Transcript, terminal int) bool {
	for _, b := range later {
		if b.Terminal == terminal && b.Path == "" && skipped(b) == "" {
			return b.Then != ""
		}
	}
	return false
}

// save writes a file the page asks the reader to save.
func (r *reader) save(t *testing.T, path, content string) {
	t.Helper()
	require.False(t, filepath.IsAbs(path) || strings.Contains(path, ".."), "a file= path must stay in the repository: %s", path)
	full := filepath.Join(r.dir, path)
	require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
	require.NoError(t, os.WriteFile(full, []byte(content), 0o644))
	require.NoError(t, chownTree(filepath.Dir(full), r.uid, r.gid))
}

// command is a command line as the reader types it: as root if it says
// sudo or is a go command, as the reader otherwise.
func (r *reader) command(text string) *exec.Cmd {
	return r.shell(text, "sh", "-c", text)
}

// onTerminal is a command line as typed into a terminal window: an
// interactive bash runs it, with job control, so that Ctrl-C reaches the
// command and not the shell, and the shell says "Killed" when a command is
// killed. (The last line keeps bash from running a lone command in its own
// place, which would leave no shell to say it.)
func (r *reader) onTerminal(text string) *exec.Cmd {
	return r.shell(text, "bash", "--norc", "--noprofile", "-i", "-c", text+"\n:")
}

func (r *reader) shell(text, shell string, args ...string) *exec.Cmd {
	cmd := exec.Command("env", steptest.Plain(shell, args...)...)
	// A session of its own, so that what it leaves running can be found.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Join(r.programs, "stand-in")+":"+os.Getenv("PATH"),
		"PROGRAMS="+r.programs,
		fmt.Sprintf("READER=%d:%d", r.uid, r.gid), "READER_HOME="+r.dir,
		"GOFLAGS=-buildvcs=false", "GOTOOLCHAIN=local", "GOPROXY=off")
	if !saysSudo.MatchString(text) && !isGo(text) {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid)}
		cmd.Env = append(cmd.Env, "HOME="+r.dir)
	}
	return cmd
}

// saysSudo matches a command line that runs sudo.
var saysSudo = regexp.MustCompile(`(^|[\s;&|(])sudo\s`)

// isGo reports whether a command line runs the go command, after any
// variables set for it.
func isGo(text string) bool {
	for _, w := range strings.Fields(text) {
		if !strings.Contains(w, "=") {
			return w == "go"
		}
	}
	return false
}

// run runs a command to its end, with its input, and returns what it
// printed on stdout and stderr together.
func (r *reader) run(t *testing.T, c Command) string {
	t.Helper()
	// A go command may build a package the page changed, for real: in an
	// emulated VM on a busy machine, that takes more than 20 s.
	limit := 20 * time.Second
	if isGo(c.Text) {
		limit = 3 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := r.command(c.Text)
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	defer stop()
	cmd.Stdin = strings.NewReader(c.Input)
	// A file, not a pipe: a process the command leaves running, as a
	// page may show, would hold a pipe open after the command ends.
	out, err := os.CreateTemp("", "lessons-output-")
	require.NoError(t, err)
	defer os.Remove(out.Name())
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Start()
	require.NoError(t, err, "$ %s", c.Text)
	r.sessions[cmd.Process.Pid] = startTime(cmd.Process.Pid)
	err = cmd.Wait()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		require.NoError(t, err, "$ %s", c.Text)
	}
	settle(cmd.Process.Pid)
	printed, err := os.ReadFile(out.Name())
	require.NoError(t, err)
	require.NoError(t, ctx.Err(), "$ %s: still running after %v; it printed:\n%s", c.Text, limit, printed)
	return string(printed)
}

// settle waits, for a few seconds at most, until no shell that a command
// left in the background, in its session, is still on its way to exec its
// command: "sh -c 'sleep 1234 &'" forks a shell that becomes sleep only
// when the scheduler gets to it, and a learner's next command comes far
// later than the test's.
func settle(sid int) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		busy := false
		for _, p := range processes() {
			if p.sid == sid && p.state == "R" && slices.Contains([]string{"sh", "dash", "bash"}, filepath.Base(p.exe)) {
				busy = true
			}
		}
		if !busy {
			return
		}
	}
}

// process is what leftovers and settle read of a process in /proc.
type process struct {
	pid, sid   int
	state, exe string
	args       string
}

// stat returns the fields of a process's stat file from its state on
// (field 3; the name before it may hold anything), or nil if it is gone.
func stat(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(fields) < 20 {
		return nil
	}
	return fields
}

// startTime is a process's start time, in clock ticks since boot (field
// 22 of its stat file), or "" if it is gone.
func startTime(pid int) string {
	if f := stat(pid); f != nil {
		return f[19]
	}
	return ""
}

// parent is the parent of a process (field 4), or 0.
func parent(pid int) int {
	if f := stat(pid); f != nil {
		ppid, _ := strconv.Atoi(f[1])
		return ppid
	}
	return 0
}

// processes lists the processes there are.
func processes() []process {
	var ps []process
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(dir))
		f := stat(pid)
		if f == nil {
			continue
		}
		p := process{pid: pid, state: f[0], args: steptest.Cmdline(pid)}
		p.sid, _ = strconv.Atoi(f[3])
		p.exe, _ = os.Readlink(filepath.Join(dir, "exe"))
		ps = append(ps, p)
	}
	return ps
}

// leftovers kills what the page's commands left running, and says what
// it was. Each command ran in a session of its own, which the processes it
// starts keep, containers included.
func (r *reader) leftovers() []string {
	var left []string
	for _, p := range processes() {
		start, ours := r.sessions[p.sid]
		// A session whose leader's PID now names a process started later
		// is someone else's.
		if now := startTime(p.sid); now != "" && now != start {
			ours = false
		}
		if ours && p.state != "Z" { // a zombie has ended already
			left = append(left, fmt.Sprintf("%d %s", p.pid, p.args))
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
	}
	return left
}

// start starts a command in a terminal and leaves it running once it has
// shown what the page shows and its container's command runs.
func (r *reader) start(t *testing.T, readme string, terminal int, c Command, ready string) {
	t.Helper()
	require.Empty(t, c.Input, "%s:%d: a command left running takes no input", readme, c.Line)
	require.NotEmpty(t, ready, "%s:%d: a command left running needs ready=REGEXP in its block's options: the process the next block waits for", readme, c.Line)
	term := steptest.StartOnTerminal(t, r.onTerminal(c.Text))
	r.sessions[term.PID()] = startTime(term.PID())
	r.running[terminal] = &background{term: term, shown: c.Output, line: c.Line}
	deadline := time.Now().Add(20 * time.Second)
	readyRE := regexp.MustCompile(ready)
	// What it shows first, and maybe more: "…" after the last line's end,
	// which Matches would otherwise take for white space that must be there.
	shown := strings.TrimRight(c.Output, "\n") + "…"
	for !(Matches(shown, term.Shown()) && settled(term) && running(term, readyRE)) {
		if term.Exited() || time.Now().After(deadline) {
			t.Fatalf("%s:%d: $ %s\nshould keep running after showing:\n%s\nit showed:\n%s", readme, c.Line, c.Text, c.Output, term.Shown())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settled reports whether what a terminal runs has got going: a step's
// program has started the command it was given, and no step is still
// setting up a container; or no step runs there.
func settled(term *steptest.Terminal) bool {
	started, steps := false, false
	for _, pid := range tree(term.PID()) {
		if isStep(pid) {
			steps = true
			args, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if argv := strings.Split(string(args), "\x00"); len(argv) > 1 && argv[1] == "child" {
				return false
			}
		} else if isStep(parent(pid)) {
			started = true
		}
	}
	// A tool that is no step (pull's registry) has nothing to set up: it
	// is ready once it shows what it shows.
	return started || !steps
}

// running reports whether a process in what a terminal runs has a command
// line that matches re.
func running(term *steptest.Terminal, re *regexp.Regexp) bool {
	for _, pid := range tree(term.PID()) {
		if re.MatchString(steptest.Cmdline(pid)) {
			return true
		}
	}
	return false
}

// isStep reports whether a process runs one of the steps' programs, as
// go run starts them or as the page built them: before it execs the
// command, a process a step starts still does.
func isStep(pid int) bool {
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return slices.Contains(Steps, filepath.Base(exe))
}

// tree lists a process and all its descendants.
func tree(pid int) []int {
	all := []int{pid}
	for i := 0; i < len(all); i++ {
		all = append(all, steptest.Children(all[i])...)
	}
	return all
}

// finish ends the command left running in a block's terminal: it types
// Ctrl-C if the block starts with ^C, waits for the command to end, and
// checks all it showed.
func (r *reader) finish(t *testing.T, readme string, b Transcript) {
	t.Helper()
	bg := r.running[b.Terminal]
	require.NotNil(t, bg, "%s:%d: the block starts with output, but nothing runs in terminal %d", readme, b.Line, b.Terminal)
	delete(r.running, b.Terminal)
	if strings.HasPrefix(b.Then, "^C") {
		bg.term.Type(t, "\x03")
	}
	got := bg.term.Wait(t)
	want := bg.shown + b.Then
	assert.True(t, Matches(want, got), "%s:%d (started at line %d):\nthe README shows:\n%s\nthe terminal showed:\n%s", readme, b.Line, bg.line, want, got)
}

// goStandIn replaces the go command in the transcripts.
const goStandIn = `#!/bin/sh
# The reader's go command, played by the programs built beforehand in
# $PROGRAMS: "go run [-exec sudo] ./PKG ARGS" runs one (as the reader,
# without -exec sudo), and "go build -o DIR/ ./PKG..." copies them. A
# package whose code differs from the repository's is built for real.
set -u
reader() {
	if [ "$(id -u)" = 0 ]; then
		setpriv --reuid="${READER%:*}" --regid="${READER#*:}" --clear-groups env HOME="$READER_HOME" "$@"
	else
		"$@"
	fi
}
pristine() { [ -d "$PROGRAMS/src/$1" ] && diff -r -q "$PROGRAMS/src/$1" "$1" >/dev/null; }
case "$1" in
run)
	shift
	sudo=
	if [ "$1" = -exec ]; then sudo=1; shift 2; fi
	pkg=${1#./}
	shift
	pristine "$pkg" || { echo "go stand-in: $pkg was changed: build it with go build" >&2; exit 2; }
	if [ -n "$sudo" ]; then "$PROGRAMS/$pkg" "$@"; else reader "$PROGRAMS/$pkg" "$@"; fi
	status=$?
	if [ $status -ne 0 ]; then
		echo "exit status $status" >&2
		exit 1
	fi
	exit 0
	;;
build)
	[ "$2" = -o ] || { echo "go stand-in: cannot do: go $*" >&2; exit 2; }
	out=$3
	shift 3
	for pkg; do
		p=${pkg#./}
		case $out in
		*/) if pristine "$p"; then mkdir -p "$out" && cp "$PROGRAMS/$p" "$out" || exit 1; continue; fi ;;
		esac
		"$REALGO" build -o "$out" "$pkg" || exit 1
	done
	chown -R "$READER" "$out"
	exit 0
	;;
esac
echo "go stand-in: cannot do: go $*" >&2
exit 2
`

// sudoStandIn replaces sudo: the commands that say sudo run as root.
const sudoStandIn = `#!/bin/sh
exec "$@"
`

// buildPrograms builds every step and mkrootfs into a directory, next to
// the stand-ins and a copy of the code, and returns that directory.
func buildPrograms(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lessons-programs-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))

	// No version control stamp: as root in a clone owned by someone else,
	// git refuses to answer, and the stamp is of no use here.
	args := []string{"build", "-buildvcs=false", "-o", dir + "/"}
	for _, step := range append(Steps, "mkrootfs", "pull", "registry") {
		args = append(args, "./"+step)
	}
	goCmd := goTool(t)
	cmd := exec.Command(goCmd, args...)
	cmd.Dir = root
	runAsInvokingUser(t, cmd)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	require.NoError(t, copyCode(root, filepath.Join(dir, "src")))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "stand-in"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "stand-in", "go"), []byte(goStandIn), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "stand-in", "sudo"), []byte(sudoStandIn), 0o755))
	// The real go command, for what the pages change, builds as the
	// programs were built: its caches are warm.
	real := "#!/bin/sh\nexec " + strings.Join(quoted(realGo(t, goCmd)), " ") + ` "$@"` + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "real-go"), []byte(real), 0o755))
	t.Setenv("REALGO", filepath.Join(dir, "real-go"))
	return dir
}

// realGo is the command line that runs the go command as the user who
// built the programs.
func realGo(t *testing.T, goCmd string) []string {
	uid, gid := os.Getenv("SUDO_UID"), os.Getenv("SUDO_GID")
	if uid == "" || gid == "" || uid == "0" {
		return []string{goCmd}
	}
	u, err := user.LookupId(uid)
	require.NoError(t, err)
	return []string{"env", "HOME=" + u.HomeDir, "USER=" + u.Username,
		"setpriv", "--reuid=" + uid, "--regid=" + gid, "--init-groups", goCmd}
}

func quoted(args []string) []string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return q
}

// copyCode copies what building the programs takes: go.mod, go.sum and
// the Go files of the steps, mkrootfs and what they import, tests left out.
func copyCode(from, to string) error {
	dirs := append([]string{"mkrootfs", "internal/rootfs", "internal/oci", "pull", "registry", "internal/registry"}, Steps...)
	files := []string{"go.mod", "go.sum"}
	for _, d := range dirs {
		gos, err := filepath.Glob(filepath.Join(from, d, "*.go"))
		if err != nil {
			return err
		}
		for _, f := range gos {
			if !strings.HasSuffix(f, "_test.go") {
				files = append(files, filepath.Join(d, filepath.Base(f)))
			}
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(to, filepath.Dir(f)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, f), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// chownTree gives a tree to a user, without following links.
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
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

// giveSubordinateIDs gives the reader 65536 subordinate ids in
// /etc/subuid and /etc/subgid, where they have none, as Debian's adduser
// gives every user it makes: step13's page maps them. The files are bound
// over the machine's in the tests' own mount namespace (steptest.Isolated),
// so the machine's stay as they are.
func giveSubordinateIDs(t *testing.T, uid int) {
	t.Helper()
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	for _, file := range []string{"/etc/subuid", "/etc/subgid"} {
		data, err := os.ReadFile(file)
		if err != nil && !os.IsNotExist(err) {
			require.NoError(t, err)
		}
		next := 100000
		has := false
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Split(line, ":")
			if len(f) != 3 {
				continue
			}
			has = has || f[0] == name || f[0] == strconv.Itoa(uid)
			first, _ := strconv.Atoi(f[1])
			count, _ := strconv.Atoi(f[2])
			next = max(next, first+count)
		}
		if has {
			continue
		}
		given := filepath.Join(t.TempDir(), filepath.Base(file))
		require.NoError(t, os.WriteFile(given, append(data, fmt.Sprintf("%s:%d:65536\n", name, next)...), 0o644))
		if _, err := os.Stat(file); os.IsNotExist(err) {
			require.NoError(t, os.WriteFile(file, nil, 0o644)) // a mount point
			t.Cleanup(func() { os.Remove(file) })
		}
		require.NoError(t, syscall.Mount(given, file, "", syscall.MS_BIND, ""))
		t.Cleanup(func() { _ = syscall.Unmount(file, syscall.MNT_DETACH) })
	}
}
