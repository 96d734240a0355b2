package steptest

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"containers-from-scratch/internal/rootfs"
)

// The checks below run OCI images (step13 on), which the tests write
// themselves from the tests' root filesystem (ocilayout.go): no network.

// subUID and subGID are the first subordinate ids the tests give Owner,
// in /etc/subuid and /etc/subgid files of their own; ownerName is Owner's
// name in the password file they give newuidmap, which looks the caller up.
const (
	subUID, subGID = 200000, 300000
	ownerName      = "cfs-owner"
)

// demoScript is the image's command in the tests: what a learner looks
// at inside.
const demoScript = `echo uid=$(id -u) gid=$(id -g) groups=$(id -G); echo pwd=$(pwd); cat hello.txt
if [ -e draft.txt ]; then echo draft=yes; else echo draft=no; fi
echo cache=$(ls /var/cache/app); echo owner=$(ls -ln /var/cache/app/new); echo pid=$$ host=$(hostname)
grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; echo --env--; env`

// demoImage writes, for one test, the course's demo image of the tests'
// root filesystem (rootfs.DemoImage: three layers, a user, a whiteout, an
// opaque directory, a file of uid 42), whose command is demoScript.
func demoImage(t *testing.T, s *Step) (layout string, w Written) {
	t.Helper()
	return imageOfLayers(t, s, func(config map[string]any) {
		config["Entrypoint"], config["Cmd"] = []string{"/bin/sh", "-c"}, []string{demoScript}
	})
}

// imageOfLayers writes the demo image, its config changed by edit, or, with
// no edit, with no config at all: root runs true. The layout belongs to
// Owner, as mkrootfs's files do.
func imageOfLayers(t *testing.T, s *Step, edit func(config map[string]any)) (layout string, w Written) {
	t.Helper()
	layout = filepath.Join(t.TempDir(), "demo")
	img, err := rootfs.DemoImage(s.Rootfs)
	require.NoError(t, err)
	img.Tag = "demo"
	if edit == nil {
		img.Config = map[string]any{"Cmd": []string{"true"}}
	} else {
		edit(img.Config)
	}
	w = WriteImage(t, layout, img)
	ownLayout(t, s, layout)
	return layout, w
}

// ownLayout gives the layout to Owner, and lets Owner get to it.
func ownLayout(t *testing.T, s *Step, layout string) {
	t.Helper()
	require.NoError(t, chownTree(layout, Owner, Owner))
	s.reachable(layout)
}

func file(name, body string, mode int64, owner int) Entry {
	return Entry{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Uid: owner, Gid: owner, ModTime: time.Unix(1e9, 0)}, Body: body}
}

func dir(name string, mode int64, owner int) Entry {
	return Entry{Header: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: owner, Gid: owner, ModTime: time.Unix(1e9, 0)}}
}

// withSubordinateIDs runs cmd in a mount namespace of its own, where
// /etc/subuid and /etc/subgid give Owner 65536 ids from subUID and subGID,
// and /etc/passwd names Owner (newuidmap checks the caller's name). The
// host's files stay as they are; private propagation keeps the binds from
// a host whose / is shared.
func withSubordinateIDs(t *testing.T, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	passwd, err := os.ReadFile("/etc/passwd")
	require.NoError(t, err)
	// Owner in the password file, with Owner's group as its own (newgidmap
	// checks the caller's group against it), in place of a user of the
	// machine's that has the same uid (a VM may).
	var kept []string
	for _, line := range strings.Split(strings.TrimSuffix(string(passwd), "\n"), "\n") {
		if f := strings.Split(line, ":"); len(f) < 3 || f[2] != fmt.Sprint(Owner) {
			kept = append(kept, line)
		}
	}
	passwd = fmt.Appendf([]byte(strings.Join(kept, "\n")), "\n%s:x:%d:%d::/nonexistent:/bin/sh\n", ownerName, Owner, Owner)
	name := ownerName
	return withIDFiles(t, cmd, map[string]string{
		"passwd": string(passwd),
		"subuid": fmt.Sprintf("%s:%d:65536\n", name, subUID),
		"subgid": fmt.Sprintf("%s:%d:65536\n", name, subGID),
	})
}

// withoutSubordinateIDs runs cmd where /etc/subuid and /etc/subgid give
// no one any id, as on a machine whose users have none.
func withoutSubordinateIDs(t *testing.T, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	return withIDFiles(t, cmd, map[string]string{"subuid": "", "subgid": ""})
}

// withIDFiles runs cmd in a mount namespace of its own where the files of
// /etc named are as given (made, where the machine has none).
func withIDFiles(t *testing.T, cmd *exec.Cmd, files map[string]string) *exec.Cmd {
	t.Helper()
	dir := t.TempDir()
	script := ""
	for name, content := range files {
		if _, err := os.Stat("/etc/" + name); err != nil {
			if content == "" {
				continue // none there: none to hide
			}
			// A file to bind over, for the test's time only.
			require.NoError(t, os.WriteFile("/etc/"+name, nil, 0o644))
			t.Cleanup(func() { os.Remove("/etc/" + name) })
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
		script += fmt.Sprintf("mount --bind %s/%s /etc/%s && ", dir, name, name)
	}
	unshare, err := exec.LookPath("unshare")
	require.NoError(t, err)
	cmd.Path = unshare
	cmd.Args = append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-c", script + `exec "$@"`, "sh"}, cmd.Args...)
	return cmd
}

// requireNewuidmap fails a test that needs newuidmap where it is missing:
// a skipped test would pass CI unseen.
func requireNewuidmap(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("newuidmap")
	require.NoError(t, err, "newuidmap is needed for ids beyond root without sudo (apt-get install uidmap)")
}

// imageRun is the command that runs the image ref with a scratch
// directory of its own, as root or, asUser, as Owner.
func (s *Step) imageRun(t *testing.T, asUser bool, scratchDir, ref string, argv ...string) *exec.Cmd {
	t.Helper()
	args := append([]string{"run", "-image", ref, "-scratch", scratchDir}, argv...)
	if asUser {
		return s.asUser(t, args...)
	}
	return s.Command(t, args...)
}

// ImageRunsAsItsConfigSays runs the demo image with nothing but its name:
// its Entrypoint and Cmd run, as its user with their groups, in its
// working directory, with its environment and none of run's; the layers
// stack in order, the whiteout deletes, the opaque directory hides what is
// below it; a file keeps its owner, 42; and the container is the one of
// step12 (PID 1, its hostname, no_new_privs, the seccomp filter). With
// sudo, and without through newuidmap.
func ImageRunsAsItsConfigSays(t *testing.T, s *Step) {
	RequireRoot(t)
	requireNewuidmap(t)
	layout, _ := demoImage(t, s)
	for _, asUser := range []bool{false, true} {
		t.Run(map[bool]string{false: "with sudo", true: "without sudo"}[asUser], func(t *testing.T) {
			scratchDir := scratch(t, s)
			if asUser {
				scratchDir = userScratch(t, s)
			}
			cmd := withSubordinateIDs(t, s.imageRun(t, asUser, scratchDir, layout+":demo"))
			cmd.Env = append(os.Environ(), "CFS_HOST_ONLY=secret")
			r := Finish(t, cmd)
			require.Equal(t, 0, r.Status, r.Stderr)
			shown, env, _ := strings.Cut(r.Stdout, "--env--\n")
			assert.Equal(t, `uid=1000 gid=1000 groups=1000 50
pwd=/home/app
hello from layer 3
draft=no
cache=new
owner=-rw-r--r-- 1 42 42 18 Nov 7 2018 /var/cache/app/new
pid=1 host=container
NoNewPrivs:	1
Seccomp:	2
`, shown)
			var vars []string // but PWD, which sh sets
			for _, v := range strings.Split(strings.TrimSpace(env), "\n") {
				if !strings.HasPrefix(v, "PWD=") {
					vars = append(vars, v)
				}
			}
			sort.Strings(vars)
			assert.Equal(t, []string{"GREETING=hello from the image's config", "HOME=/home/app", "PATH=/usr/local/bin:/usr/bin:/bin"}, vars,
				"the image's environment, and none of run's")
			assert.NotContains(t, r.Stderr, "left out: ids", "the ids are mapped")
			assertNothingLeft(t, scratchDir)
		})
	}
}

// CommandReplacesTheImagesCmd runs the demo image with a command: it
// replaces Cmd and follows Entrypoint, as "docker run IMAGE CMD" does.
func CommandReplacesTheImagesCmd(t *testing.T, s *Step) {
	RequireRoot(t)
	layout, _ := demoImage(t, s)
	r := Finish(t, withSubordinateIDs(t, s.imageRun(t, false, scratch(t, s), layout+":demo", `echo "$GREETING" $0`, "zero")))
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Equal(t, "hello from the image's config zero\n", r.Stdout)
}

// assertNothingLeft checks that a scratch directory holds no container's
// directory once its runs are over, and no half-unpacked layer: the layer
// store alone, and only whole layers in it.
func assertNothingLeft(t *testing.T, scratchDir string) {
	t.Helper()
	entries, err := os.ReadDir(scratchDir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.Contains(t, []string{"layers", ".containers-from-scratch"}, e.Name(), "left in the scratch directory %s", scratchDir)
	}
	stores, _ := filepath.Glob(filepath.Join(scratchDir, "layers", "*", "*"))
	for _, layer := range stores {
		assert.Regexp(t, `^[0-9a-f]{64}$`, filepath.Base(layer), "not a whole layer, in the store")
	}
}

// layoutSum sums every file of a layout, names, modes and contents, to see
// that a run left it as it was.
func layoutSum(t *testing.T, layout string) string {
	t.Helper()
	h := sha256.New()
	require.NoError(t, filepath.WalkDir(layout, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		fmt.Fprintf(h, "%s %v %d %d %d\n", path, info.Mode(), st.Uid, st.Size, info.ModTime().UnixNano())
		if d.Type().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			h.Write(data)
		}
		return nil
	}))
	return hex.EncodeToString(h.Sum(nil))
}

// storeInodes are the layer directories of a scratch directory's store,
// by name, and their inodes: a layer unpacked again is a new inode.
func storeInodes(t *testing.T, scratchDir string) map[string]uint64 {
	t.Helper()
	layers, err := filepath.Glob(filepath.Join(scratchDir, "layers", "*", "*"))
	require.NoError(t, err)
	inodes := map[string]uint64{}
	for _, l := range layers {
		var st unix.Stat_t
		require.NoError(t, unix.Lstat(l, &st))
		inodes[filepath.Base(l)] = st.Ino
	}
	return inodes
}

// LayersAreUnpackedOnce runs an image twice: the first run unpacks each
// layer into the store, under its digest; the second finds them there and
// unpacks none; and the image's layout is as it was.
func LayersAreUnpackedOnce(t *testing.T, s *Step) {
	RequireRoot(t)
	layout, w := demoImage(t, s)
	before := layoutSum(t, layout)
	scratchDir := scratch(t, s)
	r := Finish(t, withSubordinateIDs(t, s.imageRun(t, false, scratchDir, layout+":demo", "true")))
	require.Equal(t, 0, r.Status, r.Stderr)
	first := storeInodes(t, scratchDir)
	var want []string
	for _, id := range w.DiffIDs {
		want = append(want, strings.TrimPrefix(id, "sha256:"))
	}
	assert.ElementsMatch(t, want, keys(first), "each layer in the store, by its tar's digest")
	r = Finish(t, withSubordinateIDs(t, s.imageRun(t, false, scratchDir, layout+":demo", "true")))
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Equal(t, first, storeInodes(t, scratchDir), "the second run unpacked again")
	assert.Equal(t, before, layoutSum(t, layout), "the image's layout changed")
	assertNothingLeft(t, scratchDir)
}

func keys(m map[string]uint64) (k []string) {
	for name := range m {
		k = append(k, name)
	}
	return k
}

// TwoContainersUnpackAtOnce starts two containers of one image that no
// run has unpacked yet, both unpacking it: strace stops the first just
// before it renames its first layer into the store, the second unpacks
// and renames all of them meanwhile, and the first then finds the layer
// there. Both run; the store has each layer once; nothing is left over.
func TwoContainersUnpackAtOnce(t *testing.T, s *Step) {
	RequireRoot(t)
	layout, w := imageOfLayers(t, s, nil) // as root: no subordinate ids needed
	scratchDir := scratch(t, s)
	p, run := s.StoppedAt(t, unix.SYS_SYNCFS, "run", "-image", layout+":demo", "-scratch", scratchDir, "true")
	child := ChildStoppedIn(t, p.Log, run, unix.SYS_SYNCFS)
	r := Finish(t, s.imageRun(t, false, scratchDir, layout+":demo", "true"))
	require.Equal(t, 0, r.Status, "the second container: %s", r.Stderr)
	require.NoError(t, unix.Kill(child, unix.SIGCONT))
	r = p.Wait(t)
	require.Equal(t, 0, r.Status, "the first container: %s", r.Stderr)
	assert.Len(t, storeInodes(t, scratchDir), len(w.Layers))
	assertNothingLeft(t, scratchDir)
}

// KilledWhileUnpackingLeavesNoHalfLayer kills run while its child has
// unpacked a layer but not yet put it in the store: the next run removes
// what the killed one left, and the store has no layer the killed run
// did not finish.
func KilledWhileUnpackingLeavesNoHalfLayer(t *testing.T, s *Step) {
	RequireRoot(t)
	layout, _ := imageOfLayers(t, s, nil) // as root: no subordinate ids needed
	scratchDir := scratch(t, s)
	p, run := s.StoppedAt(t, unix.SYS_SYNCFS, "run", "-image", layout+":demo", "-scratch", scratchDir, "true")
	ChildStoppedIn(t, p.Log, run, unix.SYS_SYNCFS)
	require.NoError(t, unix.Kill(run, unix.SIGKILL))
	p.Wait(t)
	assert.Empty(t, storeInodes(t, scratchDir), "a layer in the store that its run did not finish")
	r := Finish(t, s.imageRun(t, false, scratchDir, layout+":demo", "true"))
	require.Equal(t, 0, r.Status, r.Stderr)
	assertNothingLeft(t, scratchDir)
}

// HostileLayersAreRefused gives run images whose last layer leads out of
// itself, each in its own way, at a directory of the host's: each is
// refused in one line, nothing is written in the host's directory, and the
// store gets no part of that layer. A layer that holds the host
// directory's path itself, and a link to it, is not refused: the link
// leads there inside the image, as it will in the container.
func HostileLayersAreRefused(t *testing.T, s *Step) {
	RequireRoot(t)
	host := filepath.Join(t.TempDir(), "host")
	require.NoError(t, os.Mkdir(host, 0o777))
	base := LayerOf(t, s.Rootfs)
	for _, c := range []struct {
		name  string
		layer Layer
	}{
		{"a .. entry", Layer{file("../../../../../../.."+host+"/pwned", "x", 0o644, 0)}},
		{"an absolute name", Layer{file(host+"/pwned", "x", 0o644, 0)}},
		{"a file written through a link", Layer{
			{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: "esc", Linkname: host, Mode: 0o777}},
			file("esc/pwned", "x", 0o644, 0)}},
		{"a hard link out of the layer", Layer{{Header: tar.Header{Typeflag: tar.TypeLink, Name: "passwd", Linkname: "../../../../../../../etc/passwd"}}}},
		{"a file written through a link to a path the image has", Layer{
			dir(strings.TrimPrefix(host, "/"), 0o755, 0),
			{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: "esc", Linkname: host, Mode: 0o777}},
			file("esc/pwned", "x", 0o644, 0)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			layout := filepath.Join(t.TempDir(), "hostile")
			w := WriteImage(t, layout, Image{Layers: []Layer{base, c.layer}, Tag: "x"})
			ownLayout(t, s, layout)
			scratchDir := scratch(t, s)
			r := Finish(t, s.imageRun(t, false, scratchDir, layout+":x", "cat", host+"/pwned"))
			if strings.HasSuffix(c.name, "the image has") {
				require.Equal(t, 0, r.Status, r.Stderr)
				assert.Equal(t, "x", r.Stdout, "the file is where the link leads in the image")
			} else {
				assert.NotEqual(t, 0, r.Status)
				OneLine(t, withoutLeftOut(r.Stderr))
				assert.NotContains(t, keys(storeInodes(t, scratchDir)), strings.TrimPrefix(w.DiffIDs[1], "sha256:"))
			}
			entries, _ := os.ReadDir(host)
			assert.Empty(t, entries, "written on the host")
			_, err := os.Stat(filepath.Join(filepath.Dir(layout), "pwned"))
			assert.ErrorIs(t, err, os.ErrNotExist)
			assertNothingLeft(t, scratchDir)
		})
	}
}

// withoutLeftOut drops the lines that say what run left out, which are
// not errors (ids beyond root, with no subordinate ids).
func withoutLeftOut(stderr string) string {
	return regexp.MustCompile(`(?m)^.*: .* left out: .*\n`).ReplaceAllString(stderr, "")
}

// BrokenImagesAreOneLine gives run images broken each in one way: each
// gets one line, and leaves no container, no half layer, and the layout
// as it was.
func BrokenImagesAreOneLine(t *testing.T, s *Step) {
	RequireRoot(t)
	base := LayerOf(t, s.Rootfs)
	for _, c := range []struct {
		name, tag, want string
		breakIt         func(t *testing.T, layout string, w Written)
	}{
		{"a tag that is not there", "nosuch", "nosuch", nil},
		{"a layer whose bytes do not match its digest", "x", "does not hash to its digest", func(t *testing.T, layout string, w Written) {
			// gzip's header holds a time that nothing reads: the same
			// tar, the same size, other bytes.
			path := BlobPath(layout, w.Layers[1].Digest)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			data[4] ^= 1
			require.NoError(t, os.WriteFile(path, data, 0o644))
		}},
		{"a missing layer", "x", "", func(t *testing.T, layout string, w Written) {
			require.NoError(t, os.Remove(BlobPath(layout, w.Layers[0].Digest)))
		}},
		{"a manifest of an unknown type", "x", "", func(t *testing.T, layout string, w Written) {
			index := Index(t, layout)
			index[0].MediaType = "application/vnd.example.unknown+json"
			WriteIndex(t, layout, index...)
		}},
		{"a config whose bytes do not match its digest", "x", "", func(t *testing.T, layout string, w Written) {
			flipLastByte(t, BlobPath(layout, w.Config.Digest))
		}},
		{"a layer that unpacks to another tar than its config says", "x", "where the config says", func(t *testing.T, layout string, w Written) {
			config := readJSON(t, BlobPath(layout, w.Config.Digest))
			config["rootfs"].(map[string]any)["diff_ids"].([]any)[1] = Digest([]byte("another tar"))
			c := WriteJSON(t, layout, MediaConfig, config)
			EditManifest(t, layout, w, func(m map[string]any) { m["config"] = c })
		}},
		{"no layout", "x", "skopeo", func(t *testing.T, layout string, w Written) {
			require.NoError(t, os.Remove(filepath.Join(layout, "oci-layout")))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			layout := filepath.Join(t.TempDir(), "broken")
			w := WriteImage(t, layout, Image{Layers: []Layer{base, {file("file", "as written", 0o644, 0)}}, Tag: "x",
				Config: map[string]any{"Cmd": []string{"true"}}})
			if c.breakIt != nil {
				c.breakIt(t, layout, w)
			}
			ownLayout(t, s, layout)
			before := layoutSum(t, layout)
			scratchDir := scratch(t, s)
			r := Finish(t, s.imageRun(t, false, scratchDir, layout+":"+c.tag))
			assert.NotEqual(t, 0, r.Status)
			OneLine(t, withoutLeftOut(r.Stderr))
			assert.Contains(t, r.Stderr, c.want)
			// The first layer, whole, at most: never the second, broken.
			for id := range storeInodes(t, scratchDir) {
				assert.Equal(t, w.DiffIDs[0], "sha256:"+id, "a layer in the store that is not the first, whole")
			}
			assert.Equal(t, before, layoutSum(t, layout), "the image's layout changed")
			if _, err := os.Stat(scratchDir); err == nil {
				assertNothingLeft(t, scratchDir)
			}
		})
	}
}

// flipLastByte changes a blob's last byte, and so its digest, not its size.
func flipLastByte(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	data[len(data)-1] ^= 0xff
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

// ThisMachinesPlatformIsPicked runs an image of two platforms, this
// machine's and another, from an index, as skopeo copy --all saves them:
// the other's blobs are not there at all, so a run that read them fails.
func ThisMachinesPlatformIsPicked(t *testing.T, s *Step) {
	RequireRoot(t)
	layout := filepath.Join(t.TempDir(), "multi")
	other := map[string]string{"amd64": "linux/arm64/v8", "arm64": "linux/amd64"}[runtime.GOARCH]
	WriteImage(t, layout, Image{Layers: []Layer{LayerOf(t, s.Rootfs)}, Tag: "multi", Config: map[string]any{"Cmd": []string{"echo", "mine"}},
		Platforms: []string{other, "linux/" + runtime.GOARCH}})
	ownLayout(t, s, layout)
	r := Finish(t, s.imageRun(t, false, scratch(t, s), layout+":multi"))
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Equal(t, "mine\n", r.Stdout)
}

// WithoutSubordinateIDsOneLine runs the demo image where Owner has no
// subordinate ids: one line says what is left out, and the image's user,
// who has no id then, is refused in one line. An image with no user runs,
// and a file of uid 42 belongs to root in it.
func WithoutSubordinateIDsOneLine(t *testing.T, s *Step) {
	RequireRoot(t)
	layout, w := demoImage(t, s)
	scratchDir := scratch(t, s)
	r := Finish(t, withoutSubordinateIDs(t, s.imageRun(t, false, scratchDir, layout+":demo")))
	assert.Equal(t, 1, r.Status)
	assert.Regexp(t, `^`+s.Name+`: ids beyond root left out: .*subordinate ids.*\n(.*left out.*\n)*`+s.Name+`: the command's user 1000:1000 has no id in the container.*\n$`, r.Stderr)
	// The same layers, and a config with no user: root. Run first with
	// subordinate ids, in the same scratch directory: that store is
	// another, and its layers' owners are not these.
	manifest := readJSON(t, BlobPath(layout, w.Manifest.Digest))
	config := readJSON(t, BlobPath(layout, w.Config.Digest))
	config["config"] = map[string]any{"Cmd": []string{"sh", "-c", "ls -ln /var/cache/app/new; id -u"}}
	manifest["config"] = WriteJSON(t, layout, MediaConfig, config)
	m := WriteJSON(t, layout, MediaManifest, manifest)
	m.Annotations = map[string]string{RefName: "root"}
	WriteIndex(t, layout, append(Index(t, layout), m)...)
	ownLayout(t, s, layout)
	r = Finish(t, withSubordinateIDs(t, s.imageRun(t, false, scratchDir, layout+":root")))
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Regexp(t, `^-rw-r--r-- 1 42 42 .* /var/cache/app/new\n0\n$`, r.Stdout)
	r = Finish(t, withoutSubordinateIDs(t, s.imageRun(t, false, scratchDir, layout+":root")))
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Regexp(t, `^-rw-r--r-- 1 0 0 .* /var/cache/app/new\n0\n$`, r.Stdout)
	assertNothingLeft(t, scratchDir)
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var v map[string]any
	require.NoError(t, json.Unmarshal(data, &v))
	return v
}

// IDsLeftByTheContainerAreRemoved runs the demo image without sudo, and
// has its user make files, which belong to subordinate ids on the host,
// in a directory only they may write: run, which may not remove them
// itself, leaves nothing behind.
func IDsLeftByTheContainerAreRemoved(t *testing.T, s *Step) {
	RequireRoot(t)
	requireNewuidmap(t)
	layout, _ := demoImage(t, s)
	scratchDir := userScratch(t, s)
	r := Finish(t, withSubordinateIDs(t, s.imageRun(t, true, scratchDir, layout+":demo",
		"mkdir -m 700 d && touch d/f made && chmod 500 d && ls -ln")))
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Contains(t, r.Stdout, " 1000 1000 ")
	assertNothingLeft(t, scratchDir)
}

// KillingRunKillsTheImagesCommand kills run while the image's command runs
// as the image's user: the kernel kills the command too. The change of
// user clears the signal the kernel sends the child when run dies, which
// the child must set again. With sudo, and without.
func KillingRunKillsTheImagesCommand(t *testing.T, s *Step) {
	RequireRoot(t)
	requireNewuidmap(t)
	layout, _ := imageOfLayers(t, s, func(map[string]any) {})
	for _, asUser := range []bool{false, true} {
		t.Run(map[bool]string{false: "with sudo", true: "without sudo"}[asUser], func(t *testing.T) {
			scratchDir := scratch(t, s)
			if asUser {
				scratchDir = userScratch(t, s)
			}
			for i := 0; i < 5; i++ {
				p := Start(t, withSubordinateIDs(t, s.imageRun(t, asUser, scratchDir, layout+":demo", "sh", "-c", "id -un; exec sleep 100")))
				p.WaitFor(t, "app")
				command := ChildPID(t, p.Cmd.Process.Pid)
				t.Cleanup(func() { _ = unix.Kill(command, unix.SIGKILL) })
				require.NoError(t, p.Cmd.Process.Kill())
				require.Eventually(t, func() bool { return Gone(command) }, patience, time.Millisecond,
					"try %d: the command (PID %d) outlived the killed run", i+1, command)
			}
		})
	}
}

// RemoveIsRefusedOnTheHost runs "remove", the program run starts to remove
// what its container left, by hand as root on the host: it removes
// nothing, and says it is run's.
func RemoveIsRefusedOnTheHost(t *testing.T, s *Step) {
	RequireRoot(t)
	dir := scratch(t, s)
	victim := filepath.Join(dir, "victim")
	require.NoError(t, os.MkdirAll(filepath.Join(victim, "d"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".containers-from-scratch"), nil, 0o600))
	r := s.Exec(t, "remove", victim)
	assert.Equal(t, 2, r.Status)
	assert.Contains(t, r.Stderr, `"remove" is internal`)
	cmd := s.Command(t, "remove", victim)
	cmd.Env = append(os.Environ(), "CONTAINERS_FROM_SCRATCH_MAPS=newuidmap")
	r = Finish(t, cmd)
	assert.NotEqual(t, 0, r.Status)
	assert.DirExists(t, filepath.Join(victim, "d"))
}

// ImageConfigsAreFollowed runs images whose configs say, each, one more
// thing: a user and a group by name, a uid that /etc/passwd does not
// have (group 0, as Docker), a working directory that the image has not
// (made), and a PATH of the image's own, along which the command is found;
// and one whose command is run's own program, refused.
func ImageConfigsAreFollowed(t *testing.T, s *Step) {
	RequireRoot(t)
	layout, _ := imageOfLayers(t, s, nil)
	img, err := rootfs.DemoImage(s.Rootfs)
	require.NoError(t, err)
	tool := Entry{Header: tar.Header{Typeflag: tar.TypeReg, Name: "opt/bin/tool", Mode: 0o755}, Body: "#!/bin/sh\necho found in /opt/bin\n"}
	img.Layers = append(img.Layers, Layer{tool})
	for _, c := range []struct {
		tag    string
		config map[string]any
		want   string
	}{
		{"group", map[string]any{"User": "app:staff", "Cmd": []string{"sh", "-c", "id -u; id -g; id -G"}}, "1000\n50\n50\n"},
		{"uid", map[string]any{"User": "4242", "Cmd": []string{"sh", "-c", "id -u; id -g"}}, "4242\n0\n"},
		{"dir", map[string]any{"WorkingDir": "/new/dir", "Cmd": []string{"sh", "-c", "pwd"}}, "/new/dir\n"},
		{"path", map[string]any{"Env": []string{"PATH=/opt/bin:/bin"}, "Cmd": []string{"tool"}}, "found in /opt/bin\n"},
		// run's own program, on the host, is not the container's to run.
		{"self", map[string]any{"Entrypoint": []string{"/proc/self/exe"}, "Cmd": []string{"-h"}}, ""},
		// (uid_t)-1 would leave the command root.
		{"uidmax", map[string]any{"User": "4294967295:4294967295", "Cmd": []string{"id", "-u"}}, ""},
	} {
		t.Run(c.tag, func(t *testing.T) {
			img.Tag, img.Config = c.tag, c.config
			WriteImage(t, layout, img)
			ownLayout(t, s, layout)
			r := Finish(t, withSubordinateIDs(t, s.imageRun(t, false, scratch(t, s), layout+":"+c.tag)))
			switch c.tag {
			case "self":
				assert.Equal(t, 126, r.Status)
				assert.Equal(t, s.Name+": /proc/self/exe: cannot run it: it is run's own program, on the host\n", r.Stderr)
				return
			case "uidmax":
				assert.Equal(t, 1, r.Status)
				assert.Empty(t, r.Stdout)
				OneLine(t, r.Stderr)
				return
			}
			require.Equal(t, 0, r.Status, r.Stderr)
			assert.Equal(t, c.want, r.Stdout)
		})
	}
}

// ManyLayersStack runs an image of 60 layers, one of them twice (as
// BuildKit's empty layer comes): each layer's file is there.
func ManyLayersStack(t *testing.T, s *Step) {
	RequireRoot(t)
	layers := []Layer{LayerOf(t, s.Rootfs), {dir("empty", 0o755, 0)}}
	for i := range 58 {
		layers = append(layers, Layer{file(fmt.Sprintf("many/%02d", i), "x", 0o644, 0)})
	}
	layers = append(layers, layers[1])
	layout := filepath.Join(t.TempDir(), "many")
	WriteImage(t, layout, Image{Layers: layers, Tag: "many", Config: map[string]any{"Cmd": []string{"ls", "/many"}}})
	ownLayout(t, s, layout)
	r := Finish(t, s.imageRun(t, false, scratch(t, s), layout+":many"))
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Len(t, strings.Fields(r.Stdout), 58)
}

// GroupsWithoutIDsAreLeftOut runs, without subordinate ids, an image whose
// /etc/group lists root in other groups, as Alpine's does: root runs, with
// one line for the groups it leaves out.
func GroupsWithoutIDsAreLeftOut(t *testing.T, s *Step) {
	RequireRoot(t)
	groups := Layer{file("etc/group", "root:x:0:\nbin:x:1:root\nwheel:x:10:root\n", 0o644, 0)}
	layout := filepath.Join(t.TempDir(), "alpine")
	WriteImage(t, layout, Image{Layers: []Layer{LayerOf(t, s.Rootfs), groups}, Tag: "x", Config: map[string]any{"Cmd": []string{"id", "-G"}}})
	ownLayout(t, s, layout)
	r := Finish(t, withoutSubordinateIDs(t, s.imageRun(t, false, scratch(t, s), layout+":x")))
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Equal(t, "0\n", r.Stdout)
	assert.Contains(t, r.Stderr, s.Name+": the user's groups [1 10] left out: their ids are not mapped (no subordinate ids)\n")
}
