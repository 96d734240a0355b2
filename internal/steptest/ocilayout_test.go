package steptest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// untar reads a tar stream back into entries.
func untar(t *testing.T, data []byte) Layer {
	t.Helper()
	var layer Layer
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return layer
		}
		require.NoError(t, err)
		body, err := io.ReadAll(tr)
		require.NoError(t, err)
		layer = append(layer, Entry{Header: *hdr, Body: string(body)})
	}
}

// LayerOf takes a tree as it is on disk: owners, modes with setuid, links
// and hard links; Tar keeps it, xattrs included.
func TestLayoutLayerOf(t *testing.T) {
	RequireRoot(t)
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755))
	su := filepath.Join(dir, "usr/bin/su")
	require.NoError(t, os.WriteFile(su, []byte("su"), 0o644))
	require.NoError(t, os.Lchown(su, 42, 43)) // before chmod: chown clears setuid
	require.NoError(t, os.Chmod(su, 0o755|os.ModeSetuid))
	require.NoError(t, os.Link(su, filepath.Join(dir, "usr/bin/su2")))
	require.NoError(t, os.Symlink("usr/bin", filepath.Join(dir, "bin")))

	layer := LayerOf(t, dir)
	layer = append(layer, Entry{Header: tar.Header{Name: "x", Typeflag: tar.TypeReg, Mode: 0o600,
		PAXRecords: map[string]string{"SCHILY.xattr.user.test": "v"}}, Body: "x"})
	byName := map[string]Entry{}
	tarred, err := layer.Tar()
	require.NoError(t, err)
	for _, e := range untar(t, tarred) {
		byName[e.Name] = e
	}
	require.Len(t, byName, 6)
	assert.Equal(t, byte(tar.TypeSymlink), byName["bin"].Typeflag)
	assert.Equal(t, "usr/bin", byName["bin"].Linkname)
	assert.Equal(t, byte(tar.TypeDir), byName["usr/bin/"].Typeflag)
	assert.Equal(t, int64(0o4755), byName["usr/bin/su"].Mode)
	assert.Equal(t, [2]int{42, 43}, [2]int{byName["usr/bin/su"].Uid, byName["usr/bin/su"].Gid})
	assert.Equal(t, "su", byName["usr/bin/su"].Body)
	assert.Equal(t, byte(tar.TypeLink), byName["usr/bin/su2"].Typeflag)
	assert.Equal(t, "usr/bin/su", byName["usr/bin/su2"].Linkname)
	assert.Equal(t, "v", byName["x"].PAXRecords["SCHILY.xattr.user.test"])
}

// WriteImage writes what skopeo would: the same image gets the same
// digests; diff_ids are those of the tars; an index of platforms holds only
// this machine's manifest, and an attestation.
func TestLayoutWriteImage(t *testing.T) {
	img := Image{Layers: []Layer{{{Header: tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644}, Body: "a"}}}, Tag: "t"}
	one, two := t.TempDir(), t.TempDir()
	w := WriteImage(t, one, img)
	assert.Equal(t, w, WriteImage(t, two, img), "the same image, the same digests")
	assert.Equal(t, w.Manifest.Digest, w.Entry.Digest)
	assert.Equal(t, map[string]string{RefName: "t"}, Index(t, one)[0].Annotations)

	var config struct {
		Architecture, OS string
		RootFS           struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	data, err := os.ReadFile(BlobPath(one, w.Config.Digest))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &config))
	assert.Equal(t, runtime.GOARCH+"/linux", config.Architecture+"/"+config.OS)
	gz, err := os.ReadFile(BlobPath(one, w.Layers[0].Digest))
	require.NoError(t, err)
	r, err := gzip.NewReader(bytes.NewReader(gz))
	require.NoError(t, err)
	tarred, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, []string{Digest(tarred)}, config.RootFS.DiffIDs)

	// A second image of the same tag takes it from the first.
	img.Platforms = []string{"linux/s390x", "linux/" + runtime.GOARCH}
	w2 := WriteImage(t, one, img)
	entries := Index(t, one)
	require.Len(t, entries, 2)
	assert.Empty(t, entries[0].Annotations)
	assert.Equal(t, MediaIndex, entries[1].MediaType)
	data, err = os.ReadFile(BlobPath(one, w2.Entry.Digest))
	require.NoError(t, err)
	var index struct{ Manifests []Descriptor }
	require.NoError(t, json.Unmarshal(data, &index))
	require.Len(t, index.Manifests, 3)
	assert.Equal(t, w2.Manifest.Digest, index.Manifests[1].Digest)
	assert.NoFileExists(t, BlobPath(one, index.Manifests[0].Digest), "another platform's manifest is not written")
	assert.NoFileExists(t, BlobPath(one, index.Manifests[2].Digest), "nor the attestation")
	assert.Equal(t, "attestation-manifest", index.Manifests[2].Annotations["vnd.docker.reference.type"])
}
