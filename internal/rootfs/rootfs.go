// Package rootfs builds the small root filesystem that the workshop's
// containers run in, from the programs already installed on this machine.
//
// A dynamically linked program needs its loader and its shared libraries at
// the same paths inside the container as outside. The classic shell recipe
// asks ldd for them; Build reads the ELF headers instead (the PT_INTERP
// program header and the DT_NEEDED entries, recursively), which needs no
// helper program and does not run anything it copies. Paths are copied as the
// host has them, symbolic links included, so the result works on a
// merged-/usr system (/bin -> usr/bin) and on a classic one alike.
package rootfs

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Commands are the programs every root filesystem gets: enough to look
// around a container and to follow the workshop.
var Commands = []string{
	"sh", "bash", "ls", "ps", "mount", "umount", "hostname", "cat", "echo",
	"sleep", "touch", "rm", "mkdir", "id", "env", "grep", "kill", "readlink",
	"true", "false", "uname", "head", "ip", "ping", "ipcs", "ipcmk", "ipcrm", "chown", "chmod", "unshare",
}

// debianPackages names the package to install for a command that is not in
// coreutils, for the message about a missing command.
var debianPackages = map[string]string{
	"ps": "procps", "kill": "procps", "hostname": "hostname", "mount": "mount",
	"umount": "mount", "bash": "bash", "grep": "grep", "sh": "dash",
	"ip": "iproute2", "ping": "iputils-ping", "ipcs": "util-linux", "ipcmk": "util-linux",
	"ipcrm": "util-linux", "unshare": "util-linux",
}

// Marker is the file that tells Build a directory is its own, so that it
// can update it in place and leave every other directory alone.
const Marker = ".mkrootfs"

// searchPath is where commands are looked up on the host. It is fixed, not
// $PATH, so that a personal ~/bin or a toolchain never lands in the image.
const searchPath = "/usr/sbin:/usr/bin:/sbin:/bin"

// ErrNotOurs is returned for a directory that is neither empty nor built by
// Build.
var ErrNotOurs = errors.New("not empty and not built by mkrootfs")

// Report says what Build did.
type Report struct {
	Commands int   // commands installed
	Files    int   // regular files in the tree, libraries included
	Bytes    int64 // their total size
	Copied   int   // files written by this run, /dev/null included; 0 when all were up to date
	DevNull  bool  // whether /dev/null exists (making it needs root)
	NoDev    bool  // whether the file system refuses to open device files
}

// Build creates or updates the root filesystem in dir.
func Build(dir string) (Report, error) {
	if err := claim(dir); err != nil {
		return Report{}, err
	}
	b := &builder{root: dir, seen: map[string]bool{}, dirs: map[string]bool{}}
	if err := b.installCommands(); err != nil {
		return Report{}, err
	}
	if err := b.installSkeleton(); err != nil {
		return Report{}, err
	}
	r, err := b.count()
	r.Commands = len(Commands)
	r.Copied = b.copied
	return r, err
}

// claim makes sure dir is empty, missing or built by us, and marks it as
// ours. The marker must be a regular file: a container runs as root in this
// directory and could leave a symbolic link there, for a later mkrootfs run
// as root to write through.
func claim(dir string) error {
	marker := filepath.Join(dir, Marker)
	fi, err := os.Lstat(marker)
	switch {
	case err == nil && fi.Mode().IsRegular():
		return nil
	case err == nil:
		return fmt.Errorf("%s is not a regular file: %w", marker, ErrNotOurs)
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case len(entries) > 0:
		return fmt.Errorf("%s: %w", dir, ErrNotOurs)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString("Built by mkrootfs: safe to delete and build again.\n")
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	return err
}

type builder struct {
	root   string          // the root filesystem being built
	seen   map[string]bool // host files already installed, by real path
	dirs   map[string]bool // directories under root known to be real ones
	copied int
}

func (b *builder) installCommands() error {
	// The command directories come first, links and all, so that /bin/sh
	// works in a merged-/usr image whose sh was found in /usr/bin.
	for _, dir := range filepath.SplitList(searchPath) {
		if _, err := os.Stat(dir); err == nil {
			if _, err := b.mirror(dir); err != nil {
				return err
			}
		}
	}
	var missing, packages []string
	for _, name := range Commands {
		path, err := lookPath(name)
		if err != nil {
			missing = append(missing, name)
			if p := debianPackages[name]; p != "" {
				packages = append(packages, p)
			}
			continue
		}
		if err := b.install(path); err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("not installed on this machine: %s", strings.Join(missing, " "))
		if len(packages) > 0 {
			msg += fmt.Sprintf(" (on Debian or Ubuntu: apt-get install %s)", strings.Join(packages, " "))
		}
		return errors.New(msg)
	}
	return nil
}

func lookPath(name string) (string, error) {
	for _, dir := range filepath.SplitList(searchPath) {
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return path, nil
		}
	}
	return "", exec.ErrNotFound
}

// install copies the host file at path into the root filesystem, with every
// symbolic link on the way, and then whatever the file needs to run.
func (b *builder) install(path string) error {
	real, err := b.mirror(path)
	if err != nil {
		return err
	}
	if b.seen[real] {
		return nil
	}
	b.seen[real] = true
	if err := b.copyFile(real); err != nil {
		return err
	}
	deps, err := dependencies(real)
	if err != nil {
		return fmt.Errorf("%s: %w", real, err)
	}
	for _, dep := range deps {
		if err := b.install(dep); err != nil {
			return err
		}
	}
	return nil
}

// mirror walks path on the host one name at a time, recreating each symbolic
// link it meets and each directory it passes inside the root filesystem, and
// returns the host's real path of the file at its end.
func (b *builder) mirror(path string) (string, error) {
	cur := "/"
	rest := strings.Split(strings.Trim(filepath.Clean(path), "/"), "/")
	for links := 0; len(rest) > 0; {
		name := rest[0]
		rest = rest[1:]
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if links++; links > 40 {
				return "", fmt.Errorf("%s: too many symbolic links", path)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", err
			}
			if err := b.symlink(next, target); err != nil {
				return "", err
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			rest = append(strings.Split(strings.Trim(target, "/"), "/"), rest...)
		case fi.IsDir():
			if err := b.mkdir(next, fi.Mode().Perm()); err != nil {
				return "", err
			}
			cur = next
		case len(rest) > 0:
			return "", fmt.Errorf("%s: not a directory", next)
		default:
			cur = next
		}
	}
	return cur, nil
}

// dependencies lists the files an ELF program or library needs to be
// loaded: its interpreter (the dynamic loader) and the shared libraries it
// names, found where the loader would look. A file that is not ELF needs
// nothing.
func dependencies(path string) ([]string, error) {
	f, err := elf.Open(path)
	var formatErr *elf.FormatError
	if errors.As(err, &formatErr) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()

	var deps []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp, err := io.ReadAll(p.Open())
			if err != nil {
				return nil, err
			}
			deps = append(deps, string(bytes.TrimRight(interp, "\x00")))
		}
	}
	needed, err := f.ImportedLibraries()
	if err != nil {
		return nil, err
	}
	dirs := libraryDirs(f, filepath.Dir(path))
	for _, soname := range needed {
		lib, err := findLibrary(soname, dirs, f)
		if err != nil {
			return nil, err
		}
		deps = append(deps, lib)
	}
	return deps, nil
}

// libraryDirs lists where the loader looks for f's libraries: f's own run
// path, the directories in /etc/ld.so.conf, then the built-in defaults.
func libraryDirs(f *elf.File, origin string) []string {
	var dirs []string
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		paths, _ := f.DynString(tag)
		for _, p := range paths {
			for _, d := range filepath.SplitList(p) {
				dirs = append(dirs, strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", origin), "$ORIGIN", origin))
			}
		}
	}
	dirs = append(dirs, ldSoConf("/etc/ld.so.conf", 0)...)
	return append(dirs, "/lib64", "/usr/lib64", "/lib", "/usr/lib")
}

// ldSoConf reads the directories listed in an ld.so.conf file and in the
// files it includes.
func ldSoConf(path string, depth int) []string {
	data, err := os.ReadFile(path)
	if err != nil || depth > 8 {
		return nil
	}
	var dirs []string
	for _, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
		case fields[0] == "include":
			for _, pattern := range fields[1:] {
				if !filepath.IsAbs(pattern) {
					pattern = filepath.Join(filepath.Dir(path), pattern)
				}
				matches, _ := filepath.Glob(pattern)
				sort.Strings(matches)
				for _, m := range matches {
					dirs = append(dirs, ldSoConf(m, depth+1)...)
				}
			}
		default:
			dirs = append(dirs, fields...)
		}
	}
	return dirs
}

// findLibrary finds the library soname in dirs, skipping libraries built for
// another architecture (a 32-bit libc in /usr/lib32, say).
func findLibrary(soname string, dirs []string, prog *elf.File) (string, error) {
	for _, dir := range dirs {
		path := filepath.Join(dir, soname)
		lib, err := elf.Open(path)
		if err != nil {
			continue
		}
		fits := lib.Class == prog.Class && lib.Machine == prog.Machine
		lib.Close()
		if fits {
			return path, nil
		}
	}
	return "", fmt.Errorf("library %s not found", soname)
}

// mkdir makes the directory hostDir inside the root filesystem, and makes
// sure that no part of that path is a symbolic link there: writing through
// a link could reach outside the root filesystem, into the host's own files.
func (b *builder) mkdir(hostDir string, perm fs.FileMode) error {
	if b.dirs[hostDir] {
		return nil
	}
	if parent := filepath.Dir(hostDir); parent != hostDir {
		if err := b.mkdir(parent, 0o755); err != nil {
			return err
		}
	}
	dst := filepath.Join(b.root, hostDir)
	lstat := os.Lstat
	if hostDir == "/" {
		lstat = os.Stat // the root filesystem itself may be reached by a link
	}
	fi, err := lstat(dst)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(dst, perm); err != nil {
			return err
		}
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory here but is one on the host: delete %s and build again", dst, b.root)
	}
	b.dirs[hostDir] = true
	return nil
}

// symlink recreates the host's symbolic link at hostPath inside the root
// filesystem, pointing where the host's does.
func (b *builder) symlink(hostPath, target string) error {
	if err := b.mkdir(filepath.Dir(hostPath), 0o755); err != nil {
		return err
	}
	dst := filepath.Join(b.root, hostPath)
	if have, err := os.Readlink(dst); err == nil && have == target {
		return nil
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%s differs from the host's %s: delete %s and build again", dst, hostPath, b.root)
	}
	return os.Symlink(target, dst)
}

// copyFile copies the host's regular file at hostPath into the root
// filesystem, unless an identical copy (same size and time) is there. The
// copy loses set-user-ID and set-group-ID bits: nothing in a container needs
// them.
func (b *builder) copyFile(hostPath string) error {
	if err := b.mkdir(filepath.Dir(hostPath), 0o755); err != nil {
		return err
	}
	src, err := os.Open(hostPath)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	dst := filepath.Join(b.root, hostPath)
	if have, err := os.Lstat(dst); err == nil && have.Mode().IsRegular() &&
		have.Size() == fi.Size() && have.ModTime().Equal(fi.ModTime()) {
		return nil
	}
	if err := b.writeAtomically(dst, fi.Mode().Perm(), func(w io.Writer) error {
		_, err := io.Copy(w, src)
		return err
	}); err != nil {
		return err
	}
	return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
}

// writeAtomically writes dst through a temporary file in the same directory
// and renames it into place, which replaces a symbolic link at dst instead
// of writing through it, and never leaves half a file.
func (b *builder) writeAtomically(dst string, perm fs.FileMode, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".mkrootfs-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), perm); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	b.copied++
	return nil
}

// writeFile writes content to path inside the root filesystem unless it
// already holds exactly that.
func (b *builder) writeFile(path, content string, perm fs.FileMode) error {
	if err := b.mkdir(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	dst := filepath.Join(b.root, path)
	if have, err := os.ReadFile(dst); err == nil && string(have) == content {
		return nil
	}
	return b.writeAtomically(dst, perm, func(w io.Writer) error {
		_, err := io.WriteString(w, content)
		return err
	})
}

// installSkeleton adds the directories and files that programs expect: /proc
// for step05 to mount on, /etc for id and hostname, /tmp, and /dev/null.
func (b *builder) installSkeleton() error {
	dirs := []struct {
		path string
		perm fs.FileMode
	}{{"/proc", 0o555}, {"/dev", 0o755}, {"/tmp", 0o777 | fs.ModeSticky}, {"/root", 0o700}, {"/etc", 0o755}}
	for _, d := range dirs {
		if err := b.mkdir(d.path, d.perm); err != nil {
			return err
		}
		// Mkdir applies the umask and ignores the sticky bit; set both as meant.
		if err := os.Chmod(filepath.Join(b.root, d.path), d.perm); err != nil {
			return err
		}
	}
	files := []struct{ path, content string }{
		{"/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"},
		{"/etc/group", "root:x:0:\nnogroup:x:65534:\n"},
		{"/etc/hostname", "container\n"},
		// glibc looks users and groups up in /etc/passwd and /etc/group
		// only when this file says so.
		{"/etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n"},
	}
	for _, f := range files {
		if err := b.writeFile(f.path, f.content, 0o644); err != nil {
			return err
		}
	}
	return b.makeDevNull()
}

// makeDevNull makes the /dev/null device node, if it can. That needs root
// (CAP_MKNOD) and a file system that holds device nodes (a VM's shared
// folder may not); without them the root filesystem has no /dev/null, and
// Report says so.
//
// A command that writes to a missing /dev/null creates a plain file there;
// that one is replaced.
func (b *builder) makeDevNull() error {
	dst := filepath.Join(b.root, "dev/null")
	if isDevNull(dst) {
		return nil
	}
	tmp := filepath.Join(b.root, "dev/.null-new")
	os.Remove(tmp)
	if err := unix.Mknod(tmp, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		return nil
	}
	if err := os.Chmod(tmp, 0o666); err != nil { // mknod applies the umask
		return err
	}
	b.copied++
	return os.Rename(tmp, dst)
}

func isDevNull(path string) bool {
	var st unix.Stat_t
	return unix.Lstat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == unix.Mkdev(1, 3)
}

// count adds up the regular files in the root filesystem.
func (b *builder) count() (Report, error) {
	var r Report
	// The trailing slash makes WalkDir follow b.root if it is a link.
	err := filepath.WalkDir(b.root+"/", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			r.Files++
			r.Bytes += fi.Size()
		}
		return nil
	})
	r.DevNull = isDevNull(filepath.Join(b.root, "dev/null"))
	r.NoDev = !DevicesWork(b.root)
	return r, err
}

// DevicesWork reports whether device files in dir can be opened: not on a
// file system mounted nodev, as /tmp is on Debian 13.
func DevicesWork(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Flags&unix.ST_NODEV == 0
}
