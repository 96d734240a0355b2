// This file unpacks one layer of an image: a tar stream, already
// decompressed, into an empty directory that becomes one lower layer of
// the container's overlay. It runs in the container's child before
// pivot_root, as root of a user namespace, with the host's whole
// filesystem in view. A layer comes from whoever built the image: a name
// such as "../../etc/passwd", or a symbolic link "esc -> /" followed by an
// entry "esc/etc/passwd", would write on the host if the tar were unpacked
// with plain open and mkdir (how several runtimes' CVEs happened). So every
// path is resolved inside the layer with openat2(RESOLVE_IN_ROOT), as the
// container will resolve it, and the last name of each entry is acted on
// with *at calls that never follow it.

package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// layerStats counts what unpacking left out.
type layerStats struct {
	devices int // device files, never made (a container gets /dev from run)
	owners  int // files whose owner has no id in the container's user namespace: kept as its root
	xattrs  int // extended attributes the kernel refused (trusted.*, most security.* without the host's root)
}

// The names by which a layer deletes files of the layers below it
// (image-spec layer.md). Overlayfs has marks of its own for the same
// thing: a character device 0/0 for a deleted name, and the extended
// attribute user.overlay.opaque ("user." because the overlay is mounted
// with userxattr, which a user namespace may do) for a directory whose
// lower contents are all hidden.
const (
	whiteoutPrefix = ".wh."
	opaqueMark     = ".wh..wh..opq"
	aufsMeta       = ".wh..wh." // AUFS's own bookkeeping (.wh..wh.plnk ...): never content
	opaqueXattr    = "user.overlay.opaque"
)

// unpacker holds what one layer's unpacking needs across entries.
type unpacker struct {
	root     int                        // the layer directory (O_PATH): every path is resolved under it
	stats    layerStats                 // what was left out
	written  map[string]bool            // names this layer made: a whiteout never hides them
	dirTimes map[string][]unix.Timespec // directories' times, set last: making children changes them
}

// unpackLayer unpacks the layer tarStream into dir, an empty directory.
// On error the caller throws dir away (it unpacks into a temporary
// directory and renames it once complete).
func unpackLayer(tarStream io.Reader, dir string) (layerStats, error) {
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return layerStats{}, fmt.Errorf("open the layer directory %s: %w", dir, err)
	}
	defer unix.Close(root)
	u := &unpacker{root: root, written: map[string]bool{}, dirTimes: map[string][]unix.Timespec{}}
	tr := tar.NewReader(tarStream)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return u.stats, fmt.Errorf("the layer is not a whole tar archive: %w", err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return u.stats, fmt.Errorf("layer entry %q %w", hdr.Name, err)
		}
	}
	return u.stats, u.setDirTimes()
}

// localName returns a tar name cleaned and relative to the layer's root,
// or an error if it is absolute or has a ".." component. Resolving in root
// would contain such a name anyway, but a layer that names files outside
// itself is broken or hostile: refusing it says so, where silently
// unpacking it somewhere else would hide the problem.
func localName(name string) (string, error) {
	name = strings.TrimPrefix(name, "./")
	if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") ||
		strings.HasSuffix(name, "/..") || strings.Contains(name, "/../") {
		return "", errors.New("leads out of the layer: refused")
	}
	return path.Clean("./" + name), nil // "" and "./" are the layer's root, "."
}

// entry applies one tar entry. Its errors complete the line "layer entry
// NAME ...".
func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // PAX records for the whole archive, under any name: nothing to make
	}
	name, err := localName(hdr.Name)
	if err != nil || name == "." {
		return err // the root itself is the directory the caller made
	}
	dir, base := path.Dir(name), path.Base(name)
	switch {
	case base == opaqueMark:
		return u.opaque(dir)
	case strings.HasPrefix(base, aufsMeta):
		return nil
	case strings.HasPrefix(base, whiteoutPrefix):
		return u.whiteout(hdr, dir, strings.TrimPrefix(base, whiteoutPrefix))
	}
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock:
		// Making a device needs CAP_MKNOD in the host's namespace, which a
		// user namespace never has; run binds the container's /dev anyway.
		u.stats.devices++
		return nil
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
	default:
		return fmt.Errorf("has type %q, which a layer may not hold: refused", hdr.Typeflag)
	}
	// A sparse file's holes would be written out as zeros: a few bytes of
	// layer could fill the disk. No image builder makes them.
	for record := range hdr.PAXRecords {
		if strings.HasPrefix(record, "GNU.sparse.") {
			return errors.New("is a sparse file, which this program does not unpack: refused")
		}
	}
	parent, err := u.openDir(dir)
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	if hdr.Typeflag == tar.TypeLink {
		if err := u.link(parent, base, hdr.Linkname); err != nil {
			return err
		}
		u.written[name] = true
		return nil
	}
	if err := u.make(parent, base, hdr, r); err != nil {
		return fmt.Errorf("could not be written: %w", err)
	}
	u.written[name] = true
	if hdr.Typeflag == tar.TypeDir {
		u.dirTimes[name] = headerTimes(hdr)
	} else {
		delete(u.dirTimes, name)
	}
	return nil
}

// make creates parent/base as the header says and applies its attributes.
// An older entry of the same name goes first (image-spec: both
// directories, the directory stays and takes the new attributes). A
// directory that replaces a whiteout of this layer is made opaque: the
// layer said the lower one is gone, so its children must not show through.
func (u *unpacker) make(parent int, base string, hdr *tar.Header, r io.Reader) error {
	var old unix.Stat_t
	err := unix.Fstatat(parent, base, &old, unix.AT_SYMLINK_NOFOLLOW)
	exists := err == nil
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	keepDir := exists && hdr.Typeflag == tar.TypeDir && old.Mode&unix.S_IFMT == unix.S_IFDIR
	if exists && !keepDir {
		if err := removeAt(parent, base); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if !keepDir {
			err = unix.Mkdirat(parent, base, 0o700)
		}
		if err == nil && exists && isWhiteout(&old) {
			err = markOpaque(parent, base)
		}
	case tar.TypeSymlink:
		// The target is stored as it is, absolute or not: it means a path
		// in the container, resolved by the kernel once / is the image.
		err = unix.Symlinkat(hdr.Linkname, parent, base)
	case tar.TypeFifo:
		err = unix.Mknodat(parent, base, unix.S_IFIFO|0o600, 0)
	default:
		err = writeFileAt(parent, base, r)
	}
	if err != nil {
		return err
	}
	return u.setAttrs(parent, base, hdr)
}

// writeFileAt copies a regular file's content. O_EXCL|O_NOFOLLOW: the name
// was just cleared, and a link planted there is never written through.
func writeFileAt(parent int, base string, r io.Reader) error {
	fd, err := unix.Openat(parent, base, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), base)
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// setAttrs applies owner, mode, extended attributes and times, in that
// order: chown clears the setuid and setgid bits and a file's
// capabilities, so they come after it.
func (u *unpacker) setAttrs(parent int, base string, hdr *tar.Header) error {
	if err := u.chown(parent, base, hdr); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeSymlink { // a link's own mode means nothing on Linux
		if err := chmodAt(parent, base, uint32(hdr.Mode)&0o7777); err != nil {
			return err
		}
	}
	if err := u.setXattrs(parent, base, hdr.PAXRecords); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeDir {
		return nil // setDirTimes, at the end
	}
	return unix.UtimesNanoAt(parent, base, headerTimes(hdr), unix.AT_SYMLINK_NOFOLLOW)
}

// chown gives parent/base the header's owner. In a user namespace an id
// with no mapping there is EINVAL: the file stays the namespace root's,
// and is counted, rather than the whole image refused.
func (u *unpacker) chown(parent int, base string, hdr *tar.Header) error {
	err := unix.Fchownat(parent, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.EINVAL) {
		u.stats.owners++
		return nil
	}
	return err
}

// chmodAt sets the mode of parent/base, never through a link: fchmodat
// follows the last name (its no-follow flag needs Linux 6.6), so the file
// is opened O_PATH|O_NOFOLLOW and changed through its descriptor's name in
// /proc, which leads to the very file it holds.
func chmodAt(parent int, base string, mode uint32) error {
	fd, err := unix.Openat(parent, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return fmt.Errorf("chmod %s: a symbolic link", base)
	}
	return unix.Chmod(procFdPath(fd), mode)
}

// setXattrs sets the extended attributes that PAX records carry as
// SCHILY.xattr.NAME. Overlayfs's own attributes are dropped: a layer that
// set user.overlay.redirect or .metacopy itself could make the overlay
// show another layer's files under its names.
func (u *unpacker) setXattrs(parent int, base string, records map[string]string) error {
	var names []string
	for k := range records {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok &&
			!strings.HasPrefix(name, "trusted.overlay.") && !strings.HasPrefix(name, "user.overlay.") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		// lsetxattr acts on base itself, never on what a link there names.
		err := unix.Lsetxattr(procFdPath(parent)+"/"+base, name, []byte(records["SCHILY.xattr."+name]), 0)
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EOPNOTSUPP) {
			u.stats.xattrs++ // trusted.* needs the host's root; user.* on a link is refused
		} else if err != nil {
			return fmt.Errorf("xattr %s: %w", name, err)
		}
	}
	return nil
}

// link makes parent/base a hard link to linkname, a file of this layer.
// The target is resolved in the layer's root too, its last name not
// followed; linkat through /proc/self/fd/N links the very file found
// (AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH of the host).
func (u *unpacker) link(parent int, base, linkname string) error {
	refused := fmt.Errorf("links to %q, which is not a file of this layer: refused", linkname)
	target, err := localName(linkname)
	if err != nil || target == "." {
		return refused
	}
	fd, err := u.open(target, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return refused
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return refused
	}
	err = removeAt(parent, base)
	if err == nil || errors.Is(err, unix.ENOENT) {
		err = unix.Linkat(unix.AT_FDCWD, procFdPath(fd), parent, base, unix.AT_SYMLINK_FOLLOW)
	}
	if err != nil {
		return fmt.Errorf("could not be written: %w", err)
	}
	return nil
}

// whiteout marks name in dir deleted from the layers below: overlayfs's
// whiteout, a character device 0/0, which needs no privilege since Linux
// 5.8. A whiteout only hides lower layers (image-spec), so a name this
// layer already wrote stays; an entry of that name after the whiteout
// replaces it (make).
func (u *unpacker) whiteout(hdr *tar.Header, dir, name string) error {
	if name == "" || name == "." || name == ".." {
		return errors.New("is not a whiteout of a name: refused") // ".wh.." would delete dir itself
	}
	if u.written[path.Join(dir, name)] {
		return nil
	}
	parent, err := u.openDir(dir)
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	err = removeAt(parent, name)
	if err == nil || errors.Is(err, unix.ENOENT) {
		err = unix.Mknodat(parent, name, unix.S_IFCHR, 0)
	}
	if err == nil {
		err = u.chown(parent, name, hdr)
	}
	if err != nil {
		return fmt.Errorf("could not be written: %w", err)
	}
	return nil
}

// opaque marks dir opaque, whether its other entries came before or after
// the mark (image-spec): its children in this layer stay, its lower ones
// are hidden.
func (u *unpacker) opaque(dir string) error {
	fd, err := u.openDir(dir)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	u.written[dir] = true
	if err := unix.Setxattr(procFdPath(fd), opaqueXattr, []byte("y"), 0); err != nil {
		return fmt.Errorf("could not be made opaque: %w", err)
	}
	return nil
}

// openDir opens dir, a directory of the layer, resolved in its root,
// making each missing component in the one resolved before it. A
// whiteout of this layer in the way becomes an opaque directory: the
// layer deleted the lower one and then put new files under that name.
func (u *unpacker) openDir(dir string) (int, error) {
	if fd, err := u.open(dir, unix.O_PATH|unix.O_DIRECTORY); err == nil {
		return fd, nil // there already: the usual case, one call
	}
	cur, err := u.open(".", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil || dir == "." {
		return cur, err
	}
	prefix := ""
	for _, c := range strings.Split(dir, "/") {
		prefix = path.Join(prefix, c)
		next, err := u.open(prefix, unix.O_PATH|unix.O_DIRECTORY)
		var st unix.Stat_t
		overWhiteout := errors.Is(err, unix.ENOTDIR) &&
			unix.Fstatat(cur, c, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && isWhiteout(&st)
		if errors.Is(err, unix.ENOENT) || overWhiteout {
			next, err = u.mkdir(cur, c, overWhiteout)
			u.written[prefix] = true
		}
		unix.Close(cur)
		if errors.Is(err, unix.EEXIST) { // ENOENT, yet a name there: a link
			return -1, fmt.Errorf("goes through %s, a link to nothing in the layer: refused", prefix)
		}
		if err != nil {
			return -1, fmt.Errorf("could not be written: directory %s: %w", prefix, err)
		}
		cur = next
	}
	return cur, nil
}

// mkdir makes a directory the tar did not name. Its mode is set after
// mkdirat, which the process's umask would otherwise narrow.
func (u *unpacker) mkdir(parent int, name string, overWhiteout bool) (int, error) {
	if overWhiteout {
		if err := unix.Unlinkat(parent, name, 0); err != nil {
			return -1, err
		}
	}
	if err := unix.Mkdirat(parent, name, 0o755); err != nil {
		return -1, err
	}
	if err := chmodAt(parent, name, 0o755); err != nil {
		return -1, err
	}
	if overWhiteout {
		if err := markOpaque(parent, name); err != nil {
			return -1, err
		}
	}
	return unix.Openat(parent, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// open resolves name in the layer as the container will resolve it in its
// root: an absolute link, or a ".." that would climb out, stops at the
// layer's root, and RESOLVE_NO_MAGICLINKS follows no /proc/PID/root-like
// link, which would lead to the host's /.
func (u *unpacker) open(name string, flags int) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := unix.Openat2(u.root, name, &how)
	for try := 0; errors.Is(err, unix.EAGAIN) && try < 100; try++ {
		fd, err = unix.Openat2(u.root, name, &how) // a rename on the machine during a ".."
	}
	return fd, err
}

// setDirTimes gives the directories their times, now that no child will
// be made in them any more.
func (u *unpacker) setDirTimes() error {
	for name, ts := range u.dirTimes {
		fd, err := u.open(name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		if err != nil {
			continue // replaced by a later entry
		}
		err = unix.UtimesNanoAt(unix.AT_FDCWD, procFdPath(fd), ts, 0)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("layer directory %q: times: %w", name, err)
		}
	}
	return nil
}

// removeAt removes parent/name, a directory with its contents, never
// following a link: unlinkat refuses a directory with EISDIR, then its
// children go first.
func removeAt(parent int, name string) error {
	err := unix.Unlinkat(parent, name, 0)
	if !errors.Is(err, unix.EISDIR) {
		return err
	}
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	children, err := d.Readdirnames(-1)
	for _, c := range children {
		if err == nil {
			err = removeAt(fd, c)
		}
	}
	d.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(parent, name, unix.AT_REMOVEDIR)
}

// markOpaque sets overlayfs's opaque mark on the directory parent/name.
func markOpaque(parent int, name string) error {
	return unix.Lsetxattr(procFdPath(parent)+"/"+name, opaqueXattr, []byte("y"), 0)
}

// isWhiteout says whether st is overlayfs's whiteout: this layer makes no
// other character device.
func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// headerTimes returns the header's access and modification times for utimensat.
func headerTimes(hdr *tar.Header) []unix.Timespec {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
}

// procFdPath names descriptor fd in /proc: a path that leads to the file it
// holds, whatever happened to the names on the way.
func procFdPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }
