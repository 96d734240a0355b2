// This file resolves paths inside the image, as the container will. Until
// pivot_root the child stands on the host's /: the image's symbolic links
// and its ".." are followed as the container would follow them, and never
// lead out of it onto the host's files.

package main

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// openInRoot opens path, relative to the working directory, the
// container's root to be, as the container will see it once that is its
// /: openat2's RESOLVE_IN_ROOT makes an absolute link, or a ".." that
// would climb out, stop at that root, and RESOLVE_NO_MAGICLINKS follows no
// /proc/PID/root-like link, which would lead to the host's / until
// pivot_root. A plain open or mkdir would follow an image's "dev ->
// /home/ada" onto the host: the bug behind several runc CVEs.
func openInRoot(path string, flags int) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	if flags&unix.O_CREAT != 0 {
		how.Mode = 0o644 // openat2 takes a mode with O_CREAT only
	}
	// A ".." walked while anything on the machine is renamed or mounted
	// makes the kernel unsure it stayed inside: EAGAIN, to be tried again.
	fd, err := unix.Openat2(unix.AT_FDCWD, path, &how)
	for try := 0; errors.Is(err, unix.EAGAIN) && try < 100; try++ {
		fd, err = unix.Openat2(unix.AT_FDCWD, path, &how)
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
		err = fmt.Errorf("%w in the root filesystem: a link there that leads out through /proc is refused", err)
	}
	return fd, err
}

// mountInRoot mounts source on target, a path inside the container's root
// (openInRoot). mount(2) takes a path, not a descriptor: the descriptor's
// name in /proc/self/fd is a path that leads to the very file it holds,
// whatever happens to the names on the way (as runc mounts).
func mountInRoot(source, target, fstype string, flags uintptr) error {
	fd, err := openInRoot(target, unix.O_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Mount(source, fmt.Sprintf("/proc/self/fd/%d", fd), fstype, flags, "")
}
