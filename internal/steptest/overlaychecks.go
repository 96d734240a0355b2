package steptest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// --- step08: overlay (issue 27) ---

// FailedOverlayDirsLeaveNothing runs the step with a scratch directory on
// a tmpfs that has room for 1, 2, 3... files, until a run succeeds: so
// each directory run makes for the container (its own, upper, work,
// merged) is in turn the one whose mkdir fails (ENOSPC). Whichever fails,
// run says so in one line, and the scratch directory holds nothing of that
// run afterwards, only its marker. So too when the chmod, or the chown,
// of the container's directories fails.
func FailedOverlayDirsLeaveNothing(t *testing.T, s *Step) {
	RequireRoot(t)
	dir := scratch(t, s)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) }) // if the test stops with it mounted
	failedAt := map[string]bool{}
	for files := 1; ; files++ {
		require.Less(t, files, 20, "run never succeeded on a tmpfs with room for %d files", files)
		require.NoError(t, unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("nr_inodes=%d,mode=755", files)))
		r := s.Exec(t, s.RunArgs("-scratch", dir, "true")...)
		left := containerDirs(t, dir)
		require.NoError(t, unix.Unmount(dir, 0))
		if r.Status == 0 {
			break
		}
		assert.Equal(t, 1, r.Status, "room for %d files: %s", files, r.Stderr)
		OneLine(t, r.Stderr)
		assert.Empty(t, left, "room for %d files: left in the scratch directory after: %s", files, r.Stderr)
		if m := regexp.MustCompile(`mkdir ` + regexp.QuoteMeta(dir) + `/\d+-\d+(/upper|/work|/merged)?: no space left on device`).FindStringSubmatch(r.Stderr); m != nil {
			failedAt["the container's"+m[1]] = true
		}
	}
	for _, d := range []string{"the container's", "the container's/upper", "the container's/work", "the container's/merged"} {
		assert.True(t, failedAt[d], "no run failed making %s directory: the test no longer reaches it", d)
	}
	// The container's directory is closed to others (chmod), and in a
	// user namespace given to the container's root (chown): strace makes
	// every such call of run's fail.
	calls := map[string]string{"fchmodat": "chmod"}
	if s.UsesUserns {
		calls["fchownat"] = "lchown"
	}
	for call, op := range calls {
		t.Run(op+" fails", func(t *testing.T) {
			dir := scratch(t, s)
			cmd, _ := s.stracedWith(t, []string{"-b", "execve"}, call+":error=EIO", s.RunArgs("-scratch", dir, "true")...)
			r := Finish(t, cmd)
			assert.Equal(t, 1, r.Status)
			OneLine(t, r.Stderr)
			assert.Regexp(t, "^"+regexp.QuoteMeta(s.Name+": "+op+" "+dir+"/")+`\d+-\d+(/upper|/work)?: input/output error\n$`, r.Stderr)
			assert.Empty(t, containerDirs(t, dir), "left in the scratch directory")
		})
	}
}

// PathsTheMountCannotTakeAreRefused gives run a root filesystem, then a
// scratch directory, whose path holds a comma, a colon or a backslash,
// which the overlay's mount options cannot carry (the kernel splits them at
// commas, the lower directories at colons, and takes a backslash as an
// escape): run refuses each in one line that says why, before it makes
// anything, rather than fail with the mount's bare "no such file or
// directory". A relative path counts as the absolute one it stands for.
func PathsTheMountCannotTakeAreRefused(t *testing.T, s *Step) {
	RequireRoot(t)
	const why = ": this program takes no path with a comma, a colon or a backslash in it for an overlay\n"
	for _, c := range []string{",", ":", `\`} {
		t.Run("rootfs "+c, func(t *testing.T) {
			base := scratch(t, s)
			image := filepath.Join(base, "root"+c+"fs")
			copyRootfs(t, s, image)
			layers := filepath.Join(base, "containers")
			r := s.Exec(t, "run", "-rootfs", image, "-scratch", layers, "true")
			assert.Equal(t, 1, r.Status)
			assert.Equal(t, s.Name+": "+image+why, r.Stderr)
			assert.NoDirExists(t, layers, "run made the scratch directory")
		})
		t.Run("scratch "+c, func(t *testing.T) {
			layers := filepath.Join(scratch(t, s), "contain"+c+"ers")
			r := s.Exec(t, s.RunArgs("-scratch", layers, "true")...)
			assert.Equal(t, 1, r.Status)
			assert.Regexp(t, "^"+regexp.QuoteMeta(s.Name+": "+layers)+`(/\d+-\d+)?`+regexp.QuoteMeta(why)+"$", r.Stderr)
			assert.NoDirExists(t, layers, "run made the scratch directory")
		})
		t.Run("relative, in a folder named with "+c, func(t *testing.T) {
			cwd := filepath.Join(scratch(t, s), "course"+c)
			require.NoError(t, os.Mkdir(cwd, 0o755))
			s.reachable(cwd + "/rootfs")
			copyRootfs(t, s, filepath.Join(cwd, "rootfs"))
			cmd := s.Command(t, "run", "-rootfs", "rootfs", "-scratch", s.Scratch, "true")
			if s.UsesUserns {
				_ = os.Lchown(filepath.Join(cwd, "rootfs"), Owner, Owner)
			}
			cmd.Dir = cwd
			r := Finish(t, cmd)
			assert.Equal(t, 1, r.Status)
			assert.Equal(t, s.Name+": "+filepath.Join(cwd, "rootfs")+why, r.Stderr)
		})
	}
}

// UpperLayerIsNoOtherUsersToRead runs a container that writes a file, in a
// scratch directory that anyone may enter and list (as mkdir makes one,
// 755), and checks that another user (not the container's root) can
// neither list the container's directories nor read the file, while it
// runs: nothing run makes for the container is open to others.
func UpperLayerIsNoOtherUsersToRead(t *testing.T, s *Step) {
	RequireRoot(t)
	dir := scratch(t, s)
	require.NoError(t, os.Chmod(dir, 0o755))
	p := Start(t, s.Command(t, s.RunArgs("-scratch", dir, "sh", "-c", "echo secret >/secret && echo ready && read line; exit 0")...))
	p.WaitFor(t, "ready")
	names := containerDirs(t, dir)
	require.Len(t, names, 1)
	container := filepath.Join(dir, names[0])
	require.FileExists(t, filepath.Join(container, "upper/secret"))
	const other = Owner + 1 // neither root nor the container's root
	as := func(argv ...string) (string, error) {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: other, Gid: other}}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := as("ls", dir)
	require.NoError(t, err, "another user cannot list the scratch directory itself, so the test proves nothing: %s", out)
	for _, d := range []string{container, container + "/upper", container + "/work", container + "/merged"} {
		out, err := as("ls", "-A", d)
		assert.Error(t, err, "another user lists %s: %s", d, out)
	}
	out, err = as("cat", filepath.Join(container, "upper/secret"))
	assert.Error(t, err, "another user reads the container's file in its upper layer")
	assert.NotContains(t, out, "secret\n")
	fi, err := os.Stat(container)
	require.NoError(t, err)
	assert.Zero(t, fi.Mode().Perm()&0o066, "the container's directory is mode %v: others may list it", fi.Mode())
	require.NoError(t, p.Stdin.Close())
	assert.Equal(t, 0, p.Wait(t).Status)
}

// RootChangesNoModeWhenItRemoves leaves in a scratch directory what a
// killed run left, with a mount in it, which no removal can take: root
// removes what it can, and changes the mode of nothing. Whoever owns such
// a directory could swap a folder of it for a link meanwhile, and root
// would change the mode of what the link leads to.
func RootChangesNoModeWhenItRemoves(t *testing.T, s *Step) {
	RequireRoot(t)
	dir := scratch(t, s)
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".containers-from-scratch"), nil, 0o600))
	left := filepath.Join(dir, "1-1") // named as runs name theirs, and locked by none
	busy := filepath.Join(left, "busy")
	require.NoError(t, os.MkdirAll(busy, 0o755))
	require.NoError(t, os.Chmod(left, 0o755))
	require.NoError(t, unix.Mount("tmpfs", busy, "tmpfs", 0, "mode=0755"))
	t.Cleanup(func() { _ = unix.Unmount(busy, unix.MNT_DETACH) })
	r := s.Exec(t, "run", "-rootfs", s.Rootfs, "-scratch", dir, "true")
	require.Equal(t, 0, r.Status, r.Stderr)
	for _, d := range []string{left, busy} {
		fi, err := os.Stat(d)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm(), "the mode of %s", d)
	}
}
