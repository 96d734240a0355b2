// Package oci writes OCI image layouts (image-spec image-layout.md), by
// hand with archive/tar, compress/gzip and crypto/sha256: what
// "skopeo copy docker://… oci:DIR:TAG" writes, without a network. mkrootfs
// writes the course's demo image with it, and the tests their images.
package oci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// Media types the writer uses.
const (
	MediaIndex    = "application/vnd.oci.image.index.v1+json"
	MediaManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTar      = "application/vnd.oci.image.layer.v1.tar"
	MediaTarGzip  = "application/vnd.oci.image.layer.v1.tar+gzip"
	RefName       = "org.opencontainers.image.ref.name"
)

// An Entry is one entry of a layer's tar: Header.Name is relative, as in
// "etc/passwd"; a regular file's Size is set from Body.
type Entry struct {
	tar.Header
	Body string
}

// A Layer is a layer's entries, in the order the tar holds them.
type Layer []Entry

// Image says what WriteImage writes.
type Image struct {
	Layers []Layer
	// Config is the config's "config" object (User, Env, Entrypoint, Cmd,
	// WorkingDir); nil writes none.
	Config map[string]any
	// Tag is the manifest's org.opencontainers.image.ref.name in
	// index.json; "" writes no annotation.
	Tag string
	// Platforms, when not empty, makes index.json point to an index of one
	// manifest per "os/arch[/variant]" (as skopeo copy --all): the first
	// linux/GOARCH one is the image; the others, and an unknown/unknown
	// attestation, point to blobs that are not written, so reading them
	// fails. Empty: index.json points to the manifest.
	Platforms []string
	// Compression is "gzip" (the default) or "none".
	Compression string
}

// A Descriptor points to a blob (image-spec descriptor.md).
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    map[string]string `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Written is what WriteImage wrote.
type Written struct {
	Entry    Descriptor // the entry added to index.json: the manifest, or the index of platforms
	Manifest Descriptor // this machine's manifest ("" digest when no platform is this machine's)
	Config   Descriptor
	Layers   []Descriptor // bottom first
	DiffIDs  []string     // the digests of the layers' tars, uncompressed (the config's rootfs.diff_ids)
}

// LayerOf returns the tree under dir as a layer: names relative to dir,
// owners, modes, times and link targets as on disk; a file whose inode was
// already seen becomes a hard link to the first name. Sockets are left out,
// and so is what skip says to (given the name relative to dir).
func LayerOf(dir string, skip func(name string) bool) (Layer, error) {
	var layer Layer
	seen := map[uint64]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir || d.Type()&fs.ModeSocket != 0 {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var target string
		if info.Mode()&fs.ModeSymlink != 0 {
			if target, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, target)
		if err != nil {
			return err
		}
		hdr.Name, hdr.Uname, hdr.Gname = rel, "", ""
		if info.IsDir() {
			hdr.Name += "/"
		}
		e := Entry{Header: *hdr}
		if info.Mode().IsRegular() {
			st := info.Sys().(*syscall.Stat_t)
			if first, ok := seen[st.Ino]; ok && st.Nlink > 1 {
				e.Typeflag, e.Linkname, e.Size = tar.TypeLink, first, 0
			} else {
				seen[st.Ino] = rel
				body, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				e.Body = string(body)
			}
		}
		layer = append(layer, e)
		return nil
	})
	return layer, err
}

// Tar returns the layer as a tar stream, in PAX format so that
// PAXRecords ("SCHILY.xattr.user.x") are kept.
func (l Layer) Tar() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range l {
		hdr := e.Header
		hdr.Format = tar.FormatPAX
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			return nil, fmt.Errorf("%s: %w", hdr.Name, err)
		}
		if _, err := tw.Write([]byte(e.Body)); err != nil {
			return nil, fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
	err := tw.Close()
	return buf.Bytes(), err
}

// Gzip compresses data as gzip, with no name or time in its header, so
// that the same layer has the same digest every time.
func Gzip(data []byte) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	_, _ = gz.Write(data) // a bytes.Buffer takes it all
	_ = gz.Close()
	return buf.Bytes()
}

// Digest is data's sha256 digest, as "sha256:<hex>".
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// BlobPath is where a layout at dir keeps the blob of digest.
func BlobPath(dir, digest string) string {
	return filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// WriteBlob writes data as a blob of the layout at dir.
func WriteBlob(dir, mediaType string, data []byte) (Descriptor, error) {
	d := Descriptor{MediaType: mediaType, Digest: Digest(data), Size: int64(len(data))}
	if err := os.MkdirAll(filepath.Dir(BlobPath(dir, d.Digest)), 0o755); err != nil {
		return d, err
	}
	return d, os.WriteFile(BlobPath(dir, d.Digest), data, 0o644)
}

// WriteJSON writes v, in JSON, as a blob of the layout at dir.
func WriteJSON(dir, mediaType string, v any) (Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return Descriptor{}, err
	}
	return WriteBlob(dir, mediaType, data)
}

// WriteIndex writes the layout's oci-layout and an index.json listing
// entries, replacing any there was.
func WriteIndex(dir string, entries ...Descriptor) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return err
	}
	if entries == nil {
		entries = []Descriptor{}
	}
	data, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": MediaIndex, "manifests": entries})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "index.json"), data, 0o644)
}

// Index returns the entries of the layout's index.json (none when there is
// no index.json yet).
func Index(dir string) ([]Descriptor, error) {
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var index struct{ Manifests []Descriptor }
	err = json.Unmarshal(data, &index)
	return index.Manifests, err
}

// WriteImage writes img into the layout at dir, making the layout or adding
// to it. As skopeo does, an older entry of the same tag loses its tag.
func WriteImage(dir string, img Image) (Written, error) {
	var w Written
	var diffIDs []string
	for _, l := range img.Layers {
		data, err := l.Tar()
		if err != nil {
			return w, err
		}
		diffIDs = append(diffIDs, Digest(data)) // rootfs.diff_ids: the uncompressed tars
		w.DiffIDs = append(w.DiffIDs, Digest(data))
		var d Descriptor
		switch img.Compression {
		case "", "gzip":
			d, err = WriteBlob(dir, MediaTarGzip, Gzip(data))
		case "none":
			d, err = WriteBlob(dir, MediaTar, data)
		default:
			err = fmt.Errorf("compression %q: gzip or none", img.Compression)
		}
		if err != nil {
			return w, err
		}
		w.Layers = append(w.Layers, d)
	}
	config := map[string]any{
		"architecture": runtime.GOARCH, "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": append([]string{}, diffIDs...)},
	}
	if img.Config != nil {
		config["config"] = img.Config
	}
	var err error
	if w.Config, err = WriteJSON(dir, MediaConfig, config); err != nil {
		return w, err
	}
	manifest := map[string]any{
		"schemaVersion": 2, "mediaType": MediaManifest,
		"config": w.Config, "layers": append([]Descriptor{}, w.Layers...),
	}
	if w.Entry, err = w.writePlatforms(dir, img.Platforms, manifest); err != nil {
		return w, err
	}
	old, err := Index(dir)
	if err != nil {
		return w, err
	}
	var entries []Descriptor
	for _, e := range old {
		if img.Tag != "" && e.Annotations[RefName] == img.Tag {
			delete(e.Annotations, RefName)
		}
		entries = append(entries, e)
	}
	if img.Tag != "" {
		w.Entry.Annotations = map[string]string{RefName: img.Tag}
	}
	return w, WriteIndex(dir, append(entries, w.Entry)...)
}

// writePlatforms writes the manifest and, with platforms, the index of
// them; it returns what index.json is to point to.
func (w *Written) writePlatforms(dir string, platforms []string, manifest map[string]any) (Descriptor, error) {
	var err error
	if len(platforms) == 0 {
		w.Manifest, err = WriteJSON(dir, MediaManifest, manifest)
		return w.Manifest, err
	}
	var entries []Descriptor
	for _, p := range platforms {
		parts := strings.SplitN(p, "/", 3)
		if len(parts) < 2 {
			return Descriptor{}, fmt.Errorf("platform %q: os/arch[/variant]", p)
		}
		plat := map[string]string{"os": parts[0], "architecture": parts[1]}
		if len(parts) == 3 {
			plat["variant"] = parts[2]
		}
		d := Descriptor{MediaType: MediaManifest, Digest: Digest([]byte(p)), Size: 1234, Platform: plat}
		if w.Manifest.Digest == "" && parts[0] == "linux" && parts[1] == runtime.GOARCH {
			if w.Manifest, err = WriteJSON(dir, MediaManifest, manifest); err != nil {
				return d, err
			}
			d.Digest, d.Size = w.Manifest.Digest, w.Manifest.Size
			w.Manifest.Platform = plat
		}
		entries = append(entries, d)
	}
	entries = append(entries, Descriptor{
		MediaType: MediaManifest, Digest: Digest([]byte("attestation")), Size: 1234,
		Platform:    map[string]string{"os": "unknown", "architecture": "unknown"},
		Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest"},
	})
	return WriteJSON(dir, MediaIndex, map[string]any{"schemaVersion": 2, "mediaType": MediaIndex, "manifests": entries})
}
