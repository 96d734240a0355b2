// This file reads an OCI image the way a runtime does, from an image
// layout: the directory that `skopeo copy docker://alpine:3.20
// oci:alpine:3.20` writes (image-spec image-layout.md). Its index.json
// names images by tag; each leads, maybe through indexes of platforms, to
// a manifest, which lists the layers and the config. Every other file is a
// blob named by the sha256 of its bytes, checked against that name as it
// is read: the layout came from elsewhere, and may have been tampered with.

package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// A descriptor points to a blob of the layout, as the OCI image spec defines it.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant,omitempty"`
}

// imageConfig is the part of an image's config that says how to run it (config.md's "config" object).
type imageConfig struct {
	User       string   `json:"User"`
	Env        []string `json:"Env"`
	Entrypoint []string `json:"Entrypoint"`
	Cmd        []string `json:"Cmd"`
	WorkingDir string   `json:"WorkingDir"`
}

// An image is what run needs of an OCI image in a layout directory.
type image struct {
	layout string       // the layout's directory, as given
	layers []descriptor // bottom first, as the manifest lists them
	// diffIDs are the digests of the layers' tars, uncompressed, as the
	// config lists them (rootfs.diff_ids): what each layer unpacks from.
	diffIDs []string
	config  imageConfig
}

// The media types this program reads. Docker's own types are still found
// in layouts that other tools wrote; they mean the same JSON.
const (
	ociIndex       = "application/vnd.oci.image.index.v1+json"
	dockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	ociManifest    = "application/vnd.oci.image.manifest.v1+json"
	dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	ociConfig      = "application/vnd.oci.image.config.v1+json"
	dockerConfig   = "application/vnd.docker.container.image.v1+json"
	refName        = "org.opencontainers.image.ref.name" // the tag
	maxJSON        = 4 << 20                             // an index, manifest or config is small: refuse a huge one
	maxNesting     = 4                                   // indexes of indexes: enough for any real layout, and no loop
)

// The layer media types, each true when gzipped. "nondistributable" is
// deprecated but means the same bytes.
var layerTypes = map[string]bool{
	"application/vnd.oci.image.layer.v1.tar":                       false,
	"application/vnd.oci.image.layer.nondistributable.v1.tar":      false,
	"application/vnd.oci.image.layer.v1.tar+gzip":                  true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": true,
	"application/vnd.docker.image.rootfs.diff.tar.gzip":            true,
}

const noZstd = "which Go's standard library does not read: copy the image again with gzip layers, as in skopeo copy --dest-compress-format gzip oci:DIR:TAG oci:DIR2:TAG"

// openImage finds the image that ref names ("DIR:TAG", or "DIR" for a
// layout of one image) and reads its manifest and config.
func openImage(ref string) (image, error) {
	// A tag may hold ":" and "/" (podman saves docker.io/library/alpine:3.20),
	// a directory seldom does: split at the first ":", as skopeo does.
	dir, tag, tagged := strings.Cut(ref, ":")
	img := image{layout: dir}
	var layout struct{ ImageLayoutVersion string }
	var index struct{ Manifests []descriptor }
	err := img.readFile("oci-layout", &layout)
	switch {
	case errors.Is(err, os.ErrNotExist):
		err = fmt.Errorf("%s is not an OCI image layout (it has no oci-layout file): make one, as in skopeo copy docker://alpine:3.20 oci:%s:3.20", dir, dir)
	case err == nil && layout.ImageLayoutVersion != "1.0.0":
		err = fmt.Errorf("%s is an image layout of version %q: this program reads 1.0.0", dir, layout.ImageLayoutVersion)
	case err == nil:
		err = img.readFile("index.json", &index)
	}
	var d descriptor
	if err == nil {
		d, err = pickTag(index.Manifests, tag, tagged)
	}
	if err == nil {
		d, err = img.resolve(d, 0)
	}
	if err == nil {
		err = img.readManifest(d)
	}
	if err != nil {
		return img, fmt.Errorf("image %s: %w", ref, err)
	}
	return img, nil
}

// pickTag chooses the entry of index.json that the tag names, or the only
// one when no tag is given. An entry the tag names is taken whatever its
// media type, so that resolve says which it is; several of one tag (one
// per platform) leave the choice to pickPlatform.
func pickTag(all []descriptor, tag string, tagged bool) (descriptor, error) {
	entries := knownEntries(all)
	var tags []string
	var named []descriptor
	for _, d := range all {
		if name, ok := d.Annotations[refName]; ok {
			if !slices.Contains(tags, name) {
				tags = append(tags, name)
			}
			if name == tag {
				named = append(named, d)
			}
		}
	}
	have := "it has no tags"
	if len(tags) > 0 {
		have = "its tags: " + strings.Join(tags, ", ")
	}
	switch {
	case !tagged && len(entries) == 1:
		return entries[0], nil
	case !tagged && len(entries) == 0:
		return descriptor{}, errors.New("index.json lists no image")
	case !tagged:
		return descriptor{}, fmt.Errorf("index.json lists %d images: name one as DIR:TAG; %s", len(entries), have)
	case len(named) == 0:
		return descriptor{}, fmt.Errorf("no tag %q in index.json; %s", tag, have)
	}
	return pickPlatform("index.json", named)
}

// knownEntries keeps the entries of an index that lead to images: image-layout.md
// says an unknown media type there "MUST NOT generate an error".
func knownEntries(entries []descriptor) []descriptor {
	var out []descriptor
	for _, d := range entries {
		switch d.MediaType {
		case ociIndex, dockerList, ociManifest, dockerManifest:
			out = append(out, d)
		}
	}
	return out
}

// resolve follows indexes down to the manifest of this machine's platform
// (skopeo copy --all makes index.json point to an index of platforms).
func (img image) resolve(d descriptor, depth int) (descriptor, error) {
	switch d.MediaType {
	case ociManifest, dockerManifest:
		return d, nil
	case ociIndex, dockerList:
	default:
		return d, fmt.Errorf("blob %s: media type %q is not an index or manifest this program reads", d.Digest, d.MediaType)
	}
	if depth == maxNesting {
		return d, fmt.Errorf("blob %s: indexes nested more than %d deep", d.Digest, maxNesting)
	}
	var index struct{ Manifests []descriptor }
	if err := img.readJSON(d, &index); err != nil {
		return d, err
	}
	next, err := pickPlatform("index "+d.Digest, knownEntries(index.Manifests))
	if err != nil {
		return d, err
	}
	return img.resolve(next, depth+1)
}

// pickPlatform chooses the entry made for this machine, Linux on
// runtime.GOARCH. Docker Hub's indexes also hold attestations (records of
// the build, "unknown/unknown"): no image to run.
func pickPlatform(where string, entries []descriptor) (descriptor, error) {
	var images []descriptor
	for _, d := range entries {
		attestation := d.Annotations["vnd.docker.reference.type"] == "attestation-manifest"
		if p := d.Platform; !attestation && (p == nil || p.OS != "unknown" || p.Architecture != "unknown") {
			images = append(images, d)
		}
	}
	if len(images) == 1 && images[0].Platform == nil {
		return images[0], nil // one image: its config says for which platform
	}
	var have []string
	for _, d := range images {
		if d.Platform == nil {
			continue
		}
		if fitsHere(*d.Platform) {
			return d, nil
		}
		p := d.Platform
		have = append(have, strings.TrimSuffix(p.OS+"/"+p.Architecture+"/"+p.Variant, "/"))
	}
	if len(have) == 0 {
		have = []string{"no platform named"}
	}
	return descriptor{}, fmt.Errorf("%s has no linux/%s image: it has %s", where, runtime.GOARCH, strings.Join(have, ", "))
}

// fitsHere says whether a platform runs here. A variant names a generation of
// processor: arm64 images say "v8" or nothing; amd64's v2 and v3 are rare
// and run on nearly every amd64 machine of today, so they are not checked.
func fitsHere(p platform) bool {
	if p.OS != "linux" || p.Architecture != runtime.GOARCH {
		return false
	}
	return runtime.GOARCH != "arm64" || p.Variant == "" || p.Variant == "v8"
}

// readManifest reads the manifest and its config, and checks the layers'
// media types before anything is unpacked.
func (img *image) readManifest(d descriptor) error {
	var m struct {
		MediaType string
		Config    descriptor
		Layers    []descriptor
	}
	if err := img.readJSON(d, &m); err != nil {
		return err
	}
	if m.MediaType != "" && m.MediaType != d.MediaType {
		return fmt.Errorf("manifest %s says it is %q, index.json that it is %q", d.Digest, m.MediaType, d.MediaType)
	}
	if m.Config.MediaType != ociConfig && m.Config.MediaType != dockerConfig {
		return fmt.Errorf("manifest %s: config media type %q is not one this program reads", d.Digest, m.Config.MediaType)
	}
	var config struct {
		Architecture, OS string
		Config           imageConfig
		RootFS           struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := img.readJSON(m.Config, &config); err != nil {
		return err
	}
	if (config.OS != "" && config.OS != "linux") || (config.Architecture != "" && config.Architecture != runtime.GOARCH) {
		return fmt.Errorf("config %s is for %s/%s: this machine runs linux/%s", m.Config.Digest, config.OS, config.Architecture, runtime.GOARCH)
	}
	for _, l := range m.Layers {
		if !digestForm.MatchString(l.Digest) {
			return fmt.Errorf("layer %q: not a digest this program reads (sha256: and 64 lowercase hex digits)", l.Digest)
		}
		if strings.HasSuffix(l.MediaType, "+zstd") {
			return fmt.Errorf("layer %s is compressed with zstd, %s", l.Digest, noZstd)
		}
		if _, ok := layerTypes[l.MediaType]; !ok {
			return fmt.Errorf("layer %s: media type %q is not a layer this program reads", l.Digest, l.MediaType)
		}
	}
	if len(config.RootFS.DiffIDs) != len(m.Layers) {
		return fmt.Errorf("config %s lists %d layers' diff_ids, its manifest %d layers", m.Config.Digest, len(config.RootFS.DiffIDs), len(m.Layers))
	}
	for _, id := range config.RootFS.DiffIDs {
		if !digestForm.MatchString(id) {
			return fmt.Errorf("config %s: diff_id %q is not a digest this program reads (sha256: and 64 lowercase hex digits)", m.Config.Digest, id)
		}
	}
	img.layers, img.diffIDs, img.config = m.Layers, config.RootFS.DiffIDs, config.Config
	return nil
}

// readFile reads one of the two files of the layout that are no blob, and
// have no digest to check: oci-layout and index.json.
func (img image) readFile(name string, v any) error {
	f, err := img.openInLayout(name)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s/%s is missing (%w)", img.layout, name, err)
	} else if err != nil {
		return fmt.Errorf("%s/%s: %w", img.layout, name, err)
	}
	defer f.Close()
	return decodeJSON(f, img.layout+"/"+name, v)
}

// readJSON reads a JSON blob whole, checks it and decodes it.
func (img image) readJSON(d descriptor, v any) error {
	if d.Size > maxJSON {
		return fmt.Errorf("blob %s: %d bytes, more than a JSON blob may have (%d)", d.Digest, d.Size, maxJSON)
	}
	b, err := img.openBlob(d)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := decodeJSON(b, b.name, v); err != nil {
		return err
	}
	return b.Verify() // the JSON decoded is the JSON the digest names
}

// decodeJSON reads at most maxJSON bytes of JSON from r into v.
func decodeJSON(r io.Reader, name string, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, maxJSON+1))
	switch {
	case err != nil:
		return fmt.Errorf("read %s: %w", name, err)
	case len(data) > maxJSON:
		return fmt.Errorf("%s has more than %d bytes: too big for JSON", name, maxJSON)
	case json.Unmarshal(data, v) != nil:
		return fmt.Errorf("%s is not the JSON it should be", name)
	}
	return nil
}

// openInLayout opens a file of the layout. openat2's RESOLVE_BENEATH
// refuses any ".." or symbolic link that would lead out of the layout's
// directory, and RESOLVE_NO_MAGICLINKS any /proc/PID/fd-like link: the
// layout is the image's, not ours. O_NONBLOCK: a FIFO in its place would
// block a plain open forever.
func (img image) openInLayout(path string) (*os.File, error) {
	dir, err := unix.Open(img.layout, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dir)
	how := unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	// A ".." walked while something is renamed makes the kernel unsure it
	// stayed beneath: EAGAIN, to be tried again.
	fd, err := unix.Openat2(dir, path, &how)
	for try := 0; errors.Is(err, unix.EAGAIN) && try < 100; try++ {
		fd, err = unix.Openat2(dir, path, &how)
	}
	if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("refused, a link in the layout leads out of it or through /proc (openat2: %w)", err)
	}
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path)
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// A blob is a file of the layout, hashed as it is read.
type blob struct {
	file *os.File
	name string // "blob sha256:… of DIR", for messages
	d    descriptor
	hash hash.Hash
	read int64
}

var digestForm = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// openBlob opens a blob of the layout. Its digest comes from the image and
// becomes a path: it must be sha256: and 64 hex digits, nothing else
// ("sha256:../../x" would name a file out of the layout).
func (img image) openBlob(d descriptor) (*blob, error) {
	if !digestForm.MatchString(d.Digest) {
		return nil, fmt.Errorf("blob %q of %s: not a digest this program reads (sha256: and 64 lowercase hex digits)", d.Digest, img.layout)
	}
	b := &blob{name: fmt.Sprintf("blob %s of %s", d.Digest, img.layout), d: d, hash: sha256.New()}
	f, err := img.openInLayout("blobs/sha256/" + strings.TrimPrefix(d.Digest, "sha256:"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s is missing: copy the image into the layout again (%w)", b.name, err)
	} else if err != nil {
		return nil, fmt.Errorf("%s: %w", b.name, err)
	}
	b.file = f
	// The size first, as descriptor.md advises: a swapped blob is refused
	// before a byte of it is read.
	st, err := f.Stat()
	if err == nil && st.Size() != d.Size {
		err = fmt.Errorf("%s has %d bytes, its descriptor says %d: the layout is damaged, copy the image again", b.name, st.Size(), d.Size)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return b, nil
}

// Read reads the blob, hashing what it reads.
func (b *blob) Read(p []byte) (int, error) {
	n, err := b.file.Read(p)
	b.read += int64(n)
	b.hash.Write(p[:n])
	return n, err
}

func (b *blob) Close() error { return b.file.Close() }

// Verify reads what is left and says whether the bytes were those the
// digest names: only then may what was made of them be kept.
func (b *blob) Verify() error {
	if _, err := io.Copy(io.Discard, b); err != nil {
		return fmt.Errorf("read %s: %w", b.name, err)
	}
	if b.read != b.d.Size {
		return fmt.Errorf("%s has %d bytes, its descriptor says %d: the layout is damaged, copy the image again", b.name, b.read, b.d.Size)
	}
	if "sha256:"+hex.EncodeToString(b.hash.Sum(nil)) != b.d.Digest {
		return fmt.Errorf("%s does not hash to its digest: the layout is damaged, copy the image again", b.name)
	}
	return nil
}

// layerReader returns the tar stream of a layer. The first bytes say what
// the blob is, whatever its media type claims.
func layerReader(b io.Reader, mediaType string) (io.Reader, error) {
	name := "layer"
	if bl, ok := b.(*blob); ok {
		name = bl.name
	}
	br := bufio.NewReader(b)
	magic, _ := br.Peek(4)
	gzipped, ok := layerTypes[mediaType]
	switch {
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}) || strings.HasSuffix(mediaType, "+zstd"):
		return nil, fmt.Errorf("%s is compressed with zstd, %s", name, noZstd)
	case !ok:
		return nil, fmt.Errorf("%s: media type %q is not a layer this program reads", name, mediaType)
	case !gzipped:
		return br, nil
	case !bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return nil, fmt.Errorf("%s is not gzip, as its media type %s says: the layout is damaged, copy the image again", name, mediaType)
	}
	gz, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("%s: broken gzip header (%w): the layout is damaged, copy the image again", name, err)
	}
	return gz, nil
}
