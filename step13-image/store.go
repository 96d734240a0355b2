// This file holds the layer store: each layer of an image unpacked once,
// into a directory named by the digest of what it unpacks, its tar, which
// every container of the image then stacks in its overlay as a lower
// layer, never written. It is the step08 exercise of lowerdir=A:B, for
// real.

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// storeDir is the layer store of the containers whose ids map as key
// says: in the scratch directory, beside the containers' own. A layer
// unpacked with one map holds owners that another map shows as other ids.
func storeDir(scratch, key string) string {
	return filepath.Join(scratch, "layers", key)
}

// createStore makes the layer store for the image's containers, for run:
// its root unpacks the layers there, as the owner on the host.
func createStore(c config, ids idMap) error {
	if c.image == "" {
		return nil
	}
	if ids.missing != "" {
		leftOut("ids beyond root", ids.missing+": files of other owners belong to root, and chown or apt fail")
	}
	scratch, err := filepath.Abs(c.layers)
	if err != nil {
		return err
	}
	// layers/, through which the container's root gets to its own store,
	// MAP/ (storeDir). Each is made, or opened, as a directory that is not
	// a link: with sudo, a link there would have root change what it
	// leads to.
	store := storeDir(scratch, ids.key())
	for _, d := range []struct {
		path     string
		mode     uint32
		uid, gid int
	}{{filepath.Dir(store), 0o711, os.Geteuid(), os.Getegid()}, {store, 0o700, ids.uids[0].HostID, ids.gids[0].HostID}} {
		if err := unix.Mkdir(d.path, d.mode); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("the layer store: %w", err)
		}
		fd, err := unix.Open(d.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("the layer store %s: %w", d.path, err)
		}
		err = errors.Join(unix.Fchmod(fd, d.mode), unix.Fchown(fd, d.uid, d.gid))
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("the layer store %s: %w", d.path, err)
		}
	}
	return nil
}

// stackLayers unpacks the layers of the image that the store has not yet,
// then has the overlay stack them all, topmost first as overlayfs takes
// them (manifests list them bottom first), under the container's upper
// layer. The child does it, root in its user namespace: the files keep
// the owners the image gives them, as the container's ids. Given a root
// filesystem, not an image, there is nothing to do.
func (ov *overlay) stackLayers(img image) error {
	if img.layout == "" {
		return nil
	}
	ids, err := mappedIDs()
	if err != nil {
		return err
	}
	store := storeDir(filepath.Dir(ov.dir), ids.key())
	lower := make([]string, len(img.layers))
	for i := range img.layers {
		// Named by its tar's digest, the config's diff_id, not the blob's:
		// one blob could be read two ways (as a tar, or as gzip), and an
		// image whose layer is another's blob must not stack what the
		// other unpacked from it.
		hex := strings.TrimPrefix(img.diffIDs[i], "sha256:")
		if !exists(filepath.Join(store, hex)) {
			if err := unpackOnce(img, i, filepath.Join(store, hex), ov.dir); err != nil {
				return err
			}
		}
		lower[len(lower)-1-i] = hex
	}
	// A layer may come twice (BuildKit's empty layer does), and overlayfs
	// takes a directory once: its topmost place is the one that counts.
	seen := map[string]bool{}
	lower = slices.DeleteFunc(lower, func(d string) bool { defer func() { seen[d] = true }(); return seen[d] })
	// The layers are named from the store, the working directory of the
	// mount: the kernel takes a page of options, 4096 bytes, and a digest
	// is 64 of them, a whole path three times that.
	ov.options = overlayOptions(strings.Join(lower, ":"), ov.upper, ov.work)
	if len(ov.options) >= 4096 {
		return fmt.Errorf("%s has %d layers: too many for the options of one overlay mount", img.layout, len(lower))
	}
	return unix.Chdir(store)
}

// unpackOnce unpacks the image's layer i into dir. It unpacks into the
// container's own directory first, and renames the layer into the store
// only once it is whole and its bytes have matched their digests, the
// blob's and the tar's: a store never holds half a layer, or another's,
// even when run is killed (the container's directory goes, with what is
// in it). Of two containers that unpack the same layer at once, the first
// to rename wins; the other drops its own.
func unpackOnce(img image, i int, dir, container string) error {
	layer := img.layers[i]
	tmp := filepath.Join(container, "unpack-"+filepath.Base(dir))
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	defer removeAll(tmp)
	blob, err := img.openBlob(layer)
	if err != nil {
		return err
	}
	defer blob.Close()
	uncompressed, err := layerReader(blob, layer.MediaType)
	if err != nil {
		return err
	}
	tarSum := sha256.New()
	tarStream := io.TeeReader(uncompressed, tarSum)
	stats, err := unpackLayer(tarStream, tmp)
	if err == nil {
		_, err = io.Copy(io.Discard, tarStream) // what follows the tar's end
	}
	if err == nil {
		err = blob.Verify()
	}
	if got := "sha256:" + hex.EncodeToString(tarSum.Sum(nil)); err == nil && got != img.diffIDs[i] {
		err = fmt.Errorf("unpacks a tar of digest %s, where the config says %s", got, img.diffIDs[i])
	}
	if err != nil {
		return fmt.Errorf("%s: layer %s: %w", img.layout, layer.Digest, err)
	}
	if stats.devices > 0 {
		leftOut(fmt.Sprintf("%d device files of layer %s", stats.devices, short(layer.Digest)), "a container gets its devices from run, in /dev")
	}
	if stats.owners > 0 {
		leftOut(fmt.Sprintf("the owners of %d files of layer %s", stats.owners, short(layer.Digest)), "their ids are not mapped (no subordinate ids): they belong to root")
	}
	if stats.xattrs > 0 {
		leftOut(fmt.Sprintf("%d extended attributes of layer %s", stats.xattrs, short(layer.Digest)), "the kernel allows them to the host's root only")
	}
	// On the disk before the store shows it: after a crash, the store
	// holds whole layers only.
	if err := syncDir(tmp); err != nil {
		return err
	}
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
		return nil // another container was first
	}
	return err
}

// short is a digest as people quote it: its first 12 hex digits.
func short(digest string) string {
	hex := strings.TrimPrefix(digest, "sha256:")
	return hex[:min(12, len(hex))]
}

// syncDir writes what is cached of dir's file system to the disk.
func syncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}
