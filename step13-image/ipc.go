// This file holds the IPC namespace's one mount: the container's POSIX
// message queues, as files in /dev/mqueue.

package main

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// mountMessageQueues mounts an mqueue file system on the container's
// /dev/mqueue, inside the working directory (the container's root, before
// pivot_root: inroot.go). mq_open(3) needs no mount; the mount shows the
// queues of the IPC namespace that made it as files, to list, read (a
// queue's size and who is told of a message) and remove, as on the host.
func mountMessageQueues() error {
	dev, err := openInRoot("dev", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open /dev: %w", err)
	}
	defer unix.Close(dev)
	// mkdirat under a descriptor of /dev follows no link of the image's.
	if err := unix.Mkdirat(dev, "mqueue", 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("make /dev/mqueue: %w", err)
	}
	// The mount goes on that directory, through its descriptor, or nowhere:
	// a link at /dev/mqueue is not followed (ENOTDIR), not even inside.
	fd, err := unix.Openat(dev, "mqueue", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == nil {
		defer unix.Close(fd)
		err = unix.Mount("mqueue", fmt.Sprintf("/proc/self/fd/%d", fd), "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	}
	if err != nil {
		return fmt.Errorf("mount mqueue on /dev/mqueue: %w", err)
	}
	return nil
}
