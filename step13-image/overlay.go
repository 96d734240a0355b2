// This file holds the overlays of step08: the directories where each
// container's changes go. run makes them with createOverlay and removes
// them when the container ends; the child mounts the overlay (main.go).

package main

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// defaultScratch is where the containers' upper and work directories go,
// one directory per container, named as its cgroup is. /var/lib is on the
// machine's own disk, as the root filesystem is in Lima's VM: not /tmp,
// which Debian 13 makes a tmpfs, in memory, nor a VM's shared folder.
var defaultScratch = scratchFor(os.Geteuid())

// scratchFor is root's default scratch directory, or that of a user who
// runs without sudo: with their own data, in XDG_DATA_HOME if it is an
// absolute path, else in ~/.local/share (the XDG base directories). The
// upper layer's file system must hold extended attributes, which the tmpfs
// of /run/user may not. A service, or env -i, may have no HOME: then the
// home is the one the password database gives; with none, there is no
// default, and createOverlay says to pass -scratch.
func scratchFor(uid int) string {
	if uid == 0 {
		return "/var/lib/containers-from-scratch/containers"
	}
	data := os.Getenv("XDG_DATA_HOME")
	if !filepath.IsAbs(data) {
		home := os.Getenv("HOME")
		if home == "" {
			if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
				home = u.HomeDir
			}
		}
		if home == "" {
			return ""
		}
		data = filepath.Join(home, ".local/share")
	}
	return filepath.Join(data, "containers-from-scratch/containers")
}

// scratchMarker marks a scratch directory as this program's: run removes
// what it finds in one, and must never do so in someone else's.
const scratchMarker = ".containers-from-scratch"

// An overlay is the directories of one container's overlay: upper holds
// its changes, work is the kernel's own scratch space for them, and merged
// is where the child mounts the overlay, its / to be.
type overlay struct {
	dir, upper, work, merged string
	lower                    string // the root filesystem, never written
	options                  string // of the overlay mount
	lock                     int    // run's lock on dir, while it lives
	ids                      idMap  // whose files it holds (ids.go)
}

// overlayDirs names the directories of the overlay of the container that
// run, process pid in /proc, starts.
func overlayDirs(c config, pid string) (overlay, error) {
	name, err := cgroupName(pid)
	if err != nil {
		return overlay{}, err
	}
	lower, err := filepath.Abs(cmp.Or(c.img.layout, c.rootfs))
	if err != nil {
		return overlay{}, err
	}
	layers, err := filepath.Abs(c.layers)
	if err != nil {
		return overlay{}, err
	}
	dir := filepath.Join(layers, name)
	// The kernel splits the options at commas, and the lower directories
	// (an overlay may have several) at colons; a backslash escapes them.
	for _, d := range []string{lower, dir} {
		if strings.ContainsAny(d, `,:\`) {
			return overlay{}, fmt.Errorf(`%s: this program takes no path with a comma, a colon or a backslash in it for an overlay`, d)
		}
	}
	ov := overlay{dir: dir, lower: lower, upper: filepath.Join(dir, "upper"),
		work: filepath.Join(dir, "work"), merged: filepath.Join(dir, "merged")}
	ov.options = overlayOptions(ov.lower, ov.upper, ov.work)
	return ov, nil
}

// overlayOptions are the options of the overlay mount. userxattr: in a
// user namespace, overlayfs keeps its marks (opaque directories,
// redirects) as user.overlay.* attributes, which a normal user may write,
// not trusted.overlay.*.
func overlayOptions(lower, upper, work string) string {
	return fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,userxattr", lower, upper, work)
}

// findOverlay names, for the child, the directories of the overlay that
// its run made.
func findOverlay(c config) (overlay, error) {
	parent, err := parentPID()
	if err != nil {
		return overlay{}, err
	}
	return overlayDirs(c, parent)
}

// createOverlay makes the directories of this run's container, after
// removing those of runs that were killed before they could remove theirs.
// It refuses a scratch directory that cannot hold an upper layer, and one
// that is not its own.
func createOverlay(c config, ids idMap) (overlay, error) {
	if c.layers == "" && defaultScratch == "" {
		return overlay{}, fmt.Errorf("-scratch has no default: no XDG_DATA_HOME or HOME, and no home for uid %d in the password database; pass -scratch DIR, a directory of yours", os.Geteuid())
	}
	if c.layers == "" {
		return overlay{}, usageError("-scratch is empty: give a directory for the containers' changes")
	}
	ov, err := overlayDirs(c, "self")
	if err != nil {
		return ov, err
	}
	scratch := filepath.Dir(ov.dir)
	if err := checkApart(scratch, ov.lower); err != nil {
		return ov, err
	}
	if err := checkUpperFS(scratch); err != nil {
		return ov, err
	}
	if err := claimScratch(scratch); err != nil {
		return ov, err
	}
	// The container's root mounts the overlay, and must be able to get to
	// the directories: through the scratch directory (and its parent, ours
	// by its name), but not to list them.
	for _, d := range []string{scratch, filepath.Dir(scratch)} {
		fi, err := os.Lstat(d) // a directory, not a symbolic link to one
		if os.Geteuid() == 0 && err == nil && fi.IsDir() && (d == scratch || filepath.Base(d) == "containers-from-scratch") {
			_ = os.Chmod(d, fi.Mode().Perm()|0o011)
		}
	}
	// Cleaned up, made and locked as the cgroups are (cgroup.go).
	removeLeftovers(scratch, ids.removeAll)
	ov.ids = ids
	if ov.lock, err = mkdirLocked(ov.dir); err != nil {
		return ov, err
	}
	// The container's files are no other user's to read: a -scratch that
	// others may get into (one made with mkdir, mode 755) must not lead
	// them to its upper layer.
	err = os.Chmod(ov.dir, 0o700)
	for _, d := range []string{ov.upper, ov.work, ov.merged} {
		if err == nil {
			err = os.Mkdir(d, 0o755)
		}
	}
	// The container's root writes the upper layer, and gets to it through
	// the container's directory: they must be theirs.
	for _, d := range []string{ov.dir, ov.upper, ov.work} {
		if err == nil {
			err = os.Lchown(d, ids.uids[0].HostID, ids.gids[0].HostID)
		}
	}
	if err == nil {
		err = createStore(c, ids)
	}
	if err != nil {
		ov.remove(false)
	}
	return ov, err
}

// checkApart refuses a scratch directory in the root filesystem (or the
// root filesystem itself), and one that holds it. An upper layer inside
// the lower one is undefined for overlayfs, and with -keep the changes
// would stay in the image, for every later container to see. A path names
// a directory, but a symbolic link or a bind mount gives it other names:
// what the kernel goes by is the (device, inode) pair, so compare those,
// along the scratch directory's real path (or that of its nearest parent
// that exists: the rest, run makes) up to /, and the other way round.
func checkApart(scratch, rootfs string) error {
	existing := scratch
	for !exists(existing) {
		existing = filepath.Dir(existing)
	}
	switch in, err := isIn(existing, rootfs); {
	case err != nil:
		return fmt.Errorf("-scratch %s: %w", scratch, err)
	case in:
		return fmt.Errorf("-scratch %s is inside the root filesystem %s: the container's changes would go into the image; give -scratch a directory outside it", scratch, rootfs)
	}
	if existing != scratch {
		return nil // nothing can be in a directory still to be made
	}
	switch in, err := isIn(rootfs, scratch); {
	case err != nil:
		return fmt.Errorf("-scratch %s: %w", scratch, err)
	case in:
		return fmt.Errorf("-scratch %s holds the root filesystem %s: run removes what it finds in -scratch; give -scratch a directory outside it", scratch, rootfs)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// isIn reports whether dir is outer, or lies somewhere below it.
func isIn(dir, outer string) (bool, error) {
	var want, st unix.Stat_t
	if err := unix.Stat(outer, &want); err != nil {
		return false, err
	}
	// Its real path, with no symbolic link in it: each parent is its own.
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false, err
	}
	for {
		if err := unix.Stat(dir, &st); err != nil {
			return false, err
		}
		if st.Dev == want.Dev && st.Ino == want.Ino {
			return true, nil
		}
		if dir == "/" {
			return false, nil
		}
		dir = filepath.Dir(dir)
	}
}

// checkUpperFS refuses a scratch directory on a file system that cannot
// hold an upper layer, or that of its nearest parent that exists.
func checkUpperFS(dir string) error {
	var st unix.Statfs_t
	for d := dir; ; d = filepath.Dir(d) {
		err := unix.Statfs(d, &st)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.ENOENT) || d == "/" {
			return fmt.Errorf("-scratch %s: %w", dir, err)
		}
	}
	for magic, fs := range map[int64]string{unix.OVERLAYFS_SUPER_MAGIC: "overlayfs", unix.NFS_SUPER_MAGIC: "NFS"} {
		if int64(st.Type) == magic {
			return fmt.Errorf("-scratch %s is on %s, which cannot hold an overlay's upper layer: give -scratch a directory on the machine's own disk (ext4, xfs, btrfs) or a tmpfs", dir, fs)
		}
	}
	return nil
}

// claimScratch makes the scratch directory, or makes sure that it is ours:
// it refuses one that is not empty and has no marker (the default aside,
// which is this program's by its name).
func claimScratch(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("-scratch: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("-scratch: %w", err)
	}
	for _, e := range entries {
		if e.Name() == scratchMarker {
			return nil
		}
	}
	if len(entries) > 0 && dir != defaultScratch {
		return fmt.Errorf("-scratch %s: not empty, and not a scratch directory of this program's: name a new or empty directory", dir)
	}
	// O_EXCL: of two runs that both found it empty, one makes the marker.
	f, err := os.OpenFile(filepath.Join(dir, scratchMarker), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, err = f.WriteString("the containers' changes while they run: see step13-image\n")
		err = errors.Join(err, f.Close())
	}
	if errors.Is(err, os.ErrExist) {
		err = nil
	}
	return err
}

// remove removes the container's directories, its changes with them; with
// keep, it first moves the changes, the upper directory, to kept/ in the
// scratch directory, and says where. The overlay itself was mounted in the
// container's mount namespace only, and went away with it.
func (ov overlay) remove(keep bool) {
	if ov.dir == "" {
		return
	}
	if keep {
		kept := filepath.Join(filepath.Dir(ov.dir), "kept", filepath.Base(ov.dir))
		err := os.MkdirAll(filepath.Dir(kept), 0o700)
		if err == nil {
			err = os.Rename(ov.upper, kept)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: -keep: %v: the changes stay in %s until the next run\n", prog, err, ov.upper)
			return
		}
		fmt.Fprintf(os.Stderr, "%s: the container's changes are kept in %s\n", prog, kept)
	}
	if err := ov.ids.removeAll(ov.dir); err != nil {
		fmt.Fprintf(os.Stderr, "%s: removing the container's changes: %v\n", prog, err)
	}
	if ov.lock > 0 {
		unix.Close(ov.lock)
	}
}

// overlayError says what the overlay mount's errors mean here.
func overlayError(err error) error {
	switch {
	case errors.Is(err, unix.ENODEV):
		return fmt.Errorf("mount overlay: %w: this kernel has no overlay file system (modprobe overlay)", err)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("mount overlay: %w: the upper directory's file system cannot hold an upper layer, or the layers do not fit together (dmesg says which), or the kernel, older than 5.11, knows no userxattr", err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("mount overlay: %w: this kernel mounts no overlay in a user namespace: Linux 5.11 and later do", err)
	case errors.Is(err, unix.EACCES):
		return fmt.Errorf("mount overlay: %w: the container's root, you on the host, cannot get to the root filesystem or the -scratch directory", err)
	}
	return fmt.Errorf("mount overlay: %w", err)
}

// removeAll removes dir and all in it, also what the container made read
// only (chmod 555 on a directory), which without sudo run may delete only
// once it has made it writable again: it owns it, as the container's root.
//
// Root removes them whatever their modes, and changes none: whoever owns
// the directory may swap one of its folders for a symbolic link while it
// is walked, and root would change the mode of what the link leads to.
// A user changes them through no link at all (RESOLVE_NO_SYMLINKS).
func removeAll(dir string) error {
	err := os.RemoveAll(dir)
	if err == nil || os.Geteuid() == 0 {
		return err
	}
	top, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(top)
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, path)
		how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS}
		if err == nil && d.IsDir() {
			if fd, err := unix.Openat2(top, rel, &how); err == nil {
				_ = unix.Fchmod(fd, 0o700)
				unix.Close(fd)
			}
		}
		return nil
	})
	return os.RemoveAll(dir)
}
