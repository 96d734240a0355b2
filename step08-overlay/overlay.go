// This file holds the overlays of step08: the directories where each
// container's changes go. run makes them with createOverlay and removes
// them when the container ends; the child mounts the overlay (main.go).

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// defaultScratch is where the containers' upper and work directories go,
// one directory per container, named as its cgroup is. /var/lib is on the
// machine's own disk, as the root filesystem is in the VMs: not /tmp, which
// Debian 13 makes a tmpfs, in memory, nor a VM's shared folder, which
// cannot be an upper layer.
const defaultScratch = "/var/lib/containers-from-scratch/containers"

// An overlay is the directories of one container's overlay: upper holds
// its changes, work is the kernel's own scratch space for them, and merged
// is where the child mounts the overlay, its / to be.
type overlay struct {
	dir, upper, work, merged string
	lower                    string // the root filesystem, never written
	options                  string // of the overlay mount
}

// overlayDirs names the directories of the overlay of the container that
// run, process pid in /proc, starts.
func overlayDirs(c config, pid string) (overlay, error) {
	name, err := cgroupName(pid)
	if err != nil {
		return overlay{}, err
	}
	lower, err := filepath.Abs(c.rootfs)
	if err != nil {
		return overlay{}, err
	}
	dir := filepath.Join(c.layers, name)
	// The kernel splits the options at commas, and the lower directories
	// (an overlay may have several) at colons.
	for _, d := range []string{lower, dir} {
		if strings.ContainsAny(d, ",:") {
			return overlay{}, fmt.Errorf("%s: an overlay cannot use a path with a comma or a colon in it", d)
		}
	}
	ov := overlay{dir: dir, lower: lower, upper: filepath.Join(dir, "upper"),
		work: filepath.Join(dir, "work"), merged: filepath.Join(dir, "merged")}
	ov.options = fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", ov.lower, ov.upper, ov.work)
	return ov, nil
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
// It refuses a scratch directory that cannot hold an upper layer.
func createOverlay(c config) (overlay, error) {
	ov, err := overlayDirs(c, "self")
	if err != nil {
		return ov, err
	}
	if err := claimScratch(c.layers); err != nil {
		return ov, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(c.layers, &st); err != nil {
		return ov, err
	}
	for magic, fs := range map[int64]string{unix.OVERLAYFS_SUPER_MAGIC: "overlayfs", unix.NFS_SUPER_MAGIC: "NFS"} {
		if int64(st.Type) == magic {
			return ov, fmt.Errorf("-scratch %s is on %s, which cannot hold an overlay's upper layer: give -scratch a directory on the machine's own disk (ext4, xfs, btrfs) or a tmpfs", c.layers, fs)
		}
	}
	removeLeftovers(c.layers, os.RemoveAll)
	for _, d := range []string{ov.dir, ov.upper, ov.work, ov.merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			ov.remove(false)
			return ov, err
		}
	}
	return ov, nil
}

// scratchMarker marks a scratch directory as ours: run removes what it
// finds in one, and must never do so in a directory of someone else's.
const scratchMarker = ".containers-from-scratch"

// claimScratch makes the scratch directory, or makes sure that it is ours:
// it refuses one that is not empty and has no marker.
func claimScratch(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("-scratch: %w", err)
	}
	marker := filepath.Join(dir, scratchMarker)
	if _, err := os.Lstat(marker); err == nil {
		return nil
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) > 0 {
		return fmt.Errorf("-scratch %s: not empty, and not a scratch directory of this program's: name a new or empty directory", dir)
	}
	return os.WriteFile(marker, []byte("the containers' changes while they run: see step08-overlay\n"), 0o600)
}

// remove removes the container's directories, its changes with them, or,
// with keep, moves its changes, the upper directory, out of their way first
// (to kept, beside the scratch directory), and says where. The overlay
// itself was mounted in the container's mount namespace only, and went
// away with it.
func (ov overlay) remove(keep bool) {
	if ov.dir == "" {
		return
	}
	if keep {
		kept := filepath.Join(filepath.Dir(filepath.Dir(ov.dir)), "kept", filepath.Base(ov.dir))
		err := os.MkdirAll(filepath.Dir(kept), 0o700)
		if err == nil {
			err = os.Rename(ov.upper, kept)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: -keep: %v\n", prog, err)
		} else {
			fmt.Fprintf(os.Stderr, "%s: the container's changes are kept in %s\n", prog, kept)
		}
	}
	_ = os.RemoveAll(ov.dir)
}

// overlayError says what the overlay mount's errors mean here.
func overlayError(err error) error {
	switch {
	case errors.Is(err, unix.ENODEV):
		return fmt.Errorf("mount overlay: %w: this kernel has no overlay file system (modprobe overlay)", err)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("mount overlay: %w: the upper and work directories must be on one file system that can hold an upper layer (see -scratch)", err)
	}
	return fmt.Errorf("mount overlay: %w", err)
}
