package main

import (
	"debug/elf"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"containers-from-scratch/internal/rootfs"
	"containers-from-scratch/internal/steptest"
)

// The test binary is also mkrootfs: see package steptest.
var tool = &steptest.Step{Name: "mkrootfs"}

func TestMain(m *testing.M) { steptest.Main(m, tool, main) }

// build runs mkrootfs into a new directory and returns it.
func build(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rootfs")
	r := tool.Exec(t, dir)
	require.Equal(t, 0, r.Status, r.Stderr)
	return dir
}

// resolve follows path inside root as the container will see it, absolute
// symbolic links included, and reports whether a regular file is there.
func resolve(t *testing.T, root, path string) bool {
	t.Helper()
	rootFd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	require.NoError(t, err)
	defer unix.Close(rootFd)
	fd, err := unix.Openat2(rootFd, path, &unix.OpenHow{Flags: unix.O_PATH, Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	require.NoError(t, unix.Fstat(fd, &st))
	return st.Mode&unix.S_IFMT == unix.S_IFREG
}

func TestEveryELFHasItsLoaderAndLibraries(t *testing.T) {
	dir := build(t)

	// Every name in the tree that leads to a regular file: the loader
	// finds libraries by such names, often through a symbolic link.
	present := map[string]bool{}
	var elves []string
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		inRoot := strings.TrimPrefix(path, dir)
		if !d.IsDir() && resolve(t, dir, inRoot) {
			present[d.Name()] = true
			if f, err := elf.Open(path); err == nil {
				f.Close()
				elves = append(elves, path)
			}
		}
		return nil
	}))
	require.NotEmpty(t, elves)

	for _, path := range elves {
		f, err := elf.Open(path)
		require.NoError(t, err)
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				interp := make([]byte, p.Filesz)
				_, err := p.ReadAt(interp, 0)
				require.NoError(t, err)
				loader := strings.TrimRight(string(interp), "\x00")
				assert.True(t, resolve(t, dir, loader), "%s: loader %s missing", path, loader)
			}
		}
		needed, err := f.ImportedLibraries()
		require.NoError(t, err)
		for _, lib := range needed {
			assert.True(t, present[lib], "%s: library %s missing", path, lib)
		}
		f.Close()
	}
}

// commandChecks runs each command in a way that succeeds only if it can be
// loaded and do its work in the root filesystem.
var commandChecks = map[string][]string{
	"sh":       {"-c", "true"},
	"bash":     {"-c", "true"},
	"ls":       {"/"},
	"ps":       {},
	"mount":    {"--version"},
	"umount":   {"--version"},
	"hostname": {},
	"cat":      {"/etc/hostname"},
	"echo":     {"hello"},
	"sleep":    {"0"},
	"touch":    {"/tmp/touched"},
	"rm":       {"-f", "/tmp/touched"},
	"mkdir":    {"-p", "/tmp/made"},
	"id":       {"-un"},
	"env":      {},
	"grep":     {"root", "/etc/passwd"},
	"kill":     {"-l"},
	"readlink": {"/bin"},
	"true":     {},
	"false":    {},
	"uname":    {"-s"},
	"head":     {"-n1", "/etc/passwd"},
	"ip":       {"-V"}, // loads its libraries; what it does is step09's tests
	"ping":     {"-V"},
	"ipcs":     {"-V"}, // what the three do is step11's tests
	"ipcmk":    {"-V"},
	"ipcrm":    {"-V"},
	"chown":    {"0:0", "/tmp"},
	"chmod":    {"1777", "/tmp"},
	"unshare":  {"--version"},
}

func TestEveryCommandRunsInAChroot(t *testing.T) {
	steptest.RequireRoot(t)
	dir := build(t)
	for _, name := range rootfs.Commands {
		t.Run(name, func(t *testing.T) {
			args, ok := commandChecks[name]
			require.True(t, ok, "add a check for %s to commandChecks", name)
			var path string
			for _, bin := range []string{"/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"} {
				if resolve(t, dir, bin+name) {
					path = bin + name
					break
				}
			}
			require.NotEmpty(t, path, "%s is not in the root filesystem", name)

			cmd := tool.Command(t)
			cmd.Path, cmd.Args, cmd.Dir = path, append([]string{name}, args...), "/"
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: dir}
			r := steptest.Finish(t, cmd)
			assert.NotContains(t, r.Stderr, "error while loading shared libraries")
			switch name {
			case "false":
				assert.Equal(t, 1, r.Status)
			case "ps":
				// It loaded, and looked for the /proc that step05 mounts.
				assert.Contains(t, r.Stderr, "/proc")
			default:
				assert.Equal(t, 0, r.Status, "stderr: %s", r.Stderr)
			}
		})
	}
	// A few that show the files mkrootfs writes are right.
	for argv, want := range map[string]string{"id -un": "root\n", "cat /etc/hostname": "container\n"} {
		cmd := tool.Command(t)
		cmd.Path, cmd.Args, cmd.Dir = "/bin/sh", []string{"sh", "-c", argv}, "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: dir}
		r := steptest.Finish(t, cmd)
		assert.Equal(t, want, r.Stdout, "%s: %s", argv, r.Stderr)
	}
}

func TestMakesDevNullAsRoot(t *testing.T) {
	steptest.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "rootfs")
	// What a command writing to a missing /dev/null leaves behind.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "dev"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, rootfs.Marker), nil, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dev/null"), []byte("output\n"), 0o644))

	r := tool.Exec(t, dir)
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.NotContains(t, r.Stdout, "no /dev/null")
	var st unix.Stat_t
	require.NoError(t, unix.Lstat(filepath.Join(dir, "dev/null"), &st))
	assert.Equal(t, uint32(unix.S_IFCHR), st.Mode&unix.S_IFMT, "not a character device")
	assert.Equal(t, unix.Mkdev(1, 3), st.Rdev, "not the null device")
	assert.Equal(t, uint32(0o666), st.Mode&0o777)
}

func TestReportsWhatItBuilt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rootfs")
	r := tool.Exec(t, dir)
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Regexp(t, `^mkrootfs: `+dir+`: \d+ commands, \d+ files, [\d.]+ MiB \(\d+ written\) in \S+\n`, r.Stdout)
}

func TestDefaultDirectoryIsRootfs(t *testing.T) {
	cwd := t.TempDir()
	cmd := tool.Command(t)
	cmd.Dir = cwd
	r := steptest.Finish(t, cmd)
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.FileExists(t, filepath.Join(cwd, "rootfs", rootfs.Marker))
	assert.True(t, resolve(t, filepath.Join(cwd, "rootfs"), "/bin/sh"))
}

func TestRefusesADirectoryItDidNotBuild(t *testing.T) {
	dir := t.TempDir()
	precious := filepath.Join(dir, "precious.txt")
	require.NoError(t, os.WriteFile(precious, []byte("keep me\n"), 0o644))

	r := tool.Exec(t, dir)
	assert.Equal(t, 1, r.Status)
	steptest.OneLine(t, r.Stderr)
	assert.Contains(t, r.Stderr, "not empty and not built by mkrootfs")

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "mkrootfs added files")
	data, err := os.ReadFile(precious)
	require.NoError(t, err)
	assert.Equal(t, "keep me\n", string(data))
}

func TestNeverWritesThroughALinkedMarker(t *testing.T) {
	dir := build(t)
	victim := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.WriteFile(victim, []byte("precious\n"), 0o644))
	marker := filepath.Join(dir, rootfs.Marker)
	require.NoError(t, os.Remove(marker))
	require.NoError(t, os.Symlink(victim, marker))

	r := tool.Exec(t, dir)
	assert.Equal(t, 1, r.Status)
	steptest.OneLine(t, r.Stderr)
	assert.Contains(t, r.Stderr, "not a regular file")
	data, err := os.ReadFile(victim)
	require.NoError(t, err)
	assert.Equal(t, "precious\n", string(data))
}

func TestRunningAgainUpdatesInPlace(t *testing.T) {
	dir := build(t)
	added := filepath.Join(dir, "root/notes.txt")
	require.NoError(t, os.WriteFile(added, []byte("mine\n"), 0o644))
	ls, err := filepath.EvalSymlinks("/bin/ls")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, ls), []byte("broken"), 0o755))

	r := tool.Exec(t, dir)
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Contains(t, r.Stdout, "(1 written)", "only the broken ls needed writing")
	host, err := os.ReadFile(ls)
	require.NoError(t, err)
	copied, err := os.ReadFile(filepath.Join(dir, ls))
	require.NoError(t, err)
	assert.Equal(t, host, copied, "ls was not repaired")
	assert.FileExists(t, added, "a file of the learner's was removed")

	r = tool.Exec(t, dir)
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Contains(t, r.Stdout, "(0 written)")
}

func TestUsageErrorsExit2(t *testing.T) {
	for name, args := range map[string][]string{
		"two directories": {"a", "b"},
		"unknown flag":    {"-x"},
	} {
		t.Run(name, func(t *testing.T) {
			r := tool.Exec(t, args...)
			assert.Equal(t, 2, r.Status)
			assert.Equal(t, "usage: mkrootfs [-image LAYOUT:TAG] [DIR]\n", r.Stderr)
		})
	}
}

func BenchmarkBuild(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := rootfs.Build(filepath.Join(b.TempDir(), "rootfs")); err != nil {
			b.Fatal(err)
		}
	}
}

// -image writes the demo image of the root filesystem, three layers under
// the tag given, the same digests each time; a ref with no tag is a usage
// error.
func TestWritesTheDemoImage(t *testing.T) {
	dir := t.TempDir()
	rootfsDir, layout := filepath.Join(dir, "rootfs"), filepath.Join(dir, "demo")
	r := tool.Exec(t, "-image", layout+":1", rootfsDir)
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Contains(t, r.Stdout, "mkrootfs: "+layout+":1: the demo image of "+rootfsDir+", in 3 layers\n")
	index, err := os.ReadFile(filepath.Join(layout, "index.json"))
	require.NoError(t, err)
	assert.Contains(t, string(index), `"org.opencontainers.image.ref.name":"1"`)
	blobs, err := os.ReadDir(filepath.Join(layout, "blobs/sha256"))
	require.NoError(t, err)
	assert.Len(t, blobs, 5, "three layers, a config and a manifest")
	r = tool.Exec(t, "-image", layout+":2", rootfsDir)
	require.Equal(t, 0, r.Status, r.Stderr)
	again, err := os.ReadDir(filepath.Join(layout, "blobs/sha256"))
	require.NoError(t, err)
	assert.Equal(t, blobs, again, "the same image, the same blobs")
	r = tool.Exec(t, "-image", layout, rootfsDir)
	assert.Equal(t, 2, r.Status)
	steptest.OneLine(t, r.Stderr)
}
