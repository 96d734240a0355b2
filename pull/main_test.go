package main

import (
	"archive/tar"
	"bufio"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"containers-from-scratch/internal/oci"
	testregistry "containers-from-scratch/internal/registry"
	"containers-from-scratch/internal/steptest"
)

// The test binary is also pull: see package steptest. As root, the tests
// run in a network namespace of their own, so the registries they start
// on the loopback are seen by nothing else.
var tool = &steptest.Step{Name: "pull", UsesNetwork: true}

func TestMain(m *testing.M) { steptest.Main(m, tool, main) }

// An image in a layout of the test's own, served by a registry on the
// loopback: two layers, the first of 512 KiB that does not compress, so
// that a test can catch pull half-way through it.
type served struct {
	layout string
	image  oci.Written
	server *testregistry.Server
	addr   string // host:port of the registry
}

func serve(t testing.TB, img oci.Image, configure func(*testregistry.Server)) *served {
	t.Helper()
	if img.Layers == nil {
		noise := make([]byte, 512<<10)
		rand.Read(noise)
		img.Layers = []oci.Layer{
			{file("noise", string(noise))},
			{file("hello.txt", "hello from the registry\n")},
		}
	}
	if img.Tag == "" {
		img.Tag = "1"
	}
	if img.Config == nil {
		img.Config = map[string]any{"Cmd": []string{"sh"}}
	}
	s := &served{layout: filepath.Join(t.TempDir(), "demo")}
	var err error
	s.image, err = oci.WriteImage(s.layout, img)
	require.NoError(t, err)
	s.server = &testregistry.Server{Layouts: map[string]string{"demo": s.layout}}
	if configure != nil {
		configure(s.server)
	}
	ts := httptest.NewServer(s.server)
	t.Cleanup(ts.Close)
	s.addr = strings.TrimPrefix(ts.URL, "http://")
	return s
}

func file(name, body string) oci.Entry {
	return oci.Entry{Header: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}, Body: body}
}

// A target is the digest that the tests' registry treats otherwise (drops,
// slows down), changed while it serves.
type target struct{ digest atomic.Value }

func (t *target) set(digest string) { t.digest.Store(digest) }

func (t *target) is(digest string) bool {
	d, _ := t.digest.Load().(string)
	return d != "" && d == digest
}

// pace slows the target down to 32 KiB every pause.
func (t *target) pace(pause time.Duration) func(digest string) time.Duration {
	return func(digest string) time.Duration {
		if t.is(digest) {
			return pause
		}
		return 0
	}
}

// ref is the reference of the served image's tag.
func (s *served) ref(tag string) string { return s.addr + "/demo:" + tag }

// blobs returns what the requests so far fetched from /blobs/.
func (s *served) blobs() []string {
	var b []string
	for _, r := range s.server.Requests() {
		if strings.Contains(r, "/blobs/") {
			b = append(b, r)
		}
	}
	return b
}

// pullInto runs pull -o dir with args, and returns what it did.
func pullInto(t *testing.T, dir string, args ...string) steptest.Result {
	t.Helper()
	return tool.Exec(t, append([]string{"-o", dir}, args...)...)
}

// tags reads the layout's index.json: each tag's descriptor.
func tags(t *testing.T, dir string) map[string]oci.Descriptor {
	t.Helper()
	entries, err := oci.Index(dir)
	require.NoError(t, err)
	byTag := map[string]oci.Descriptor{}
	for _, e := range entries {
		name := e.Annotations[oci.RefName]
		assert.NotContains(t, byTag, name, "index.json names %q twice", name)
		byTag[name] = e
	}
	return byTag
}

// assertNoTemporaryFiles checks that no file is left half-written.
func assertNoTemporaryFiles(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".") {
			t.Errorf("a temporary file is left in the layout: %s", path)
		}
		return nil
	})
}

// assertHoldsTheImage checks that the layout at dir holds the served image
// under tag, blob for blob as the registry has it.
func assertHoldsTheImage(t *testing.T, dir, tag string, s *served) {
	t.Helper()
	marker, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	require.NoError(t, err)
	assert.JSONEq(t, `{"imageLayoutVersion":"1.0.0"}`, string(marker))
	entry, ok := tags(t, dir)[tag]
	require.True(t, ok, "index.json has no tag %q", tag)
	assert.Equal(t, s.image.Manifest.Digest, entry.Digest, "the tag names the registry's manifest")
	assert.Equal(t, oci.MediaManifest, entry.MediaType)
	for _, d := range append([]oci.Descriptor{s.image.Manifest, s.image.Config}, s.image.Layers...) {
		want, err := os.ReadFile(oci.BlobPath(s.layout, d.Digest))
		require.NoError(t, err)
		got, err := os.ReadFile(oci.BlobPath(dir, d.Digest))
		if assert.NoError(t, err, "blob %s is missing", d.Digest) {
			assert.True(t, string(want) == string(got), "blob %s differs from the registry's", d.Digest)
			info, err := os.Stat(oci.BlobPath(dir, d.Digest))
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o644), info.Mode(), "blob %s: readable by all, as skopeo writes it", d.Digest)
		}
	}
	assertNoTemporaryFiles(t, dir)
}

// assertOneLine checks that a failure was said in one line that contains
// what, and that pull exited 1.
func assertOneLine(t *testing.T, r steptest.Result, what string) {
	t.Helper()
	assert.Equal(t, 1, r.Status, "pull should fail: %s", r.Stderr)
	assert.Equal(t, 1, strings.Count(r.Stderr, "\n"), "one line: %q", r.Stderr)
	assert.Contains(t, r.Stderr, what)
}

func TestPullsAnImageIntoALayout(t *testing.T) {
	s := serve(t, oci.Image{}, nil)
	dir := filepath.Join(t.TempDir(), "images", "demo")
	r := pullInto(t, dir, s.ref("1"))
	require.Equal(t, 0, r.Status, r.Stderr)
	assertHoldsTheImage(t, dir, "1", s)
	assert.Regexp(t, `^pull: .*images/demo:1 is `+s.ref("1")+` for linux/\w+: 2 layers, 0.5 MiB\n`+
		`pull: fetched 3 blobs \(0.5 MiB\) in \S+; 0 were here already\n$`, r.Stdout)
	assert.Empty(t, r.Stderr)
}

func TestNamesTheLayoutAfterTheImage(t *testing.T) {
	s := serve(t, oci.Image{}, nil)
	dir := t.TempDir()
	cmd := tool.Command(t, s.ref("1"))
	cmd.Dir = dir
	r := steptest.Finish(t, cmd)
	require.Equal(t, 0, r.Status, r.Stderr)
	assertHoldsTheImage(t, filepath.Join(dir, "images", "demo"), "1", s)
}

func TestPullsThisMachinesPlatformFromAnIndex(t *testing.T) {
	// The layout's index lists the other platform's manifest and an
	// attestation too, whose blobs are not there: the registry has no such
	// manifest, and pull must not ask for it.
	other := "linux/arm64"
	if thisPlatform().Architecture == "arm64" {
		other = "linux/amd64"
	}
	s := serve(t, oci.Image{Platforms: []string{other, thisPlatform().String()}}, nil)
	dir := filepath.Join(t.TempDir(), "demo")
	r := pullInto(t, dir, s.ref("1"))
	require.Equal(t, 0, r.Status, r.Stderr)
	assertHoldsTheImage(t, dir, "1", s)
	assert.Equal(t, thisPlatform().String(), tags(t, dir)["1"].Platform["os"]+"/"+tags(t, dir)["1"].Platform["architecture"])

	t.Run("a platform the index does not have", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "demo")
		r := pullInto(t, dir, "-platform", "linux/s390x", s.ref("1"))
		// The attestation that the index lists too is no platform.
		assertOneLine(t, r, "no image for linux/s390x, only for "+other+", "+thisPlatform().String()+": choose one with -platform\n")
		assert.NoDirExists(t, dir, "nothing is written")
	})
}

func thisPlatform() platform {
	p, _ := parsePlatform("linux/" + runtime.GOARCH)
	return p
}

func TestGetsATokenWhenTheRegistryAsks(t *testing.T) {
	s := serve(t, oci.Image{}, func(s *testregistry.Server) { s.Token = true })
	dir := filepath.Join(t.TempDir(), "demo")
	r := pullInto(t, dir, s.ref("1"))
	require.Equal(t, 0, r.Status, r.Stderr)
	assertHoldsTheImage(t, dir, "1", s)
	assert.Contains(t, s.server.Requests(), "GET /token")
}

func TestRefusesWhatIsNotWhatTheManifestSays(t *testing.T) {
	flip := func(data []byte) []byte {
		out := append([]byte(nil), data...)
		out[len(out)/2] ^= 1
		return out
	}
	for _, c := range []struct {
		name   string
		blob   func(w oci.Written) string // the digest served wrong
		tamper func([]byte) []byte
		says   string
	}{
		{"a layer with a byte changed", func(w oci.Written) string { return w.Layers[1].Digest }, flip, "hashes to"},
		{"a layer longer than it is", func(w oci.Written) string { return w.Layers[1].Digest },
			func(b []byte) []byte { return append(b, 0) }, "the registry sent"},
		{"a layer shorter than it is", func(w oci.Written) string { return w.Layers[0].Digest },
			func(b []byte) []byte { return b[:len(b)-1] }, "the registry sent"},
		{"the config", func(w oci.Written) string { return w.Config.Digest }, flip, "hashes to"},
		{"the manifest", func(w oci.Written) string { return w.Manifest.Digest }, flip, "hashes to"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var wrong string
			s := serve(t, oci.Image{}, func(s *testregistry.Server) {
				s.Tamper = func(digest string, data []byte) []byte {
					if digest == wrong {
						return c.tamper(data)
					}
					return data
				}
			})
			wrong = c.blob(s.image)
			dir := filepath.Join(t.TempDir(), "demo")
			r := pullInto(t, dir, s.ref("1"))
			assertOneLine(t, r, c.says)
			assert.NoFileExists(t, oci.BlobPath(dir, wrong), "what does not match its digest is not kept")
			if _, err := os.Stat(dir); err == nil {
				assert.Empty(t, tags(t, dir), "the layout names no image")
				assertNoTemporaryFiles(t, dir)
			}
		})
	}
}

func TestAMissingTagIsOneLine(t *testing.T) {
	s := serve(t, oci.Image{}, nil)
	for ref, says := range map[string]string{
		s.ref("2"):                "has no tag 2",
		s.addr + "/nothing:1":     "no such image",
		"127.0.0.1:1/demo:1":      "does not answer",
		s.addr + "/Demo:1":        "not an image name",
		s.addr + "/demo:1@sha256": "a digest is sha256:",
	} {
		t.Run(ref, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "demo")
			assertOneLine(t, pullInto(t, dir, ref), says)
			assert.NoDirExists(t, dir, "nothing is written")
		})
	}
}

func TestAConnectionDroppedHalfWayIsPickedUpAgain(t *testing.T) {
	var drop target
	s := serve(t, oci.Image{}, func(s *testregistry.Server) { s.Drop = drop.is })
	big := s.image.Layers[0].Digest
	drop.set(big)
	dir := filepath.Join(t.TempDir(), "demo")
	r := pullInto(t, dir, s.ref("1"))
	assertOneLine(t, r, "the registry "+s.addr+" stopped after ")
	assert.Regexp(t, `stopped after 0\.[1-4] MiB of 0\.5 MiB`, r.Stderr)
	assert.Empty(t, tags(t, dir), "the layout names no image")
	assertNoTemporaryFiles(t, dir)
	fetched := len(s.blobs())

	// Again, on a connection that holds: only the blobs not already
	// fetched whole are fetched.
	drop.set("")
	r = pullInto(t, dir, s.ref("1"))
	require.Equal(t, 0, r.Status, r.Stderr)
	assertHoldsTheImage(t, dir, "1", s)
	again := s.blobs()[fetched:]
	assert.Equal(t, []string{"GET /v2/demo/blobs/" + big, "GET /v2/demo/blobs/" + s.image.Layers[1].Digest}, again)
}

func TestASecondPullFetchesNothingItHas(t *testing.T) {
	s := serve(t, oci.Image{Platforms: []string{thisPlatform().String()}}, nil)
	dir := filepath.Join(t.TempDir(), "demo")
	require.Equal(t, 0, pullInto(t, dir, s.ref("1")).Status)
	before := len(s.server.Requests())
	r := pullInto(t, dir, s.ref("1"))
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.Contains(t, r.Stdout, "fetched 0 blobs (0.0 MiB)")
	assert.Equal(t, []string{"GET /v2/", "GET /v2/demo/manifests/1"}, s.server.Requests()[before:],
		"the tag's index is asked for, nothing else")
	assertHoldsTheImage(t, dir, "1", s)

	t.Run("a blob changed on disk is fetched again", func(t *testing.T) {
		layer := oci.BlobPath(dir, s.image.Layers[1].Digest)
		data, err := os.ReadFile(layer)
		require.NoError(t, err)
		data[0] ^= 1
		require.NoError(t, os.WriteFile(layer, data, 0o644))
		before := len(s.blobs())
		require.Equal(t, 0, pullInto(t, dir, s.ref("1")).Status)
		assert.Equal(t, []string{"GET /v2/demo/blobs/" + s.image.Layers[1].Digest}, s.blobs()[before:])
		assertHoldsTheImage(t, dir, "1", s)
	})
}

func TestAddsToALayout(t *testing.T) {
	s := serve(t, oci.Image{}, nil)
	dir := filepath.Join(t.TempDir(), "demo")
	// A layout written elsewhere, with an image of its own.
	other, err := oci.WriteImage(dir, oci.Image{Layers: []oci.Layer{{file("a", "a")}}, Tag: "other"})
	require.NoError(t, err)
	require.Equal(t, 0, pullInto(t, dir, s.ref("1")).Status)
	require.Equal(t, 0, pullInto(t, dir, s.ref("1")).Status)
	byTag := tags(t, dir)
	assert.Len(t, byTag, 2, "the tag once, the other image kept")
	assert.Equal(t, other.Entry.Digest, byTag["other"].Digest)
	assertHoldsTheImage(t, dir, "1", s)

	t.Run("a folder that is not a layout", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644))
		assertOneLine(t, pullInto(t, dir, s.ref("1")), "holds something other than an image layout")
		entries, _ := os.ReadDir(dir)
		assert.Len(t, entries, 1, "the folder is left as it was")
	})
}

func TestRefusesWhatStep13CannotRun(t *testing.T) {
	for mediaType, says := range map[string]string{
		"application/vnd.oci.image.layer.v1.tar+zstd":                  "compressed with zstd",
		"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":    "which pull does not know",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "which pull does not know",
	} {
		t.Run(mediaType, func(t *testing.T) {
			s := serve(t, oci.Image{}, nil)
			editManifest(t, s, func(m map[string]any) {
				m["layers"].([]any)[1].(map[string]any)["mediaType"] = mediaType
			})
			dir := filepath.Join(t.TempDir(), "demo")
			assertOneLine(t, pullInto(t, dir, s.ref("1")), says)
			assert.NoDirExists(t, dir, "nothing is fetched")
			assert.Empty(t, s.blobs())
		})
	}
}

// editManifest changes the served image's manifest, and tags the new one.
func editManifest(t *testing.T, s *served, edit func(m map[string]any)) {
	t.Helper()
	data, err := os.ReadFile(oci.BlobPath(s.layout, s.image.Manifest.Digest))
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	edit(m)
	d, err := oci.WriteJSON(s.layout, m["mediaType"].(string), m)
	require.NoError(t, err)
	d.Annotations = map[string]string{oci.RefName: "1"}
	require.NoError(t, oci.WriteIndex(s.layout, d))
	s.image.Manifest = d
}

func TestADockerManifestIsKeptAsAnOCIOne(t *testing.T) {
	s := serve(t, oci.Image{}, nil)
	editManifest(t, s, func(m map[string]any) {
		m["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json"
		m["config"].(map[string]any)["mediaType"] = "application/vnd.docker.container.image.v1+json"
		for _, l := range m["layers"].([]any) {
			l.(map[string]any)["mediaType"] = "application/vnd.docker.image.rootfs.diff.tar.gzip"
		}
	})
	dir := filepath.Join(t.TempDir(), "demo")
	r := pullInto(t, dir, s.ref("1"))
	require.Equal(t, 0, r.Status, r.Stderr)
	entry := tags(t, dir)["1"]
	require.Equal(t, oci.MediaManifest, entry.MediaType)
	data, err := os.ReadFile(oci.BlobPath(dir, entry.Digest))
	require.NoError(t, err)
	assert.Equal(t, oci.Digest(data), entry.Digest)
	var m struct {
		MediaType string
		Config    oci.Descriptor
		Layers    []oci.Descriptor
	}
	require.NoError(t, json.Unmarshal(data, &m))
	assert.Equal(t, oci.MediaManifest, m.MediaType)
	assert.Equal(t, oci.MediaConfig, m.Config.MediaType)
	assert.Equal(t, s.image.Config.Digest, m.Config.Digest)
	for i, l := range m.Layers {
		assert.Equal(t, oci.MediaTarGzip, l.MediaType)
		assert.Equal(t, s.image.Layers[i].Digest, l.Digest)
		assert.FileExists(t, oci.BlobPath(dir, l.Digest))
	}
}

func TestInterruptedOrKilledLeavesNoHalfBlob(t *testing.T) {
	var slow target
	s := serve(t, oci.Image{}, func(s *testregistry.Server) { s.Pace = slow.pace(200 * time.Millisecond) })
	slow.set(s.image.Layers[0].Digest)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "demo")
			cmd := tool.Command(t, "-o", dir, s.ref("1"))
			require.NoError(t, cmd.Start())
			waitForTemporaryFile(t, dir)
			require.NoError(t, cmd.Process.Signal(sig))
			err := cmd.Wait()
			require.Error(t, err, "pull should not succeed")
			if sig == syscall.SIGKILL {
				// What the killed pull left, the next one removes.
				slow.set("")
				defer slow.set(s.image.Layers[0].Digest)
				r := pullInto(t, dir, s.ref("1"))
				require.Equal(t, 0, r.Status, r.Stderr)
				assertHoldsTheImage(t, dir, "1", s)
				return
			}
			assert.Empty(t, tags(t, dir), "the layout names no image")
			assertNoTemporaryFiles(t, dir)
		})
	}
}

// waitForTemporaryFile waits until pull is writing a blob into dir.
func waitForTemporaryFile(t *testing.T, dir string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		temps, _ := filepath.Glob(filepath.Join(dir, "blobs", "sha256", tempPrefix+"*"))
		if len(temps) > 0 {
			return temps[0]
		}
	}
	t.Fatal("pull wrote no temporary file in 30 s")
	return ""
}

func TestTwoPullsIntoOneLayoutKeepBothImages(t *testing.T) {
	var slow target
	s := serve(t, oci.Image{}, func(s *testregistry.Server) { s.Pace = slow.pace(100 * time.Millisecond) })
	slow.set(s.image.Layers[0].Digest)
	// A second image, tagged 2 in the same repository.
	second, err := oci.WriteImage(s.layout, oci.Image{Layers: []oci.Layer{{file("two", "2")}}, Tag: "2"})
	require.NoError(t, err)
	require.NoError(t, oci.WriteIndex(s.layout, s.image.Entry, second.Entry))

	dir := filepath.Join(t.TempDir(), "demo")
	first := tool.Command(t, "-o", dir, s.ref("1"))
	require.NoError(t, first.Start())
	// The second starts while the first is writing a blob: it must neither
	// take the first's half-written blob for a leftover nor lose its tag.
	waitForTemporaryFile(t, dir)
	r := pullInto(t, dir, s.ref("2"))
	require.Equal(t, 0, r.Status, r.Stderr)
	require.NoError(t, first.Wait())
	byTag := tags(t, dir)
	assert.Equal(t, second.Entry.Digest, byTag["2"].Digest)
	assertHoldsTheImage(t, dir, "1", s)
}

func TestShowsProgressOnATerminalOnly(t *testing.T) {
	var slow target
	s := serve(t, oci.Image{}, func(s *testregistry.Server) { s.Pace = slow.pace(60 * time.Millisecond) }) // 16 pieces: a second
	slow.set(s.image.Layers[0].Digest)
	term := steptest.StartOnTerminal(t, tool.Command(t, "-o", filepath.Join(t.TempDir(), "demo"), s.ref("1")))
	shown := term.Wait(t)
	layer := s.image.Layers[0].Digest[:19]
	assert.Regexp(t, `\r`+layer+`  0\.\d MiB of 0\.5 MiB`, shown)
	assert.Contains(t, shown, layer+"  0.5 MiB, done")

	r := pullInto(t, filepath.Join(t.TempDir(), "demo"), s.ref("1"))
	require.Equal(t, 0, r.Status, r.Stderr)
	assert.NotContains(t, r.Stdout, "\r", "no progress where stdout is not a terminal")
	assert.Equal(t, 2, strings.Count(r.Stdout, "\n"), r.Stdout)
}

func TestPlainHTTPOnlyOnTheLoopback(t *testing.T) {
	for _, ref := range []string{"localhost:5000/demo:1", "127.0.0.1:5000/demo:1", "127.0.0.2/demo", "[::1]:5000/demo:1"} {
		r, err := parseReference(ref)
		require.NoError(t, err)
		assert.True(t, r.loopback(), ref)
	}
	for _, host := range []string{"registry-1.docker.io", "ghcr.io", "10.0.0.1:5000", "localhost.example.com:5000", "127.0.0.1.nip.io"} {
		r, err := parseReference(host + "/demo:1")
		require.NoError(t, err)
		assert.Equal(t, "https://"+host, r.base(), host)
	}
}

func TestPullsByDigest(t *testing.T) {
	s := serve(t, oci.Image{}, nil)
	dir := filepath.Join(t.TempDir(), "demo")
	digest := s.image.Manifest.Digest
	r := pullInto(t, dir, s.addr+"/demo@"+digest)
	require.Equal(t, 0, r.Status, r.Stderr)
	assertHoldsTheImage(t, dir, digest, s)
	assert.Contains(t, s.server.Requests(), "GET /v2/demo/manifests/"+digest)

	t.Run("a tag and a digest: the digest wins", func(t *testing.T) {
		_, err := oci.WriteImage(s.layout, oci.Image{Layers: []oci.Layer{{file("two", "2")}}, Tag: "2"})
		require.NoError(t, err)
		dir := filepath.Join(t.TempDir(), "demo")
		before := len(s.server.Requests())
		r := pullInto(t, dir, s.addr+"/demo:2@"+digest)
		require.Equal(t, 0, r.Status, r.Stderr)
		assertHoldsTheImage(t, dir, "2", s)
		assert.NotContains(t, s.server.Requests()[before:], "GET /v2/demo/manifests/2")
	})

	t.Run("a manifest that is not the digest", func(t *testing.T) {
		s := serve(t, oci.Image{}, func(s *testregistry.Server) {
			s.OmitDigest = true // the registry's word is not there to give it away
			s.Tamper = func(d string, data []byte) []byte {
				if strings.Contains(string(data), `"layers"`) {
					return []byte(strings.Replace(string(data), `"layers"`, `"layers" `, 1))
				}
				return data
			}
		})
		dir := filepath.Join(t.TempDir(), "demo")
		assertOneLine(t, pullInto(t, dir, s.addr+"/demo@"+s.image.Manifest.Digest), "hashes to")
		assert.NoDirExists(t, dir)
	})
}

func TestAnIndexThatLiesAboutItsManifestIsRefused(t *testing.T) {
	s := serve(t, oci.Image{Platforms: []string{thisPlatform().String()}}, nil)
	// The index says the manifest is a byte longer than it is.
	data, err := os.ReadFile(oci.BlobPath(s.layout, s.image.Entry.Digest))
	require.NoError(t, err)
	var index map[string]any
	require.NoError(t, json.Unmarshal(data, &index))
	for _, m := range index["manifests"].([]any) {
		if m.(map[string]any)["digest"] == s.image.Manifest.Digest {
			m.(map[string]any)["size"] = s.image.Manifest.Size + 1
		}
	}
	d, err := oci.WriteJSON(s.layout, oci.MediaIndex, index)
	require.NoError(t, err)
	d.Annotations = map[string]string{oci.RefName: "1"}
	require.NoError(t, oci.WriteIndex(s.layout, d))
	dir := filepath.Join(t.TempDir(), "demo")
	assertOneLine(t, pullInto(t, dir, s.ref("1")), "is not the application/vnd.oci.image.manifest.v1+json of")
	assert.NoDirExists(t, dir)
}

func TestAnImageOfAnotherPlatformIsRefusedBeforeItsLayers(t *testing.T) {
	s := serve(t, oci.Image{}, nil) // one manifest, no index: its config says linux/GOARCH
	dir := filepath.Join(t.TempDir(), "demo")
	assertOneLine(t, pullInto(t, dir, "-platform", "linux/s390x", s.ref("1")),
		"the image is for "+thisPlatform().String()+" only: pull it with -platform "+thisPlatform().String()+" to keep it anyway")
	assert.Equal(t, []string{"GET /v2/demo/blobs/" + s.image.Config.Digest}, s.blobs(), "the config, and no layer")
	assert.Empty(t, tags(t, dir))
}

func TestDigestsThatAreNoFileNamesAreRefused(t *testing.T) {
	outside := t.TempDir()
	bad := "sha256:../../../../../../../../.." + outside + "/x"
	for name, edit := range map[string]func(m map[string]any){
		"a layer's":  func(m map[string]any) { m["layers"].([]any)[0].(map[string]any)["digest"] = bad },
		"the config": func(m map[string]any) { m["config"].(map[string]any)["digest"] = bad },
		"another algorithm": func(m map[string]any) {
			m["layers"].([]any)[0].(map[string]any)["digest"] = "sha512:" + strings.Repeat("ab", 64)
		},
		"a negative size": func(m map[string]any) { m["layers"].([]any)[0].(map[string]any)["size"] = -1 },
		"a config of 1 GiB": func(m map[string]any) {
			m["config"].(map[string]any)["size"] = 1 << 30
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := serve(t, oci.Image{}, nil)
			editManifest(t, s, edit)
			dir := filepath.Join(t.TempDir(), "demo")
			r := pullInto(t, dir, s.ref("1"))
			assertOneLine(t, r, "manifest: ")
			assert.NoDirExists(t, dir)
			assert.Empty(t, s.blobs())
			entries, _ := os.ReadDir(outside)
			assert.Empty(t, entries)
		})
	}
}

func TestHTTPSOnlyOffTheLoopback(t *testing.T) {
	// pull refuses before it dials: no packet leaves. As root the tests
	// run in a network namespace of their own even so.
	steptest.RequireRoot(t)
	t.Run("an auth server on plain HTTP elsewhere", func(t *testing.T) {
		s := serve(t, oci.Image{}, nil)
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="http://192.0.2.1/token",service="x"`)
			w.WriteHeader(http.StatusUnauthorized)
		}))
		t.Cleanup(ts.Close)
		_ = s
		dir := filepath.Join(t.TempDir(), "demo")
		assertOneLine(t, pullInto(t, dir, strings.TrimPrefix(ts.URL, "http://")+"/demo:1"), `names an auth server pull will not use: "http://192.0.2.1/token"`)
	})
	t.Run("a blob redirected to plain HTTP elsewhere", func(t *testing.T) {
		s := serve(t, oci.Image{}, func(s *testregistry.Server) {
			s.Redirect = func(string) string { return "http://192.0.2.1:1/blob" }
		})
		dir := filepath.Join(t.TempDir(), "demo")
		assertOneLine(t, pullInto(t, dir, s.ref("1")), "redirected to http://192.0.2.1:1/blob: refused, HTTPS only off the loopback")
		assert.Empty(t, tags(t, dir))
	})
}

func TestTheTokenGoesToTheRegistryOnly(t *testing.T) {
	// A blob redirected to another server, on another port of the same
	// host (as to a CDN): it gets no token.
	var authorization atomic.Value
	authorization.Store("none asked")
	var cdn *testregistry.Server
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authorization.Store(r.Header.Get("Authorization"))
		cdn.ServeHTTP(w, r)
	}))
	t.Cleanup(other.Close)
	s := serve(t, oci.Image{}, func(s *testregistry.Server) {
		s.Token = true
		s.Redirect = func(d string) string { return other.URL + "/v2/demo/blobs/" + d }
	})
	cdn = &testregistry.Server{Layouts: s.server.Layouts}
	dir := filepath.Join(t.TempDir(), "demo")
	r := pullInto(t, dir, s.ref("1"))
	require.Equal(t, 0, r.Status, r.Stderr)
	assertHoldsTheImage(t, dir, "1", s)
	assert.Equal(t, "", authorization.Load(), "the other server got the registry's token")
}

func TestATokenThatExpiresIsRenewed(t *testing.T) {
	s := serve(t, oci.Image{}, func(s *testregistry.Server) { s.Token, s.TokenUses = true, 2 })
	dir := filepath.Join(t.TempDir(), "demo")
	r := pullInto(t, dir, s.ref("1"))
	require.Equal(t, 0, r.Status, r.Stderr)
	assertHoldsTheImage(t, dir, "1", s)
	tokens := 0
	for _, req := range s.server.Requests() {
		if req == "GET /token" {
			tokens++
		}
	}
	assert.Equal(t, 3, tokens, "two requests to a token: the probe and the manifest, the config and a layer, the last layer")
}

func TestAStalledRegistryIsGivenUpOn(t *testing.T) {
	t.Setenv("CONTAINERS_FROM_SCRATCH_PULL_STALL", "1s")
	var target target
	for name, configure := range map[string]func(s *testregistry.Server){
		"a manifest that stops half-way": func(s *testregistry.Server) { s.Stall = target.is },
		"a layer that stops half-way":    func(s *testregistry.Server) { s.Stall = target.is },
		// 32 KiB every 0.7 s: bytes keep coming, but less than 64 KiB a second.
		"a layer that trickles": func(s *testregistry.Server) { s.Pace = target.pace(700 * time.Millisecond) },
	} {
		t.Run(name, func(t *testing.T) {
			s := serve(t, oci.Image{}, configure)
			if strings.HasPrefix(name, "a manifest") {
				target.set(s.image.Manifest.Digest)
			} else {
				target.set(s.image.Layers[0].Digest)
			}
			dir := filepath.Join(t.TempDir(), "demo")
			r := pullInto(t, dir, s.ref("1"))
			if strings.HasPrefix(name, "a manifest") {
				assertOneLine(t, r, "sent no whole answer in 1s")
			} else {
				assertOneLine(t, r, "less than 64 KiB came in 1s")
			}
			assertNoTemporaryFiles(t, dir)
		})
	}
}

func TestABlobThatDoesNotEndIsCutAtItsSize(t *testing.T) {
	var endless target
	s := serve(t, oci.Image{}, func(s *testregistry.Server) { s.Endless = endless.is })
	endless.set(s.image.Layers[1].Digest)
	dir := filepath.Join(t.TempDir(), "demo")
	assertOneLine(t, pullInto(t, dir, s.ref("1")), "the registry sent")
	assert.Empty(t, tags(t, dir))
	assertNoTemporaryFiles(t, dir)
}

func TestAManifestLargerThan4MiBIsRefused(t *testing.T) {
	s := serve(t, oci.Image{}, func(s *testregistry.Server) {
		s.Tamper = func(d string, data []byte) []byte {
			if strings.Contains(string(data), `"layers"`) {
				return append(data, make([]byte, 4<<20)...)
			}
			return data
		}
	})
	dir := filepath.Join(t.TempDir(), "demo")
	assertOneLine(t, pullInto(t, dir, s.ref("1")), "is larger than 4 MiB")
}

func TestADockerManifestListIsAnIndex(t *testing.T) {
	s := serve(t, oci.Image{Platforms: []string{thisPlatform().String()}}, nil)
	data, err := os.ReadFile(oci.BlobPath(s.layout, s.image.Entry.Digest))
	require.NoError(t, err)
	var index map[string]any
	require.NoError(t, json.Unmarshal(data, &index))
	const list = "application/vnd.docker.distribution.manifest.list.v2+json"
	index["mediaType"] = list
	d, err := oci.WriteJSON(s.layout, list, index)
	require.NoError(t, err)
	d.Annotations = map[string]string{oci.RefName: "1"}
	require.NoError(t, oci.WriteIndex(s.layout, d))
	dir := filepath.Join(t.TempDir(), "demo")
	r := pullInto(t, dir, s.ref("1"))
	require.Equal(t, 0, r.Status, r.Stderr)
	assertHoldsTheImage(t, dir, "1", s)
}

func TestWhatTheRegistrySaysIsPrintedInOneLine(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"errors":[{"code":"NAME_UNKNOWN","message":"nope\n\u001b[1A\u001b[2K\rpull: fetched 3 blobs, all fine \u202eenif\u200b\u2028"}]}`))
	}))
	t.Cleanup(ts.Close)
	r := pullInto(t, filepath.Join(t.TempDir(), "demo"), strings.TrimPrefix(ts.URL, "http://")+"/demo:1")
	assertOneLine(t, r, "nope??[1A?[2K?pull: fetched 3 blobs, all fine ?enif??")
	assert.NotContains(t, r.Stderr, "\x1b")

	t.Run("the status line, with -v", func(t *testing.T) {
		addr := rawServer(t, "HTTP/1.1 404 \x1b[2J\x1b[31mOWNED\r\nContent-Length: 0\r\n\r\n")
		r := pullInto(t, filepath.Join(t.TempDir(), "demo"), "-v", addr+"/demo:1")
		assert.Equal(t, 1, r.Status)
		assert.NotContains(t, r.Stderr, "\x1b", "the terminal is not cleared")
		assert.Contains(t, r.Stderr, "404 ?[2J?[31mOWNED")
	})
}

// rawServer answers every connection on the loopback with answer, as it
// is, and returns its address.
func rawServer(t *testing.T, answer string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				c.Read(make([]byte, 4096))
				c.Write([]byte(answer))
				// Left open, as a server that stops answering.
				t.Cleanup(func() { c.Close() })
			}()
		}
	}()
	return l.Addr().String()
}

func TestAmbiguousManifestsAreRefused(t *testing.T) {
	// Keys that Go reads as one field, and other readers as two: pull and
	// a runtime could see different layers under one digest.
	for name, insert := range map[string]string{
		"a key twice":             `"layers":[],`,
		"a key in capitals":       `"LAYERS":[],`,
		"a key with a long s (ſ)": `"layerſ":[],`,
		"in a layer's descriptor": "",
	} {
		t.Run(name, func(t *testing.T) {
			s := serve(t, oci.Image{}, func(s *testregistry.Server) {
				s.OmitDigest = true // by tag, then, the bytes are the registry's word
				s.Tamper = func(d string, data []byte) []byte {
					if !strings.Contains(string(data), `"layers"`) {
						return data
					}
					if insert == "" {
						return []byte(strings.Replace(string(data), `"digest":`, `"Digest":"sha256:`+hex64+`","digest":`, 1))
					}
					return []byte(strings.Replace(string(data), "{", "{"+insert, 1))
				}
			})
			dir := filepath.Join(t.TempDir(), "demo")
			assertOneLine(t, pullInto(t, dir, s.ref("1")), "in one object: which one counts depends on who reads it")
			assert.NoDirExists(t, dir)
		})
	}
}

func TestARegistryThatNeverFinishesItsHeadersOrItsProbe(t *testing.T) {
	t.Setenv("CONTAINERS_FROM_SCRATCH_PULL_STALL", "1s")
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+r.Host+`/token"`)
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"errors":[`))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(ts.Close)
	for name, addr := range map[string]string{
		"an error that never ends": strings.TrimPrefix(ts.URL, "http://"),
		"headers that never end":   rawServer(t, "HTTP/1.1 200 OK\r\n"),
	} {
		t.Run(name, func(t *testing.T) {
			started := time.Now()
			r := pullInto(t, filepath.Join(t.TempDir(), "demo"), addr+"/demo:1")
			assertOneLine(t, r, "the registry "+addr+" ")
			assert.Less(t, time.Since(started), 30*time.Second)
		})
	}
}

func TestABrokenLayoutIsLeftAsItIs(t *testing.T) {
	s := serve(t, oci.Image{}, nil)
	for name, make := range map[string]func(dir string) error{
		"index.json is null": func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "index.json"), []byte("null"), 0o644)
		},
		"its manifests are no list": func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"manifests":{"keep":"me"}}`), 0o644)
		},
		"index.json is a FIFO": func(dir string) error { return syscall.Mkfifo(filepath.Join(dir, "index.json"), 0o644) },
		"oci-layout is a FIFO": func(dir string) error {
			os.Remove(filepath.Join(dir, "oci-layout"))
			return syscall.Mkfifo(filepath.Join(dir, "oci-layout"), 0o644)
		},
		"index.json leads to /dev/zero": func(dir string) error { return os.Symlink("/dev/zero", filepath.Join(dir, "index.json")) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "demo")
			require.NoError(t, os.MkdirAll(dir, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
			require.NoError(t, make(dir))
			r := pullInto(t, dir, s.ref("1"))
			assert.Equal(t, 1, r.Status, r.Stderr)
			assert.Equal(t, 1, strings.Count(r.Stderr, "\n"), "one line: %q", r.Stderr)
			assert.Empty(t, s.blobs(), "refused before anything is fetched")
		})
	}

	t.Run("what pull does not know is kept as it is", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "demo")
		require.NoError(t, os.MkdirAll(dir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"schemaVersion":2,"manifests":[],"x-big":123456789012345678901}`), 0o644))
		require.Equal(t, 0, pullInto(t, dir, s.ref("1")).Status)
		data, err := os.ReadFile(filepath.Join(dir, "index.json"))
		require.NoError(t, err)
		assert.Contains(t, string(data), "123456789012345678901")
	})
}

func TestAnotherHostsChallengeIsNotAnswered(t *testing.T) {
	// A blob redirected to a host that asks for a token of its own: pull
	// would then send the registry a token that host chose.
	var other *httptest.Server
	var asked atomic.Bool
	other = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			asked.Store(true)
			w.Write([]byte(`{"token":"OTHER"}`))
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+other.URL+`/token"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(other.Close)
	s := serve(t, oci.Image{}, func(s *testregistry.Server) {
		s.Redirect = func(d string) string { return other.URL + "/blob/" + d }
	})
	dir := filepath.Join(t.TempDir(), "demo")
	assertOneLine(t, pullInto(t, dir, s.ref("1")), "HTTP 401")
	assert.Empty(t, tags(t, dir))
	assert.False(t, asked.Load(), "pull asked the other host's auth server for a token")
}

func TestAKilledPullsLayoutIsPickedUpAgain(t *testing.T) {
	s := serve(t, oci.Image{}, nil)
	// What a pull killed at each point of making a new layout leaves.
	for name, files := range map[string][]string{
		"while writing oci-layout":         {".pull-1"},
		"before index.json":                {"oci-layout"},
		"while writing index.json":         {"oci-layout", ".pull-2"},
		"after, in a layout with an image": {"oci-layout", "index.json", ".pull-3"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "demo")
			require.NoError(t, os.MkdirAll(dir, 0o755))
			for _, f := range files {
				content := ""
				switch f {
				case "oci-layout":
					content = `{"imageLayoutVersion":"1.0.0"}`
				case "index.json":
					content = `{"schemaVersion":2,"manifests":[]}`
				}
				require.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644))
			}
			r := pullInto(t, dir, s.ref("1"))
			require.Equal(t, 0, r.Status, r.Stderr)
			assertHoldsTheImage(t, dir, "1", s)
		})
	}
}

func TestCtrlCStopsAPullWaitingForTheLayout(t *testing.T) {
	var slow target
	s := serve(t, oci.Image{}, func(s *testregistry.Server) { s.Pace = slow.pace(100 * time.Millisecond) })
	slow.set(s.image.Layers[0].Digest)
	dir := filepath.Join(t.TempDir(), "demo")
	first := tool.Command(t, "-o", dir, s.ref("1"))
	require.NoError(t, first.Start())
	waitForTemporaryFile(t, dir)

	second := tool.Command(t, "-o", dir, s.ref("1"))
	stderr, err := second.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, second.Start())
	line, err := bufio.NewReader(stderr).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "pull: waiting for another pull into "+dir+"\n", line)
	require.NoError(t, second.Process.Signal(syscall.SIGINT))
	rest, _ := io.ReadAll(stderr)
	err = second.Wait()
	assert.Error(t, err, "an interrupted pull fails")
	assert.Equal(t, "pull: "+s.ref("1")+": interrupted\n", string(rest))
	assert.NoError(t, first.Wait())
	assertHoldsTheImage(t, dir, "1", s)
}

func TestReadsReferencesAsDockerDoes(t *testing.T) {
	for in, want := range map[string]string{
		"alpine":                             "docker.io/library/alpine:latest https://registry-1.docker.io",
		"alpine:3.20":                        "docker.io/library/alpine:3.20 https://registry-1.docker.io",
		"docker.io/alpine:3.20":              "docker.io/library/alpine:3.20 https://registry-1.docker.io",
		"index.docker.io/library/alpine":     "docker.io/library/alpine:latest https://registry-1.docker.io",
		"bitnami/redis:7":                    "docker.io/bitnami/redis:7 https://registry-1.docker.io",
		"ghcr.io/org/app:1.2":                "ghcr.io/org/app:1.2 https://ghcr.io",
		"localhost/app":                      "localhost/app:latest http://localhost",
		"localhost:5000/a/b:c":               "localhost:5000/a/b:c http://localhost:5000",
		"quay.io/org/app@sha256:" + hex64:    "quay.io/org/app@sha256:" + hex64 + " https://quay.io",
		"quay.io/org/app:v1@sha256:" + hex64: "quay.io/org/app:v1@sha256:" + hex64 + " https://quay.io",
	} {
		r, err := parseReference(in)
		if assert.NoError(t, err, in) {
			assert.Equal(t, want, r.String()+" "+r.base(), in)
		}
	}
	for _, bad := range []string{"Alpine", "alpine:", "alpine:-x", "alpine@sha256:abc", "alpine@md5:" + hex64, "a//b", "", "/alpine"} {
		_, err := parseReference(bad)
		assert.Error(t, err, bad)
	}
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestChoosesThePlatformsVariant(t *testing.T) {
	index := []byte(`{"manifests":[
		{"digest":"sha256:` + strings.Repeat("1", 64) + `","platform":{"os":"linux","architecture":"arm","variant":"v6"}},
		{"digest":"sha256:` + strings.Repeat("2", 64) + `","platform":{"os":"linux","architecture":"arm","variant":"v7"}},
		{"digest":"sha256:` + strings.Repeat("3", 64) + `","platform":{"os":"linux","architecture":"arm64"}},
		{"digest":"sha256:` + strings.Repeat("4", 64) + `","platform":{"os":"unknown","architecture":"unknown"}}]}`)
	for want, digit := range map[string]string{"linux/arm/v7": "2", "linux/arm/v6": "1", "linux/arm": "1", "linux/arm64/v8": "3", "linux/arm64": "3"} {
		p, err := parsePlatform(want)
		require.NoError(t, err)
		d, err := choosePlatform(index, p)
		if assert.NoError(t, err, want) {
			assert.Equal(t, "sha256:"+strings.Repeat(digit, 64), d.Digest, want)
		}
	}
	_, err := choosePlatform(index, platform{OS: "linux", Architecture: "arm", Variant: "v8"})
	assert.EqualError(t, err, "no image for linux/arm/v8, only for linux/arm/v6, linux/arm/v7, linux/arm64: choose one with -platform")

	// arm64 is v8 unless it says otherwise, and this machine may not run
	// another; a variant is a word, since index.json keeps it.
	v9 := []byte(`{"manifests":[{"digest":"sha256:` + hex64 + `","platform":{"os":"linux","architecture":"arm64","variant":"v9"}}]}`)
	_, err = choosePlatform(v9, platform{OS: "linux", Architecture: "arm64"})
	assert.EqualError(t, err, "no image for linux/arm64, only for linux/arm64/v9: choose one with -platform")
	odd := []byte(`{"manifests":[{"digest":"sha256:` + hex64 + `","platform":{"os":"linux","architecture":"arm","variant":"v7\u001b[31m"}}]}`)
	_, err = choosePlatform(odd, platform{OS: "linux", Architecture: "arm"})
	assert.EqualError(t, err, `index: linux/arm's variant "v7?[31m" is no platform's`)
}
