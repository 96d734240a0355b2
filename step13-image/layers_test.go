package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A tar entry of a test layer: the header and, for a regular file, its body.
type tarEntry struct {
	hdr  tar.Header
	body string
}

func tarFile(name, body string, mode int64) tarEntry {
	return tarEntry{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body}
}
func tarDir(name string, mode int64) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}
}
func tarSymlink(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}
func tarHardlink(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target}}
}

// layerTar writes the entries as a PAX tar, as image builders do.
func newLayerTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.Format = tar.FormatPAX
		if h.ModTime.IsZero() && h.Typeflag != tar.TypeXGlobalHeader {
			h.ModTime = time.Unix(1_600_000_000, 0)
		}
		require.NoError(t, tw.WriteHeader(&h), h.Name)
		_, err := tw.Write([]byte(e.body))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

// layerSandbox is a temporary parent holding the layer directory and a sibling
// directory with a sentinel file: what a hostile layer would like to reach.
type layerSandbox struct{ parent, dir, sibling, sentinel string }

func newLayerSandbox(t *testing.T) layerSandbox {
	t.Helper()
	p := t.TempDir()
	s := layerSandbox{parent: p, dir: filepath.Join(p, "layer"), sibling: filepath.Join(p, "sibling")}
	s.sentinel = filepath.Join(s.sibling, "sentinel")
	require.NoError(t, os.Mkdir(s.dir, 0o755))
	require.NoError(t, os.Mkdir(s.sibling, 0o755))
	require.NoError(t, os.WriteFile(s.sentinel, []byte("untouched"), 0o644))
	return s
}

// unpack unpacks the entries into a new layerSandbox.
func unpackEntries(t *testing.T, entries ...tarEntry) (layerSandbox, layerStats, error) {
	t.Helper()
	s := newLayerSandbox(t)
	stats, err := unpackLayer(bytes.NewReader(newLayerTar(t, entries...)), s.dir)
	return s, stats, err
}

// assertUntouched checks that nothing was written outside the layer.
func (s layerSandbox) assertUntouched(t *testing.T) {
	t.Helper()
	names := func(d string) []string {
		es, err := os.ReadDir(d)
		require.NoError(t, err)
		var n []string
		for _, e := range es {
			n = append(n, e.Name())
		}
		return n
	}
	assert.Equal(t, []string{"layer", "sibling"}, names(s.parent))
	assert.Equal(t, []string{"sentinel"}, names(s.sibling))
	var st unix.Stat_t
	require.NoError(t, unix.Lstat(s.sentinel, &st))
	assert.Equal(t, uint32(unix.S_IFREG|0o644), st.Mode, "sentinel's mode")
	assert.Equal(t, uint32(0), st.Uid, "sentinel's owner")
	body, err := os.ReadFile(s.sentinel)
	require.NoError(t, err)
	assert.Equal(t, "untouched", string(body))
	for _, p := range []string{"/pwned", "/tmp/pwned", "/etc/pwned"} {
		assert.NoFileExists(t, p)
	}
}

func lstatOf(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Lstat(p, &st), p)
	return st
}

func xattrOf(p, name string) string {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(buf[:n])
}

func TestUnpackOrdinaryTree(t *testing.T) {
	t1, t2, t3 := time.Unix(1_500_000_000, 0), time.Unix(1_400_000_000, 0), time.Unix(1_300_000_000, 0)
	etc := tarDir("etc/", 0o755)
	etc.hdr.ModTime = t1
	notes := tarFile("./home/ada/notes", "hello", 0o640)
	notes.hdr.Uid, notes.hdr.Gid, notes.hdr.ModTime, notes.hdr.AccessTime = 42, 42, t2, t3
	notes.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.test": "v"}
	ada := tarDir("home/ada", 0o750) // after its child: keeps the child, takes the mode
	ada.hdr.Uid, ada.hdr.Gid, ada.hdr.ModTime = 42, 42, t1
	link := tarSymlink("etc/localtime", "/usr/share/zoneinfo/UTC")
	link.hdr.Uid, link.hdr.Gid, link.hdr.ModTime = 42, 43, t2
	fifo := tarEntry{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo", Mode: 0o620}}
	s, stats, err := unpackEntries(t, etc, tarFile("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644),
		tarFile("bin/su", "ELF", 0o4755), tarFile("usr/bin/sg", "ELF", 0o2755), tarDir("tmp", 0o1777),
		notes, ada, link, tarSymlink("rel", "etc/passwd"), tarHardlink("bin/su2", "./bin/su"), fifo,
		tarHardlink("rel2", "rel"))
	require.NoError(t, err)
	assert.Equal(t, layerStats{}, stats)
	s.assertUntouched(t)
	d := s.dir

	body, err := os.ReadFile(filepath.Join(d, "etc/passwd"))
	require.NoError(t, err)
	assert.Equal(t, "root:x:0:0::/root:/bin/sh\n", string(body))
	for p, mode := range map[string]uint32{
		"etc": unix.S_IFDIR | 0o755, "etc/passwd": unix.S_IFREG | 0o644, "bin": unix.S_IFDIR | 0o755,
		"bin/su": unix.S_IFREG | 0o4755, "usr/bin/sg": unix.S_IFREG | 0o2755, "tmp": unix.S_IFDIR | 0o1777,
		"home/ada": unix.S_IFDIR | 0o750, "home/ada/notes": unix.S_IFREG | 0o640, "run/fifo": unix.S_IFIFO | 0o620,
		"etc/localtime": unix.S_IFLNK | 0o777,
	} {
		assert.Equal(t, mode, lstatOf(t, filepath.Join(d, p)).Mode, "mode of %s", p)
	}
	st := lstatOf(t, filepath.Join(d, "home/ada/notes"))
	assert.Equal(t, [2]uint32{42, 42}, [2]uint32{st.Uid, st.Gid})
	assert.Equal(t, t2.Unix(), st.Mtim.Sec, "file's mtime")
	assert.Equal(t, t3.Unix(), st.Atim.Sec, "file's atime")
	assert.Equal(t, "v", xattrOf(filepath.Join(d, "home/ada/notes"), "user.test"))
	st = lstatOf(t, filepath.Join(d, "home/ada"))
	assert.Equal(t, [2]uint32{42, 42}, [2]uint32{st.Uid, st.Gid})
	assert.Equal(t, t1.Unix(), st.Mtim.Sec, "a directory's mtime is set after its children")
	assert.Equal(t, t1.Unix(), lstatOf(t, filepath.Join(d, "etc")).Mtim.Sec)
	st = lstatOf(t, filepath.Join(d, "etc/localtime"))
	assert.Equal(t, [2]uint32{42, 43}, [2]uint32{st.Uid, st.Gid}, "a link's own owner")
	assert.Equal(t, t2.Unix(), st.Mtim.Sec, "a link's own mtime")
	for p, target := range map[string]string{"etc/localtime": "/usr/share/zoneinfo/UTC", "rel": "etc/passwd"} {
		got, err := os.Readlink(filepath.Join(d, p))
		require.NoError(t, err)
		assert.Equal(t, target, got)
	}
	assert.Equal(t, lstatOf(t, filepath.Join(d, "bin/su")).Ino, lstatOf(t, filepath.Join(d, "bin/su2")).Ino, "hard link")
	assert.Equal(t, lstatOf(t, filepath.Join(d, "rel")).Ino, lstatOf(t, filepath.Join(d, "rel2")).Ino, "hard link to a link itself")
}

func TestUnpackEntryReplacesAnEntry(t *testing.T) {
	s, _, err := unpackEntries(t,
		tarFile("a", "file first", 0o644), tarDir("a", 0o755), tarFile("a/b", "in the dir", 0o644),
		tarDir("d", 0o755), tarFile("d/x", "kept", 0o644), tarDir("d", 0o700),
		tarSymlink("l", "/etc/passwd"), tarFile("l", "a file now", 0o600),
		tarDir("e", 0o755), tarFile("e/c", "gone with e", 0o644), tarFile("e", "e is a file", 0o644))
	require.NoError(t, err)
	s.assertUntouched(t)
	d := s.dir
	assert.Equal(t, uint32(unix.S_IFDIR|0o755), lstatOf(t, filepath.Join(d, "a")).Mode)
	assert.FileExists(t, filepath.Join(d, "a/b"))
	assert.Equal(t, uint32(unix.S_IFDIR|0o700), lstatOf(t, filepath.Join(d, "d")).Mode, "both dirs: the new mode")
	assert.FileExists(t, filepath.Join(d, "d/x"), "both dirs: the children stay")
	assert.Equal(t, uint32(unix.S_IFREG|0o600), lstatOf(t, filepath.Join(d, "l")).Mode)
	body, err := os.ReadFile(filepath.Join(d, "e"))
	require.NoError(t, err)
	assert.Equal(t, "e is a file", string(body))
}

func TestUnpackWhiteouts(t *testing.T) {
	gone := tarFile("etc/.wh.gone", "", 0o644)
	gone.hdr.Uid, gone.hdr.Gid = 42, 42
	s, _, err := unpackEntries(t, gone,
		tarFile("keep", "this layer's", 0o644), tarFile(".wh.keep", "", 0o644),
		tarFile(".wh.back", "", 0o644), tarFile("back", "wins", 0o644),
		tarFile(".wh.sub", "", 0o644), tarFile("sub/new", "", 0o644),
		tarFile(".wh.newdir", "", 0o644), tarDir("newdir", 0o755))
	require.NoError(t, err)
	s.assertUntouched(t)
	d := s.dir

	st := lstatOf(t, filepath.Join(d, "etc/gone"))
	assert.Equal(t, uint32(unix.S_IFCHR), st.Mode&unix.S_IFMT, "a whiteout is a character device")
	assert.Equal(t, uint64(0), st.Rdev, "device 0/0")
	assert.Equal(t, [2]uint32{42, 42}, [2]uint32{st.Uid, st.Gid}, "the header's owner")
	assert.NoFileExists(t, filepath.Join(d, "etc/.wh.gone"), "the whiteout entry itself is never written")
	assert.Equal(t, uint32(unix.S_IFREG), lstatOf(t, filepath.Join(d, "keep")).Mode&unix.S_IFMT,
		"a whiteout hides lower layers only: this layer's file stays")
	assert.Equal(t, uint32(unix.S_IFREG), lstatOf(t, filepath.Join(d, "back")).Mode&unix.S_IFMT,
		"an entry after its whiteout replaces it")
	for _, p := range []string{"sub", "newdir"} {
		assert.Equal(t, uint32(unix.S_IFDIR), lstatOf(t, filepath.Join(d, p)).Mode&unix.S_IFMT, p)
		assert.Equal(t, "y", xattrOf(filepath.Join(d, p), "user.overlay.opaque"),
			"a directory in place of a whiteout hides the lower one's children: %s", p)
	}
	assert.FileExists(t, filepath.Join(d, "sub/new"))
}

func TestUnpackOpaqueBeforeAndAfterChildren(t *testing.T) {
	s, _, err := unpackEntries(t,
		tarDir("before", 0o755), tarFile("before/.wh..wh..opq", "", 0o644), tarFile("before/a", "", 0o644),
		tarDir("after", 0o755), tarFile("after/a", "", 0o644), tarFile("after/.wh..wh..opq", "", 0o644),
		tarFile("absent/.wh..wh..opq", "", 0o644))
	require.NoError(t, err)
	s.assertUntouched(t)
	for _, p := range []string{"before", "after", "absent"} {
		assert.Equal(t, "y", xattrOf(filepath.Join(s.dir, p), "user.overlay.opaque"), p)
		assert.NoFileExists(t, filepath.Join(s.dir, p, ".wh..wh..opq"))
		assert.NotContains(t, xattrOf(filepath.Join(s.dir, p), "trusted.overlay.opaque"), "y")
	}
	assert.FileExists(t, filepath.Join(s.dir, "before/a"), "this layer's children stay")
	assert.FileExists(t, filepath.Join(s.dir, "after/a"))
}

func TestUnpackDropsOverlayXattrs(t *testing.T) {
	f := tarFile("f", "x", 0o644)
	f.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.overlay.metacopy": "", "SCHILY.xattr.user.overlay.redirect": "/etc",
		"SCHILY.xattr.trusted.overlay.redirect": "/etc", "SCHILY.xattr.user.test": "kept"}
	dir := tarDir("d", 0o755)
	dir.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.overlay.opaque": "y", "SCHILY.xattr.trusted.overlay.opaque": "y"}
	link := tarSymlink("l", "f")
	link.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.test": "refused on a link"}
	s, stats, err := unpackEntries(t, f, dir, link)
	require.NoError(t, err)
	assert.Equal(t, layerStats{xattrs: 1}, stats, "only the link's user.test is counted; overlay ones go silently")
	for _, p := range []string{"f", "d"} {
		buf := make([]byte, 1024)
		n, err := unix.Llistxattr(filepath.Join(s.dir, p), buf)
		require.NoError(t, err)
		assert.NotContains(t, string(buf[:n]), "overlay", p)
	}
	assert.Equal(t, "kept", xattrOf(filepath.Join(s.dir, "f"), "user.test"))
}

func TestUnpackSkipsDevicesAndGlobalHeaders(t *testing.T) {
	null := tarEntry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}}
	sda := tarEntry{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/sda", Mode: 0o660, Devmajor: 8}}
	global := tarEntry{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "/pax_global_header",
		PAXRecords: map[string]string{"comment": "made by git archive"}}}
	s, stats, err := unpackEntries(t, global, tarDir("dev", 0o755), null, sda)
	require.NoError(t, err)
	assert.Equal(t, layerStats{devices: 2}, stats)
	entries, err := os.ReadDir(filepath.Join(s.dir, "dev"))
	require.NoError(t, err)
	assert.Empty(t, entries)
}

func TestUnpackRefusesOrContainsHostileLayers(t *testing.T) {
	tests := []struct {
		name    string
		entries func(s layerSandbox) []tarEntry
		refused string   // the one line, or "" when the layer is contained
		inside  []string // what must exist in the layer then
	}{
		{"dotdot", func(layerSandbox) []tarEntry { return []tarEntry{tarFile("../pwned", "x", 0o644)} },
			`layer entry "../pwned" leads out of the layer: refused`, nil},
		{"absolute", func(s layerSandbox) []tarEntry { return []tarEntry{tarFile(s.sibling+"/pwned", "x", 0o644)} },
			`leads out of the layer: refused`, nil},
		{"dotdot inside", func(layerSandbox) []tarEntry { return []tarEntry{tarFile("a/../../pwned", "x", 0o644)} },
			`layer entry "a/../../pwned" leads out of the layer: refused`, nil},
		{"link to /", func(layerSandbox) []tarEntry {
			return []tarEntry{tarSymlink("esc", "/"), tarFile("esc/pwned", "x", 0o644)}
		},
			"", []string{"pwned"}},
		{"link up", func(layerSandbox) []tarEntry {
			return []tarEntry{tarSymlink("esc", "../../.."), tarFile("esc/pwned", "x", 0o644)}
		}, "", []string{"pwned"}},
		{"link to the sibling", func(s layerSandbox) []tarEntry {
			return []tarEntry{tarSymlink("esc", s.sibling), tarFile("esc/pwned", "x", 0o644)}
		}, `layer entry "esc/pwned" goes through esc, a link to nothing in the layer: refused`, nil},
		{"link to the sibling's path in the layer", func(s layerSandbox) []tarEntry {
			return []tarEntry{tarDir(strings.TrimPrefix(s.sibling, "/"), 0o755), tarSymlink("esc", s.sibling), tarFile("esc/pwned", "x", 0o644)}
		}, "", []string{"esc", "${sibling}/pwned"}},
		{"hard link through a link", func(s layerSandbox) []tarEntry {
			return []tarEntry{tarSymlink("esc", s.sibling), tarHardlink("h", "esc/sentinel")}
		}, `layer entry "h" links to "esc/sentinel", which is not a file of this layer: refused`, nil},
		{"hard link up", func(layerSandbox) []tarEntry { // refused even though the layer has an etc/passwd
			return []tarEntry{tarFile("etc/passwd", "", 0o644), tarHardlink("h", "../../etc/passwd")}
		},
			`layer entry "h" links to "../../etc/passwd", which is not a file of this layer: refused`, nil},
		{"hard link to a directory", func(layerSandbox) []tarEntry { return []tarEntry{tarDir("d", 0o755), tarHardlink("h", "d")} },
			`layer entry "h" links to "d", which is not a file of this layer: refused`, nil},
		{"file over a link", func(s layerSandbox) []tarEntry {
			return []tarEntry{tarSymlink("f", s.sentinel), tarFile("f", "pwned", 0o4777)}
		}, "", []string{"f"}},
		{"chmod through a link's parent", func(s layerSandbox) []tarEntry {
			e := tarFile("p/sentinel", "pwned", 0o4777)
			e.hdr.Uid = 42
			return []tarEntry{tarSymlink("p", s.sibling), e}
		}, `layer entry "p/sentinel" goes through p, a link to nothing in the layer: refused`, nil},
		{"dir over a link", func(s layerSandbox) []tarEntry {
			e := tarDir("q", 0o777)
			e.hdr.Uid = 42
			return []tarEntry{tarSymlink("q", s.sibling), e}
		}, "", []string{"q"}},
		{"bare whiteout", func(layerSandbox) []tarEntry { return []tarEntry{tarFile(".wh.", "", 0o644)} },
			`layer entry ".wh." is not a whiteout of a name: refused`, nil},
		{"whiteout of ..", func(layerSandbox) []tarEntry { return []tarEntry{tarFile(".wh...", "", 0o644)} },
			`layer entry ".wh..." is not a whiteout of a name: refused`, nil},
		{"whiteout of .", func(layerSandbox) []tarEntry { return []tarEntry{tarFile("a/.wh..", "", 0o644)} },
			`layer entry "a/.wh.." is not a whiteout of a name: refused`, nil},
		{"whiteout through a link", func(s layerSandbox) []tarEntry {
			return []tarEntry{tarSymlink("esc", "/"), tarFile("esc/.wh.layer", "", 0o644), tarFile("esc/.wh.sibling", "", 0o644)}
		}, "", []string{"layer", "sibling"}},
		{"opaque through a link", func(s layerSandbox) []tarEntry {
			return []tarEntry{tarSymlink("esc", "../.."), tarFile("esc/.wh..wh..opq", "", 0o644)}
		}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newLayerSandbox(t)
			_, err := unpackLayer(bytes.NewReader(newLayerTar(t, tt.entries(s)...)), s.dir)
			if tt.refused != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.refused)
				assert.NotContains(t, err.Error(), "\n", "one line")
			} else {
				require.NoError(t, err)
			}
			for _, p := range tt.inside {
				p = strings.ReplaceAll(p, "${sibling}", s.sibling)
				lstatOf(t, filepath.Join(s.dir, p))
			}
			s.assertUntouched(t)
		})
	}
}

func TestUnpackRefusesABrokenTar(t *testing.T) {
	data := newLayerTar(t, tarFile("big", strings.Repeat("x", 4096), 0o644))
	s := newLayerSandbox(t)
	_, err := unpackLayer(bytes.NewReader(data[:1500]), s.dir)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "\n")
	assert.Contains(t, err.Error(), "unexpected EOF")
}

// A sparse file, old GNU style ('S') or PAX style (GNU.sparse.* records),
// is refused: its holes would be written out as zeros, and a few bytes of
// layer could fill the disk.
func TestUnpackRefusesSparseFiles(t *testing.T) {
	// GNU's: a header of type 'S', in GNU's format, its checksum again.
	gnu := newLayerTar(t, tarFile("big", "x", 0o644))
	gnu[156] = tar.TypeGNUSparse
	copy(gnu[257:265], "ustar  \x00")
	copy(gnu[148:156], "        ")
	sum := 0
	for _, b := range gnu[:512] {
		sum += int(b)
	}
	copy(gnu[148:156], fmt.Sprintf("%06o\x00 ", sum))
	// PAX's: a record of the file's extended header renamed GNU.sparse.*
	// (archive/tar writes none of those itself).
	pax := tarFile("big", "x", 0o644)
	pax.hdr.PAXRecords = map[string]string{"SCHILY.xattr.a.b": "1"}
	paxData := bytes.Replace(newLayerTar(t, pax), []byte("SCHILY.xattr.a.b=1"), []byte("GNU.sparse.major=1"), 1)
	for name, data := range map[string][]byte{"gnu": gnu, "pax": paxData} {
		t.Run(name, func(t *testing.T) {
			s := newLayerSandbox(t)
			_, err := unpackLayer(bytes.NewReader(data), s.dir)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), "\n")
			assert.Contains(t, err.Error(), "refused")
			assert.NoFileExists(t, filepath.Join(s.dir, "big"))
		})
	}
}

// Two layers unpacked, then stacked as an overlay the way run stacks an
// image: the top layer's whiteout deletes a file of the bottom one, and
// its opaque directory hides the bottom one's children.
func TestUnpackedLayersStackInAnOverlay(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounting an overlay needs root")
	}
	p := t.TempDir()
	bottom, top, mnt := filepath.Join(p, "bottom"), filepath.Join(p, "top"), filepath.Join(p, "mnt")
	for _, d := range []string{bottom, top, mnt} {
		require.NoError(t, os.Mkdir(d, 0o755))
	}
	_, err := unpackLayer(bytes.NewReader(newLayerTar(t, tarFile("gone", "", 0o644), tarFile("kept", "", 0o644),
		tarDir("od", 0o755), tarFile("od/old", "", 0o644), tarDir("md", 0o755), tarFile("md/lower", "", 0o644))), bottom)
	require.NoError(t, err)
	_, err = unpackLayer(bytes.NewReader(newLayerTar(t, tarFile(".wh.gone", "", 0o644),
		tarFile("od/new", "", 0o644), tarFile("od/.wh..wh..opq", "", 0o644), tarFile("md/upper", "", 0o644))), top)
	require.NoError(t, err)
	out, err := exec.Command("unshare", "-m", "sh", "-c",
		`mount -t overlay overlay -o lowerdir="$1:$2",userxattr "$3" && cd "$3" && ls -A . && ls -A od && ls -A md`,
		"sh", top, bottom, mnt).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, "kept\nmd\nod\nnew\nlower\nupper\n", string(out))
}

// unpackHelper is the main of a small program built from layers.go alone,
// so that unpackLayer can run where run runs it: as root of a user
// namespace (this test binary's own main is the step's).
const unpackHelper = `package main

import (
	"fmt"
	"os"
)

func main() {
	stats, err := unpackLayer(os.Stdin, os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("devices=%d owners=%d xattrs=%d\n", stats.devices, stats.owners, stats.xattrs)
}
`

// In the container's user namespace, as run maps it (0 is the image's
// owner, 1..65535 subordinate ids), owners are the namespace's ids, an
// unmapped one stays root and is counted, setuid survives, whiteouts and
// opaque marks are made without the host's privileges, and trusted.* is
// refused and counted while security.capability is set.
func TestUnpackInAUserNamespace(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mapping ranges of ids needs root")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("building the helper needs the go command")
	}
	src, p := t.TempDir(), t.TempDir()
	for _, f := range []string{"layers.go", "../go.mod", "../go.sum"} {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(src, filepath.Base(f)), data, 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(src, "main.go"), []byte(unpackHelper), 0o644))
	bin := filepath.Join(p, "unpack")
	build := exec.Command(goBin, "build", "-o", bin, ".")
	build.Dir, build.Env = src, append(os.Environ(), "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))
	// The namespace's root is host uid 100000: it may enter p and write
	// only in a layer directory of its own.
	require.NoError(t, os.Chmod(p, 0o755))
	require.NoError(t, os.Chmod(filepath.Dir(p), 0o755))
	dir := filepath.Join(p, "layer")
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, os.Chown(dir, 100000, 100000))

	suid := tarFile("suid", "x", 0o4755)
	suid.hdr.Uid, suid.hdr.Gid = 1, 1
	u42 := tarFile("u42", "x", 0o644)
	u42.hdr.Uid, u42.hdr.Gid = 42, 42
	far := tarFile("far", "x", 0o644)
	far.hdr.Uid, far.hdr.Gid = 70000, 70000
	capFile := tarFile("cap", "x", 0o755)
	capFile.hdr.PAXRecords = map[string]string{"SCHILY.xattr.trusted.foo": "x",
		// version 2 capabilities: cap_net_bind_service permitted
		"SCHILY.xattr.security.capability": "\x00\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}
	wh := tarFile(".wh.gone", "", 0o644)
	wh.hdr.Uid = 42
	null := tarEntry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "null", Mode: 0o666, Devmajor: 1, Devminor: 3}}
	layer := newLayerTar(t, suid, u42, far, capFile, wh, tarDir("od", 0o755), tarFile("od/.wh..wh..opq", "", 0o644),
		null, tarSymlink("esc", "/"), tarFile("esc/pwned", "x", 0o644), tarHardlink("hl", "suid"))

	maps := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 1}, {ContainerID: 1, HostID: 200001, Size: 65535}}
	cmd := exec.Command(bin, dir)
	cmd.Stdin = bytes.NewReader(layer)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: maps, GidMappings: maps,
		Credential: &syscall.Credential{Uid: 0, Gid: 0}}
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, "devices=1 owners=1 xattrs=1\n", string(out))

	for name, want := range map[string][3]uint32{
		"suid": {unix.S_IFREG | 0o4755, 200001, 200001}, "u42": {unix.S_IFREG | 0o644, 200042, 200042},
		"far": {unix.S_IFREG | 0o644, 100000, 100000}, "gone": {unix.S_IFCHR, 200042, 100000},
		"pwned": {unix.S_IFREG | 0o644, 100000, 100000},
	} {
		st := lstatOf(t, filepath.Join(dir, name))
		assert.Equal(t, want, [3]uint32{st.Mode, st.Uid, st.Gid}, name)
	}
	assert.Equal(t, lstatOf(t, filepath.Join(dir, "suid")).Ino, lstatOf(t, filepath.Join(dir, "hl")).Ino, "hard link")
	assert.NoFileExists(t, filepath.Join(dir, "null"))
	assert.Equal(t, "y", xattrOf(filepath.Join(dir, "od"), "user.overlay.opaque"))
	assert.NotContains(t, xattrOf(filepath.Join(dir, "cap"), "security.capability"), "<", "the capability is set")
	assert.NoFileExists(t, "/pwned")
}
