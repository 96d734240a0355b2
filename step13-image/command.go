// This file starts the command the way the image's config says (image
// spec, config.md): its arguments, its environment, its directory and its
// user. The child reads it after pivot_root, so every name in it (a user,
// a directory) is the container's, looked up in the container's files.

package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A start is how the command starts.
type start struct {
	argv, env []string
	dir       string // its working directory
	uid, gid  int    // its user and group
	groups    []int  // and the user's other groups, from /etc/group
}

// startOf reads how the command starts: the command line given to run, or
// else the image's, in the image's environment, directory and user. Given
// a root filesystem, not an image, the command runs as root in /.
func startOf(c config) (start, error) {
	if c.image == "" {
		// A root filesystem has no config: run's environment, as before.
		return start{argv: c.argv, env: os.Environ(), dir: "/"}, nil
	}
	cfg := c.img.config
	s := start{argv: append(cfg.Entrypoint, c.argv...), dir: cmp.Or(cfg.WorkingDir, "/")}
	// A command given to run replaces the image's Cmd, and follows its
	// Entrypoint (as docker run IMAGE CMD does).
	if len(c.argv) == 0 {
		s.argv = append(cfg.Entrypoint, cfg.Cmd...)
	}
	if len(s.argv) == 0 {
		return s, usageError(c.image + ": the image names no command to run (no Entrypoint or Cmd): give one")
	}
	if !path.IsAbs(s.dir) {
		return s, fmt.Errorf("%s: the image's WorkingDir %q is not an absolute path", c.image, s.dir)
	}
	acct, home, err := lookUpUser(cfg.User)
	if err != nil {
		return s, fmt.Errorf("%s: user %q: %w", c.image, cfg.User, err)
	}
	s.uid, s.gid = acct.uid, acct.gid
	s.groups, err = mappedGroups(acct.groups)
	if err != nil {
		return s, err
	}
	s.env = environment(cfg.Env, home)
	// The command is looked for along its own PATH: the child makes the
	// command's environment its own.
	os.Clearenv()
	for _, kv := range s.env {
		name, value, _ := strings.Cut(kv, "=")
		os.Setenv(name, value)
	}
	return s, s.enterDir()
}

// environment is the command's: the image's, over a PATH and a HOME of
// its own, and not run's, which is the host's (a PATH of the host's
// directories, the host user's HOME, a SSH_AUTH_SOCK...). TERM is the
// exception: it names the terminal, which run hands on.
func environment(image []string, home string) []string {
	env := []string{"PATH=" + defaultPath, "HOME=" + home}
	if _, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil && os.Getenv("TERM") != "" {
		env = append(env, "TERM="+os.Getenv("TERM"))
	}
	for _, kv := range image {
		name, _, _ := strings.Cut(kv, "=")
		env = setenv(env, name, kv)
	}
	return env
}

// setenv sets the variable name to kv ("name=value") in env: later
// settings win, as in a shell.
func setenv(env []string, name, kv string) []string {
	for i, old := range env {
		if strings.HasPrefix(old, name+"=") {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

// An account is who the command runs as.
type account struct {
	uid, gid int
	groups   []int
}

// lookUpUser finds the config's User, "" (root), a name or a uid, with a
// group or a gid after a colon or not, in the container's /etc/passwd and
// /etc/group. With no group given, the user's own group and the groups
// that list the user apply (as config.md says). It returns the home too.
func lookUpUser(spec string) (account, string, error) {
	u, home, err := lookUpIDs(spec)
	// (uid_t)-1 means "leave it as it is" to setresuid: root, here.
	if err == nil && (u.uid > 1<<32-2 || u.gid > 1<<32-2) {
		err = fmt.Errorf("uid %d or gid %d is out of range", u.uid, u.gid)
	}
	return u, home, err
}

// lookUpIDs is lookUpUser, but for the range of the ids.
func lookUpIDs(spec string) (account, string, error) {
	name, group, hasGroup := strings.Cut(cmp.Or(spec, "0"), ":")
	u := account{uid: -1, gid: -1}
	home := "/"
	var login string
	err := eachLine("/etc/passwd", func(f []string) bool {
		if len(f) < 6 || (f[0] != name && f[2] != name) {
			return false
		}
		login, home = f[0], cmp.Or(f[5], "/")
		var errU, errG error
		u.uid, errU = strconv.Atoi(f[2])
		u.gid, errG = strconv.Atoi(f[3])
		if errU != nil || errG != nil {
			u.uid, u.gid = -2, -2 // not root by mistake
		}
		return true
	})
	if u.uid == -2 {
		return u, home, errors.New("its line in the container's /etc/passwd has no numeric uid and gid")
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return u, home, err
	}
	if u.uid < 0 {
		if u.uid, err = strconv.Atoi(name); err != nil || u.uid < 0 {
			return u, home, errors.New("no such user in the container's /etc/passwd")
		}
		u.gid = 0
	}
	if hasGroup {
		u.gid = -1
		_ = eachLine("/etc/group", func(f []string) bool {
			if len(f) < 3 || (f[0] != group && f[2] != group) {
				return false
			}
			u.gid, _ = strconv.Atoi(f[2])
			return true
		})
		if u.gid < 0 {
			if u.gid, err = strconv.Atoi(group); err != nil || u.gid < 0 {
				return u, home, errors.New("no such group in the container's /etc/group")
			}
		}
		return u, home, nil
	}
	// The other groups the user is in: /etc/group lists the user there.
	_ = eachLine("/etc/group", func(f []string) bool {
		if gid, err := strconv.Atoi(f[2]); len(f) == 4 && err == nil && login != "" && gid != u.gid {
			for _, member := range strings.Split(f[3], ",") {
				if member == login {
					u.groups = append(u.groups, gid)
				}
			}
		}
		return false
	})
	return u, home, nil
}

// eachLine calls match with the colon-separated fields of each line of
// file, until it returns true.
func eachLine(file string, match func(fields []string) bool) error {
	f, err := os.OpenFile(file, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// The image's file: a regular file, or nothing (a FIFO would hang here).
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", file)
	}
	lines := bufio.NewScanner(io.LimitReader(f, 4<<20))
	for lines.Scan() {
		if fields := strings.Split(lines.Text(), ":"); len(fields) >= 3 && match(fields) {
			return nil
		}
	}
	return lines.Err()
}

// enterDir makes the working directory the command's, and makes it first
// if the image has none there, owned by root, as Docker does.
func (s start) enterDir() error {
	err := unix.Chdir(s.dir)
	if errors.Is(err, unix.ENOENT) {
		if err = os.MkdirAll(s.dir, 0o755); err == nil {
			err = unix.Chdir(s.dir)
		}
	}
	if err != nil {
		return fmt.Errorf("the working directory %s: %w", s.dir, err)
	}
	return nil
}

// becomeUser changes to the command's user and groups, on the thread that
// execs (the others end with the exec). Root gives up its powers with it:
// from a uid that is not 0, an exec gives the command none. An id the
// container has not mapped (only root is, without subordinate ids: ids.go)
// is refused by the kernel (EINVAL).
func (s start) becomeUser() error {
	// The groups first: without sudo, the child still has your groups
	// (as no one, 65534), which newgidmap lets it drop.
	groups := append([]int{}, s.groups...)
	err := unix.Setgroups(groups)
	// setgroups is denied in a user namespace that a normal user mapped
	// alone (user_namespaces(7)): then the child has no group to drop.
	if errors.Is(err, unix.EPERM) && len(groups) == 0 {
		err = nil
	}
	if err == nil {
		err = rawSetres(unix.SYS_SETRESGID, s.gid)
	}
	if err == nil {
		err = rawSetres(unix.SYS_SETRESUID, s.uid)
	}
	if errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("the command's user %d:%d has no id in the container: only root does without subordinate ids (see %s's page)", s.uid, s.gid, prog)
	}
	if err != nil {
		return fmt.Errorf("become user %d:%d: %w", s.uid, s.gid, err)
	}
	// A change of user clears the signal the child gets when run dies
	// (prctl(2)): again, and run must still be there.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return err
	}
	if runIsGone() {
		return errors.New("run has gone: not starting the command")
	}
	return nil
}

// mappedGroups keeps the groups whose ids the container has: without
// subordinate ids, only root's. It says in one line which it leaves out.
// (Alpine's /etc/group lists root in bin, daemon, wheel and more.)
func mappedGroups(groups []int) ([]int, error) {
	ids, err := mappedIDs()
	if err != nil {
		return nil, err
	}
	var kept, left []int
	for _, g := range groups {
		if slices.ContainsFunc(ids.gids, func(l syscall.SysProcIDMap) bool { return g >= l.ContainerID && g < l.ContainerID+l.Size }) {
			kept = append(kept, g)
		} else {
			left = append(left, g)
		}
	}
	if len(left) > 0 {
		leftOut(fmt.Sprintf("the user's groups %v", left), "their ids are not mapped (no subordinate ids)")
	}
	return kept, nil
}

// rawSetres sets the real, effective and saved id of this thread alone:
// syscall.Setresuid would set them on every thread of the Go runtime.
func rawSetres(trap uintptr, id int) error {
	if _, _, errno := syscall.RawSyscall(trap, uintptr(id), uintptr(id), uintptr(id)); errno != 0 {
		return errno
	}
	return nil
}
