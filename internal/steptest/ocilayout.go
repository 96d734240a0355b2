package steptest

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"containers-from-scratch/internal/oci"
)

// This file writes OCI image layouts for the tests (package oci does the
// writing): what `skopeo copy docker://… oci:DIR:TAG` writes, without a
// network, and hostile variants of it. A failure fails the test.

// Media types the writer uses.
const (
	MediaIndex    = oci.MediaIndex
	MediaManifest = oci.MediaManifest
	MediaConfig   = oci.MediaConfig
	MediaTar      = oci.MediaTar
	MediaTarGzip  = oci.MediaTarGzip
	RefName       = oci.RefName
)

// The types of package oci.
type (
	Entry      = oci.Entry
	Layer      = oci.Layer
	Image      = oci.Image
	Descriptor = oci.Descriptor
	Written    = oci.Written
)

// LayerOf returns the tree under dir as a layer (oci.LayerOf).
func LayerOf(t *testing.T, dir string) Layer {
	t.Helper()
	l, err := oci.LayerOf(dir, nil)
	require.NoError(t, err)
	return l
}

// Digest is data's sha256 digest, as "sha256:<hex>".
func Digest(data []byte) string { return oci.Digest(data) }

// BlobPath is where a layout at dir keeps the blob of digest.
func BlobPath(dir, digest string) string { return oci.BlobPath(dir, digest) }

// WriteBlob writes data as a blob of the layout at dir.
func WriteBlob(t *testing.T, dir, mediaType string, data []byte) Descriptor {
	t.Helper()
	d, err := oci.WriteBlob(dir, mediaType, data)
	require.NoError(t, err)
	return d
}

// WriteJSON writes v, in JSON, as a blob of the layout at dir.
func WriteJSON(t *testing.T, dir, mediaType string, v any) Descriptor {
	t.Helper()
	d, err := oci.WriteJSON(dir, mediaType, v)
	require.NoError(t, err)
	return d
}

// WriteIndex writes the layout's oci-layout and an index.json listing
// entries, replacing any there was.
func WriteIndex(t *testing.T, dir string, entries ...Descriptor) {
	t.Helper()
	require.NoError(t, oci.WriteIndex(dir, entries...))
}

// Index returns the entries of the layout's index.json.
func Index(t *testing.T, dir string) []Descriptor {
	t.Helper()
	entries, err := oci.Index(dir)
	require.NoError(t, err)
	return entries
}

// WriteImage writes img into the layout at dir (oci.WriteImage).
func WriteImage(t *testing.T, dir string, img Image) Written {
	t.Helper()
	w, err := oci.WriteImage(dir, img)
	require.NoError(t, err)
	return w
}

// EditManifest rewrites the manifest w wrote, as edit changes it, and
// points index.json (whose entry must be that manifest) to the new one.
// It makes hostile images: a layer of another media type, a wrong size...
func EditManifest(t *testing.T, dir string, w Written, edit func(manifest map[string]any)) Written {
	t.Helper()
	require.Equal(t, w.Entry.Digest, w.Manifest.Digest, "EditManifest: index.json must point to the manifest")
	data, err := os.ReadFile(BlobPath(dir, w.Manifest.Digest))
	require.NoError(t, err)
	var manifest map[string]any
	require.NoError(t, json.Unmarshal(data, &manifest))
	edit(manifest)
	mediaType, _ := manifest["mediaType"].(string) // index.json says what the manifest says it is
	m := WriteJSON(t, dir, mediaType, manifest)
	entries := Index(t, dir)
	for i, e := range entries {
		if e.Digest == w.Manifest.Digest {
			entries[i].MediaType, entries[i].Digest, entries[i].Size = m.MediaType, m.Digest, m.Size
			m.Annotations = e.Annotations
		}
	}
	WriteIndex(t, dir, entries...)
	w.Entry, w.Manifest = m, m
	return w
}
