package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"containers-from-scratch/internal/steptest"
)

// These tests read layouts that steptest writes, as skopeo would, and
// hostile ones: image.go must take the right image or refuse in one line.

// A testImage image: one layer with a file, one with a directory.
var testImage = steptest.Image{
	Layers: []steptest.Layer{
		{{Header: tar.Header{Name: "hello", Typeflag: tar.TypeReg, Mode: 0o644}, Body: "hello\n"}},
		{{Header: tar.Header{Name: "app/", Typeflag: tar.TypeDir, Mode: 0o755, Uid: 1000, Gid: 1000}}},
	},
	Config: map[string]any{
		"User": "app", "Env": []string{"A=1"}, "Entrypoint": []string{"/bin/sh", "-c"},
		"Cmd": []string{"echo hi"}, "WorkingDir": "/app",
	},
	Tag: "3.20",
}

// refusedInOneLine asserts that err is an error of one line that holds each of want.
func refusedInOneLine(t *testing.T, err error, want ...string) {
	t.Helper()
	require.Error(t, err)
	steptest.OneLine(t, err.Error())
	for _, w := range want {
		assert.Contains(t, err.Error(), w)
	}
}

// sameImageLayers asserts that the image's layers are those the writer wrote.
func sameImageLayers(t *testing.T, want []steptest.Descriptor, got []descriptor) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		assert.Equal(t, want[i].Digest, got[i].Digest)
		assert.Equal(t, want[i].Size, got[i].Size)
		assert.Equal(t, want[i].MediaType, got[i].MediaType)
	}
}

// readImageLayer reads a layer as run will: its tar's entry names, then Verify.
func readImageLayer(t *testing.T, img image, d descriptor) ([]string, error) {
	t.Helper()
	b, err := img.openBlob(d)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	r, err := layerReader(b, d.MediaType)
	if err != nil {
		return nil, err
	}
	var names []string
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		names = append(names, hdr.Name)
	}
	return names, b.Verify()
}

func TestOpenImageByTag(t *testing.T) {
	dir := t.TempDir()
	w := steptest.WriteImage(t, dir, testImage)
	other := testImage
	other.Tag, other.Layers = "docker.io/library/alpine:3.20", other.Layers[:1] // podman's full names
	w2 := steptest.WriteImage(t, dir, other)

	img, err := openImage(dir + ":3.20")
	require.NoError(t, err)
	assert.Equal(t, dir, img.layout)
	sameImageLayers(t, w.Layers, img.layers)
	assert.Equal(t, imageConfig{User: "app", Env: []string{"A=1"}, Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"echo hi"}, WorkingDir: "/app"}, img.config)
	names, err := readImageLayer(t, img, img.layers[0])
	require.NoError(t, err)
	assert.Equal(t, []string{"hello"}, names)

	img, err = openImage(dir + ":docker.io/library/alpine:3.20")
	require.NoError(t, err)
	sameImageLayers(t, w2.Layers, img.layers)
}

func TestOpenImageTagNotFound(t *testing.T) {
	dir := t.TempDir()
	steptest.WriteImage(t, dir, testImage)
	_, err := openImage(dir + ":3.21")
	refusedInOneLine(t, err, `"3.21"`, "3.20", dir)
	_, err = openImage(dir + ":3")
	refusedInOneLine(t, err, `"3"`, "its tags: 3.20")
}

func TestOpenImageWithoutTag(t *testing.T) {
	dir := t.TempDir()
	untagged := testImage
	untagged.Tag = ""
	w := steptest.WriteImage(t, dir, untagged)
	img, err := openImage(dir)
	require.NoError(t, err, "the only image")
	sameImageLayers(t, w.Layers, img.layers)

	steptest.WriteImage(t, dir, testImage)
	_, err = openImage(dir)
	refusedInOneLine(t, err, "2 images", "DIR:TAG", "its tags: 3.20")

	entries := steptest.Index(t, dir) // a tag on both: listed once
	entries[0].Annotations = entries[1].Annotations
	steptest.WriteIndex(t, dir, entries...)
	_, err = openImage(dir)
	refusedInOneLine(t, err, "2 images", "its tags: 3.20")
	assert.NotContains(t, err.Error(), "3.20, 3.20")

	steptest.WriteIndex(t, dir)
	_, err = openImage(dir)
	refusedInOneLine(t, err, "index.json lists no image")
}

func TestOpenImagePicksThisMachinesPlatform(t *testing.T) {
	for _, platforms := range [][]string{
		{"linux/s390x", "linux/" + runtime.GOARCH, "linux/ppc64le"},
		{"linux/arm/v7", "linux/" + runtime.GOARCH + "/v8"}, // arm64's v8 is arm64; amd64 ignores variants
	} {
		dir := t.TempDir()
		multi := testImage
		multi.Platforms = platforms
		// The other platforms' manifests and the attestation are not
		// written: reading any of them would fail.
		w := steptest.WriteImage(t, dir, multi)
		img, err := openImage(dir + ":3.20")
		require.NoError(t, err, "%v", platforms)
		sameImageLayers(t, w.Layers, img.layers)
	}
}

func TestOpenImageNestedIndex(t *testing.T) {
	dir := t.TempDir()
	multi := testImage
	multi.Tag, multi.Platforms = "", []string{"linux/" + runtime.GOARCH}
	w := steptest.WriteImage(t, dir, multi)
	// index.json → index → index → the index of platforms → manifest.
	entry := w.Entry
	for range 2 {
		entry = steptest.WriteJSON(t, dir, steptest.MediaIndex, map[string]any{"schemaVersion": 2, "manifests": []steptest.Descriptor{entry}})
	}
	steptest.WriteIndex(t, dir, entry)
	img, err := openImage(dir)
	require.NoError(t, err)
	sameImageLayers(t, w.Layers, img.layers)

	unnamed := w.Manifest
	unnamed.Platform = nil
	two := steptest.WriteJSON(t, dir, steptest.MediaIndex, map[string]any{"schemaVersion": 2, "manifests": []steptest.Descriptor{unnamed, unnamed}})
	steptest.WriteIndex(t, dir, two)
	_, err = openImage(dir)
	refusedInOneLine(t, err, "has no linux/"+runtime.GOARCH+" image: it has no platform named")

	steptest.WriteIndex(t, dir, entry)
	for range 2 { // deeper than 4: refused, as a loop would be
		entry = steptest.WriteJSON(t, dir, steptest.MediaIndex, map[string]any{"schemaVersion": 2, "manifests": []steptest.Descriptor{entry}})
	}
	steptest.WriteIndex(t, dir, entry)
	_, err = openImage(dir)
	refusedInOneLine(t, err, "nested more than 4")
}

func TestOpenImageNoFittingPlatform(t *testing.T) {
	dir := t.TempDir()
	multi := testImage
	multi.Platforms = []string{"linux/s390x", "windows/" + runtime.GOARCH, "linux/riscv64"}
	steptest.WriteImage(t, dir, multi)
	_, err := openImage(dir + ":3.20")
	refusedInOneLine(t, err, "has no linux/"+runtime.GOARCH+" image: it has linux/s390x, windows/"+runtime.GOARCH+", linux/riscv64")
	assert.NotContains(t, err.Error(), "unknown")
}

// An attestation is never taken for the image, even when it claims this
// machine's platform, or when it and the image are all an index holds.
func TestOpenImageSkipsAttestations(t *testing.T) {
	dir := t.TempDir()
	untagged := testImage
	untagged.Tag = ""
	w := steptest.WriteImage(t, dir, untagged)
	for _, plat := range []map[string]string{{"os": "unknown", "architecture": "unknown"}, {"os": "linux", "architecture": runtime.GOARCH}} {
		attestation := steptest.Descriptor{
			MediaType: steptest.MediaManifest, Digest: steptest.Digest([]byte("no such blob")), Size: 10, Platform: plat,
			Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest"},
		}
		index := steptest.WriteJSON(t, dir, steptest.MediaIndex, map[string]any{"schemaVersion": 2, "manifests": []steptest.Descriptor{attestation, w.Manifest}})
		steptest.WriteIndex(t, dir, index)
		img, err := openImage(dir)
		require.NoError(t, err)
		sameImageLayers(t, w.Layers, img.layers)
	}
}

// An index entry of a media type unknown to this program is skipped, as
// image-layout.md asks; a tag naming one is refused, naming the type.
func TestOpenImageUnknownMediaTypes(t *testing.T) {
	dir := t.TempDir()
	w := steptest.WriteImage(t, dir, testImage)
	artifact := steptest.Descriptor{MediaType: "application/vnd.example.thing", Digest: steptest.Digest(nil), Size: 0}
	steptest.WriteIndex(t, dir, artifact, w.Entry)
	_, err := openImage(dir + ":3.20")
	require.NoError(t, err)
	_, err = openImage(dir)
	require.NoError(t, err, "the only image of index.json")

	steptest.EditManifest(t, dir, w, func(m map[string]any) {
		m["mediaType"] = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	})
	_, err = openImage(dir + ":3.20")
	refusedInOneLine(t, err, "application/vnd.docker.distribution.manifest.v1+prettyjws")

	w = steptest.WriteImage(t, dir, testImage)
	steptest.EditManifest(t, dir, w, func(m map[string]any) {
		m["config"].(map[string]any)["mediaType"] = "application/vnd.example.config"
	})
	_, err = openImage(dir + ":3.20")
	refusedInOneLine(t, err, "application/vnd.example.config")

	w = steptest.WriteImage(t, dir, testImage)
	steptest.EditManifest(t, dir, w, func(m map[string]any) {
		m["layers"].([]any)[1].(map[string]any)["mediaType"] = "application/vnd.example.layer"
	})
	_, err = openImage(dir + ":3.20")
	refusedInOneLine(t, err, "application/vnd.example.layer", w.Layers[1].Digest)

	// What the manifest says it is and what index.json says must agree.
	w = steptest.WriteImage(t, dir, testImage)
	docker := steptest.EditManifest(t, dir, w, func(m map[string]any) {
		m["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json"
	})
	docker.Entry.MediaType = steptest.MediaManifest
	steptest.WriteIndex(t, dir, docker.Entry)
	_, err = openImage(dir + ":3.20")
	refusedInOneLine(t, err, "says it is")
}

func TestOpenImageRefusesZstd(t *testing.T) {
	dir := t.TempDir()
	w := steptest.WriteImage(t, dir, testImage)
	steptest.EditManifest(t, dir, w, func(m map[string]any) {
		m["layers"].([]any)[0].(map[string]any)["mediaType"] = "application/vnd.oci.image.layer.v1.tar+zstd"
	})
	_, err := openImage(dir + ":3.20")
	refusedInOneLine(t, err, "zstd", "skopeo copy --dest-compress-format gzip")

	// zstd's bytes under a gzip media type: the magic number tells.
	_, err = layerReader(bytes.NewReader([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0}), steptest.MediaTarGzip)
	refusedInOneLine(t, err, "zstd", "skopeo copy --dest-compress-format gzip")
}

func TestOpenImageBrokenGzip(t *testing.T) {
	_, err := layerReader(bytes.NewReader([]byte("hello/\x00\x00\x00")), steptest.MediaTarGzip)
	refusedInOneLine(t, err, "not gzip")
	_, err = layerReader(bytes.NewReader([]byte{0x1f, 0x8b, 0x99, 0x99}), steptest.MediaTarGzip)
	refusedInOneLine(t, err, "broken gzip header")
	_, err = layerReader(bytes.NewReader(nil), "application/vnd.example.layer")
	refusedInOneLine(t, err, "application/vnd.example.layer")
	r, err := layerReader(bytes.NewReader([]byte("plain tar")), steptest.MediaTar)
	require.NoError(t, err, "a plain tar is read as it is")
	data, _ := io.ReadAll(r)
	assert.Equal(t, "plain tar", string(data))
}

// A digest is checked before it makes a path: "sha256:../../x" would
// otherwise open a file outside the layout.
func TestOpenImageRefusesBadDigests(t *testing.T) {
	dir := t.TempDir()
	w := steptest.WriteImage(t, dir, testImage)
	for _, digest := range []string{"sha256:../../../etc/passwd", "sha512:" + w.Config.Digest[7:] + w.Config.Digest[7:], "SHA256:" + w.Config.Digest[7:], w.Config.Digest + "/"} {
		w = steptest.EditManifest(t, dir, w, func(m map[string]any) { m["config"].(map[string]any)["digest"] = digest })
		_, err := openImage(dir + ":3.20")
		refusedInOneLine(t, err, digest, "not a digest")
		_, err = image{layout: dir}.openBlob(descriptor{Digest: digest})
		refusedInOneLine(t, err, "not a digest")
	}
	w = steptest.WriteImage(t, dir, testImage)
	steptest.EditManifest(t, dir, w, func(m map[string]any) { m["layers"].([]any)[1].(map[string]any)["digest"] = "sha256:../../x" })
	_, err := openImage(dir + ":3.20")
	refusedInOneLine(t, err, "sha256:../../x", "not a digest")
}

func TestOpenImageMissingBlob(t *testing.T) {
	dir := t.TempDir()
	w := steptest.WriteImage(t, dir, testImage)
	require.NoError(t, os.Remove(steptest.BlobPath(dir, w.Layers[0].Digest)))
	img, err := openImage(dir + ":3.20")
	require.NoError(t, err, "layers are opened when they are unpacked")
	_, err = img.openBlob(img.layers[0])
	refusedInOneLine(t, err, w.Layers[0].Digest, "missing")

	require.NoError(t, os.Remove(steptest.BlobPath(dir, w.Config.Digest)))
	_, err = openImage(dir + ":3.20")
	refusedInOneLine(t, err, w.Config.Digest, "missing")
}

// A blob whose bytes changed but not its size is read, and Verify says so;
// one whose size changed is refused when opened.
func TestOpenImageChangedBlob(t *testing.T) {
	dir := t.TempDir()
	w := steptest.WriteImage(t, dir, testImage)
	img, err := openImage(dir + ":3.20")
	require.NoError(t, err)

	path := steptest.BlobPath(dir, w.Layers[0].Digest)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	changed := bytes.Clone(data)
	changed[len(changed)-9] ^= 1 // the gzip's CRC: the tar reads, the hash differs
	require.NoError(t, os.WriteFile(path, changed, 0o644))
	_, err = readImageLayer(t, img, img.layers[0])
	refusedInOneLine(t, err, w.Layers[0].Digest, "does not hash to its digest")

	require.NoError(t, os.WriteFile(path, append(data, 0), 0o644))
	_, err = img.openBlob(img.layers[0])
	refusedInOneLine(t, err, w.Layers[0].Digest, "its descriptor says")

	// The size in the manifest is wrong; the blob is right.
	require.NoError(t, os.WriteFile(path, data, 0o644))
	w = steptest.EditManifest(t, dir, w, func(m map[string]any) {
		m["layers"].([]any)[0].(map[string]any)["size"] = w.Layers[0].Size - 1
	})
	img, err = openImage(dir + ":3.20")
	require.NoError(t, err)
	_, err = img.openBlob(img.layers[0])
	refusedInOneLine(t, err, "its descriptor says")

	// The blob changes while it is read: Verify counts what it read.
	b, err := img.openBlob(img.layers[1])
	require.NoError(t, err)
	require.NoError(t, os.Truncate(steptest.BlobPath(dir, w.Layers[1].Digest), 10))
	refusedInOneLine(t, b.Verify(), "has 10 bytes, its descriptor says")
	b.Close()

	// A JSON blob's size is refused before it is read.
	big := steptest.EditManifest(t, dir, w, func(m map[string]any) { m["config"].(map[string]any)["size"] = 5 << 20 })
	_, err = openImage(dir + ":3.20")
	refusedInOneLine(t, err, big.Config.Digest, "more than a JSON blob may have")
	steptest.WriteIndex(t, dir, w.Entry)

	config := steptest.BlobPath(dir, w.Config.Digest)
	data, err = os.ReadFile(config)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(config, bytes.Replace(data, []byte("echo hi"), []byte("echo HI"), 1), 0o644))
	_, err = openImage(dir + ":3.20")
	refusedInOneLine(t, err, w.Config.Digest, "does not hash")
}

// A link in the layout that leads out of it is refused, even when what it
// leads to holds the right bytes.
func TestOpenImageRefusesLinksOut(t *testing.T) {
	for _, target := range []string{"abs", "../elsewhere/sha256"} {
		dir := filepath.Join(t.TempDir(), "layout")
		w := steptest.WriteImage(t, dir, testImage)
		blobs := filepath.Join(dir, "blobs", "sha256")
		elsewhere := filepath.Join(filepath.Dir(dir), "elsewhere", "sha256")
		require.NoError(t, os.MkdirAll(filepath.Dir(elsewhere), 0o755))
		require.NoError(t, os.Rename(blobs, elsewhere))
		if target == "abs" {
			target = elsewhere
		} else {
			target = "../" + target
		}
		require.NoError(t, os.Symlink(target, blobs))
		_, err := openImage(dir + ":3.20")
		refusedInOneLine(t, err, "leads out", w.Manifest.Digest)
	}
}

// A link that stays inside the layout is followed: only leaving it is
// refused. A FIFO in a blob's place is refused at once, not waited on.
func TestOpenImageLinksInsideAndFIFOs(t *testing.T) {
	dir := t.TempDir()
	w := steptest.WriteImage(t, dir, testImage)
	blobs := filepath.Join(dir, "blobs", "sha256")
	require.NoError(t, os.Rename(blobs, filepath.Join(dir, "store")))
	require.NoError(t, os.Symlink("../store", blobs))
	_, err := openImage(dir + ":3.20")
	require.NoError(t, err)

	config := steptest.BlobPath(dir, w.Config.Digest)
	require.NoError(t, os.Remove(config))
	require.NoError(t, unix.Mkfifo(config, 0o644))
	_, err = openImage(dir + ":3.20")
	refusedInOneLine(t, err, w.Config.Digest, "not a regular file")
}

func TestOpenImageNeedsALayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "alpine")
	_, err := openImage(dir + ":3.20")
	refusedInOneLine(t, err, "not an OCI image layout", "skopeo copy docker://alpine:3.20 oci:"+dir+":3.20")

	require.NoError(t, os.Mkdir(dir, 0o755))
	_, err = openImage(dir)
	refusedInOneLine(t, err, "not an OCI image layout", "skopeo copy")

	steptest.WriteImage(t, dir, testImage)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"2.0.0"}`), 0o644))
	_, err = openImage(dir)
	refusedInOneLine(t, err, `"2.0.0"`, "1.0.0")

	steptest.WriteImage(t, dir, testImage)
	require.NoError(t, os.Remove(filepath.Join(dir, "index.json")))
	_, err = openImage(dir + ":3.20")
	refusedInOneLine(t, err, "index.json", "missing")
}

func TestOpenImageOfAnotherArchitecture(t *testing.T) {
	dir := t.TempDir()
	w := steptest.WriteImage(t, dir, testImage)
	config := steptest.WriteJSON(t, dir, steptest.MediaConfig, map[string]any{"architecture": "s390x", "os": "linux"})
	steptest.EditManifest(t, dir, w, func(m map[string]any) { m["config"] = config })
	_, err := openImage(dir + ":3.20")
	refusedInOneLine(t, err, "linux/s390x", "this machine runs linux/"+runtime.GOARCH)
}

// The tests' root filesystem, as one layer: every entry comes back, gzipped
// or not.
func TestOpenImageOfTheRootfs(t *testing.T) {
	layer := steptest.LayerOf(t, step.Rootfs)
	for _, compression := range []string{"gzip", "none"} {
		dir := t.TempDir()
		steptest.WriteImage(t, dir, steptest.Image{Layers: []steptest.Layer{layer}, Compression: compression})
		img, err := openImage(dir)
		require.NoError(t, err)
		names, err := readImageLayer(t, img, img.layers[0])
		require.NoError(t, err)
		require.Len(t, names, len(layer))
		assert.Contains(t, names, "usr/bin/sh")
	}
}
