// This file holds the user namespace of step10: whose the container's root
// is, what is left out without the host's root, and the host's device files
// that a container in a user namespace needs.

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// owner is the user on the host who is root in the container.
type owner struct{ uid, gid int }

// rootfsOwner returns the owner of the root filesystem, who becomes the
// container's root. It refuses root, and, without sudo, anyone but the
// user who runs it: only root may map another user.
func rootfsOwner(dir string) (owner, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return owner{}, err
	}
	abs, _ := filepath.Abs(dir)
	o := owner{int(st.Uid), int(st.Gid)}
	if os.Geteuid() != 0 {
		o.gid = os.Getegid() // the only group a normal user may map
	}
	switch {
	case o.uid == 0 || o.gid == 0:
		return o, fmt.Errorf("%s belongs to root (its user or its group), who would then be the container's root: build the root filesystem as yourself (go run ./mkrootfs, without sudo), or give it to yourself: sudo chown -R $USER: %s", abs, abs)
	case os.Geteuid() != 0 && o.uid != os.Geteuid():
		return o, fmt.Errorf("%s belongs to uid %d, not to you: without sudo, the container's root can only be you", abs, o.uid)
	}
	return o, nil
}

// leftOut says, in one line, what run leaves out without the host's root.
func leftOut(what, why string) {
	fmt.Fprintf(os.Stderr, "%s: %s left out: %s\n", prog, what, why)
}

// devices are the device files that programs expect, bound from the
// host's /dev, as real runtimes do.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// bindDevices binds the host's device files onto the container's /dev,
// resolved inside the working directory (the container's root, before
// pivot_root: inroot.go). A device file opens only on a mount without
// "nodev", which a mount made in a user namespace always has; a bind mount
// of the host's /dev keeps the host's flags.
func bindDevices() error {
	// mkdirat makes /dev where the image has none, and follows no link.
	if err := unix.Mkdirat(unix.AT_FDCWD, "dev", 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("make /dev: %w", err)
	}
	for _, name := range devices {
		// A bind mount needs a file to cover: O_CREAT makes a missing one.
		// One that is there does, also a /dev/null that mkrootfs made as
		// root, which may not be opened here (nodev: EACCES).
		fd, err := openInRoot("dev/"+name, unix.O_CREAT|unix.O_RDONLY|unix.O_NONBLOCK)
		if err == nil {
			unix.Close(fd)
		} else if !errors.Is(err, unix.EACCES) {
			return fmt.Errorf("make /dev/%s: %w", name, err)
		}
		if err := mountInRoot("/dev/"+name, "dev/"+name, "", unix.MS_BIND); err != nil {
			return fmt.Errorf("bind the host's /dev/%s: %w", name, err)
		}
	}
	return nil
}

// restrictions are the settings with which a machine forbids a normal
// user's user namespaces, or their powers, and how to lift each.
var restrictions = []struct{ file, forbids, fix string }{
	{"/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1",
		"Ubuntu's AppArmor gives a normal user's user namespaces no powers (kernel.apparmor_restrict_unprivileged_userns=1): run with sudo, or allow them: sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0"},
	{"/proc/sys/kernel/unprivileged_userns_clone", "0",
		"this kernel forbids normal users user namespaces (kernel.unprivileged_userns_clone=0): run with sudo, or allow them: sudo sysctl kernel.unprivileged_userns_clone=1"},
	{"/proc/sys/user/max_user_namespaces", "0",
		"this machine allows no user namespaces (user.max_user_namespaces=0): sudo sysctl user.max_user_namespaces=15000"},
}

// usernsError explains a failure to create the user namespace, or to use
// its powers, by the setting that forbids it, if one does.
func usernsError(err error) error {
	if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.ENOSPC) {
		return err
	}
	for _, r := range restrictions {
		if value, e := os.ReadFile(r.file); e == nil && strings.TrimSpace(string(value)) == r.forbids {
			return fmt.Errorf("%w: %s", err, r.fix)
		}
	}
	return err
}

// procError explains a failure to mount the container's /proc: in a user
// namespace the kernel allows a new procfs only where the host's is fully
// in view, with nothing mounted over a part of it.
func procError(err error) error {
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("mount proc on /proc: %w: in a user namespace, only where the host's /proc has nothing mounted over parts of it (in a container it may have)", err)
	}
	return fmt.Errorf("mount proc on /proc: %w", err)
}
