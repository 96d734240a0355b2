// Command pull fetches an image from a registry into an OCI image layout,
// the folder step13 runs images from: what `skopeo copy docker://REF
// oci:DIR:TAG` does, with Go's standard library.
//
// Usage:
//
//	go run ./pull [-o DIR] [-platform linux/ARCH[/VARIANT]] [-v] REF
//
// REF is read as Docker reads it: alpine is docker.io/library/alpine:latest,
// localhost:5000/demo:1 is on a registry of this machine. The image lands in
// the layout DIR (images/NAME by default, NAME the last part of the image's
// name), tagged with REF's tag; a layout may hold many images and their
// shared layers once. For example:
//
//	go run ./pull alpine:3.20
//	go run -exec sudo ./step13-image run -image images/alpine:3.20
//
// The platform is this machine's, linux/amd64 or linux/arm64, unless
// -platform says another. A registry on the loopback is spoken to in plain
// HTTP, as Docker does; any other only over HTTPS. Every blob is checked
// against its digest as it arrives, and nothing is half-written: a pull
// that fails names no new image in the layout, which keeps the blobs it
// finished and checked, for the next pull not to fetch again (a pull that
// fails before its first blob writes nothing at all). -v shows each
// request to the registry and its answer.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unicode"

	"golang.org/x/sys/unix"
)

const usage = "usage: pull [-o DIR] [-platform linux/ARCH[/VARIANT]] [-v] REF"

func main() {
	flags := flag.NewFlagSet("pull", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	dir := flags.String("o", "", "")
	plat := flags.String("platform", "linux/"+runtime.GOARCH, "")
	verbose := flags.Bool("v", false, "")
	if err := flags.Parse(os.Args[1:]); err != nil || flags.NArg() != 1 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	ref, err := parseReference(flags.Arg(0))
	if err == nil {
		var want platform
		want, err = parsePlatform(*plat)
		if err == nil {
			if *dir == "" {
				*dir = "images/" + path.Base(ref.path)
			}
			// Ctrl-C cancels the request under way; the deferred removals
			// then run, and leave no temporary file.
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			var trace io.Writer
			if *verbose {
				trace = os.Stderr
			}
			err = pull(ctx, newRegistry(ref, trace), *dir, want, os.Stdout)
			stop()
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pull: %s: %v\n", flags.Arg(0), err)
		os.Exit(1)
	}
}

// A descriptor points to a blob: its media type, digest and size.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// pull fetches the image ref names into the layout at dir.
func pull(ctx context.Context, r *registry, dir string, want platform, out *os.File) error {
	start := time.Now()
	ref := r.ref
	have := &layout{dir: dir} // read only, until the image is known

	// 1. The probe. A registry answers 200, or 401 with a challenge that
	// names the auth server to get a token from (get gets it).
	probe, cancel := context.WithTimeout(ctx, stallAfter)
	resp, err := r.get(probe, "/v2/")
	if err == nil {
		resp.Body.Close()
	}
	cancel()
	if err != nil {
		return err
	}

	// 2. The tag's manifest, or its index: one manifest per platform.
	body, mediaType, digest, err := r.manifest(ctx, ref.manifest())
	if err != nil {
		return notFound(ref, err)
	}
	if err := unambiguous(body); err != nil {
		return fmt.Errorf("manifest %s: %w", clean(ref.manifest()), err)
	}
	top := descriptor{MediaType: mediaType, Digest: digest, Size: int64(len(body))}
	if isIndex(mediaType) {
		if top, err = choosePlatform(body, want); err != nil {
			return err
		}
		var ok bool
		if body, ok = have.read(top); !ok {
			if body, mediaType, _, err = r.manifest(ctx, top.Digest); err != nil {
				return err
			}
			if mediaType != top.MediaType || int64(len(body)) != top.Size {
				return fmt.Errorf("manifest %s is not the %s of %d bytes its index says", short(top.Digest), clean(top.MediaType), top.Size)
			}
		}
		if err := unambiguous(body); err != nil {
			return fmt.Errorf("manifest %s: %w", short(top.Digest), err)
		}
	}
	if !isManifest(top.MediaType) {
		return fmt.Errorf("the registry sent a %q: pull reads OCI and Docker v2 manifests and indexes only", clean(top.MediaType))
	}
	if top.MediaType != mediaManifest {
		// A Docker manifest, written again as the OCI manifest it
		// matches, as skopeo does: an image layout's readers look for OCI
		// media types in index.json.
		if body, err = dockerToOCI(body); err != nil {
			return fmt.Errorf("manifest %s: %w", short(top.Digest), err)
		}
		top.MediaType, top.Digest, top.Size = mediaManifest, digestOf(body), int64(len(body))
	}
	// Read from the very bytes the layout will keep, as step13 reads them.
	var m struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("manifest %s: %w", short(top.Digest), err)
	}
	if err := checkBlobs(m.Config, m.Layers); err != nil {
		return err
	}

	// 3. The blobs, each checked as it streams in, into the layout: the
	// config first, then the layers, the manifest after what it names,
	// and index.json last: a layout never names what it does not hold.
	l, err := openLayout(ctx, dir, os.Stderr)
	if err != nil {
		return err
	}
	defer l.close()
	var fetched, had int
	var bytes int64
	show := onTerminal(out)
	for i, d := range append([]descriptor{m.Config}, m.Layers...) {
		if l.has(d) {
			had++
		} else {
			p := &progress{out: out, on: show, d: d, start: time.Now()}
			if err := l.addBlob(d.Digest, func(w io.Writer) error { return r.blob(ctx, d, w, p.update) }); err != nil {
				p.end(false)
				return err
			}
			p.end(true)
			fetched++
			bytes += d.Size
		}
		if i == 0 && top.Platform == nil {
			// One manifest without an index: only its config says its
			// platform, before any layer is fetched.
			if err := checkConfigPlatform(l, m.Config, want); err != nil {
				return err
			}
		}
	}
	if err := l.addBlob(top.Digest, func(w io.Writer) error { _, err := w.Write(body); return err }); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	if err := l.tag(ref.name(), top); err != nil {
		return err
	}

	var size int64
	for _, d := range m.Layers {
		size += d.Size
	}
	fmt.Fprintf(out, "pull: %s:%s is %s for %s: %d layers, %s\n", dir, ref.name(), ref, want, len(m.Layers), mib(size))
	fmt.Fprintf(out, "pull: fetched %d blobs (%s) in %v; %d were here already\n", fetched, mib(bytes), time.Since(start).Round(time.Millisecond), had)
	return nil
}

// notFound words a manifest the registry does not have.
func notFound(ref reference, err error) error {
	if e, ok := err.(*registryError); ok && e.code == "NAME_UNKNOWN" {
		return fmt.Errorf("%s: no such image (%v)", ref.domain+"/"+ref.path, err)
	}
	if e, ok := err.(*registryError); ok && (e.status == 404 || e.code == "MANIFEST_UNKNOWN") {
		what := "tag " + ref.tag
		if ref.tag == "" {
			what = "manifest " + ref.digest
		}
		return fmt.Errorf("%s has no %s (%v)", ref.domain+"/"+ref.path, what, err)
	}
	if e, ok := err.(*registryError); ok && e.status == 401 {
		return fmt.Errorf("%s: no such image, or a private one (%v)", ref.domain+"/"+ref.path, err)
	}
	return err
}

// unambiguous refuses JSON that two readers could read two ways: an
// object with a key twice, or with two keys that differ only in case
// ("layers" and "LAYERS", or "layerſ"). Go's encoding/json takes the last
// that matches a field, whatever its case; another reader may take the
// first, or only the exact one, and see other layers under the same digest.
func unambiguous(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var walk func() error
	walk = func() error {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'):
			var keys []string
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key := k.(string)
				for _, other := range keys {
					if strings.EqualFold(key, other) {
						return fmt.Errorf("keys %q and %q in one object: which one counts depends on who reads it", clean(other), clean(key))
					}
				}
				keys = append(keys, key)
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token() // }
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token() // ]
			return err
		}
		return nil
	}
	return walk()
}

// dockerToOCI rewrites a Docker v2 manifest as an OCI one: the same
// config and layers, under the OCI names of their media types. The
// manifest is unambiguous: read as a map and written again, it says what
// it said.
func dockerToOCI(body []byte) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	m["mediaType"] = mediaManifest
	ociType := map[string]string{
		"application/vnd.docker.container.image.v1+json":    "application/vnd.oci.image.config.v1+json",
		"application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
	}
	blobs := []any{m["config"]}
	if layers, ok := m["layers"].([]any); ok {
		blobs = append(blobs, layers...)
	}
	for _, b := range blobs {
		if d, ok := b.(map[string]any); ok {
			if t, ok := ociType[fmt.Sprint(d["mediaType"])]; ok {
				d["mediaType"] = t
			}
		}
	}
	return json.Marshal(m)
}

func isIndex(mediaType string) bool {
	return mediaType == mediaIndex || mediaType == "application/vnd.docker.distribution.manifest.list.v2+json"
}

func isManifest(mediaType string) bool {
	return mediaType == mediaManifest || mediaType == "application/vnd.docker.distribution.manifest.v2+json"
}

// checkBlobs refuses a manifest whose blobs step13 could not use, before
// anything is fetched: a digest pull could not name a file by, a config or
// layer of a media type it does not know.
func checkBlobs(config descriptor, layers []descriptor) error {
	for i, d := range append([]descriptor{config}, layers...) {
		what := "the config"
		if i > 0 {
			what = fmt.Sprintf("layer %d", i)
		}
		if !digestPattern.MatchString(d.Digest) || d.Size < 0 {
			return fmt.Errorf("manifest: %s has digest %q and size %d: pull takes sha256 digests only", what, clean(d.Digest), d.Size)
		}
		if i == 0 && d.Size > maxJSON {
			return fmt.Errorf("manifest: the config is %d bytes: more than %d MiB is no config", d.Size, maxJSON>>20)
		}
		switch {
		case i == 0 && (d.MediaType == "application/vnd.oci.image.config.v1+json" ||
			d.MediaType == "application/vnd.docker.container.image.v1+json"):
		case i > 0 && (d.MediaType == "application/vnd.oci.image.layer.v1.tar" ||
			d.MediaType == "application/vnd.oci.image.layer.v1.tar+gzip" ||
			d.MediaType == "application/vnd.docker.image.rootfs.diff.tar.gzip"):
		case i > 0 && strings.HasSuffix(d.MediaType, "+zstd"):
			return fmt.Errorf("%s is compressed with zstd, which step13 does not read: pull an image compressed with gzip", what)
		default:
			return fmt.Errorf("%s has media type %q, which pull does not know", what, clean(d.MediaType))
		}
	}
	return nil
}

// A platform is an operating system and a processor, as in linux/arm64/v8.
type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant,omitempty"`
}

func (p platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

func parsePlatform(s string) (platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return platform{}, fmt.Errorf("-platform %s: give OS/ARCH[/VARIANT], as in linux/arm64", s)
	}
	p := platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// matches reports whether an image for p runs where want is asked for. An
// arm64 image with no variant is a v8 one.
func (p platform) matches(want platform) bool {
	variant, wanted := p.Variant, want.Variant
	if p.Architecture == "arm64" {
		// Docker's rule: arm64 is v8 unless it says otherwise, which
		// this machine may not run.
		if variant == "" {
			variant = "v8"
		}
		if wanted == "" {
			wanted = "v8"
		}
	}
	return p.OS == want.OS && p.Architecture == want.Architecture &&
		(wanted == "" || variant == wanted)
}

// platformWord is what an OS, architecture or variant is made of.
var platformWord = regexp.MustCompile(`^[a-z0-9._-]{1,32}$`)

// choosePlatform picks want's manifest from an index. Other entries, such
// as the attestations BuildKit adds (platform unknown/unknown), are left.
func choosePlatform(index []byte, want platform) (descriptor, error) {
	var idx struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(index, &idx); err != nil {
		return descriptor{}, fmt.Errorf("index: %w", err)
	}
	var offered []string
	for _, d := range idx.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" {
			continue
		}
		if d.Platform.matches(want) {
			// The platform goes into index.json as it is: plain words only.
			if !platformWord.MatchString(d.Platform.Variant) && d.Platform.Variant != "" {
				return descriptor{}, fmt.Errorf("index: %s's variant %q is no platform's", want, clean(d.Platform.Variant))
			}
			d.Platform = &platform{OS: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant}
			if !digestPattern.MatchString(d.Digest) || d.Size < 0 || d.Size > maxJSON {
				return descriptor{}, fmt.Errorf("index: %s's manifest, %q of %d bytes, is no sha256 digest of a manifest", want, clean(d.Digest), d.Size)
			}
			return d, nil
		}
		offered = append(offered, clean(d.Platform.String()))
	}
	return descriptor{}, fmt.Errorf("no image for %s, only for %s: choose one with -platform", want, strings.Join(offered, ", "))
}

// checkConfigPlatform compares the platform a config names with want.
func checkConfigPlatform(l *layout, config descriptor, want platform) error {
	data, ok := l.readSmall(config) // checked as it came, a moment ago
	if !ok {
		return fmt.Errorf("config %s: gone from the layout", short(config.Digest))
	}
	var p platform
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("config %s: %w", short(config.Digest), err)
	}
	if p.OS == "" || p.Architecture == "" {
		return fmt.Errorf("config %s names no platform (os and architecture)", short(config.Digest))
	}
	if !p.matches(want) {
		return fmt.Errorf("the image is for %s only: pull it with -platform %s to keep it anyway", clean(p.String()), clean(p.String()))
	}
	return nil
}

// clean makes what a registry said safe to print in one line: control
// characters (a new line, a terminal's escape) become '?'.
func clean(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.Map(func(r rune) rune {
		// Controls, and the invisible ones that reorder or break a line
		// (a right-to-left override, a zero-width space, U+2028).
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return '?'
		}
		return r
	}, s)
}

// progress shows a blob's download on a terminal, once it takes more than
// a moment; elsewhere (a log, a pipe) it says nothing.
type progress struct {
	out         *os.File
	on, shown   bool
	d           descriptor
	start, last time.Time
}

func (p *progress) update(n int64) {
	now := time.Now()
	if !p.on || now.Sub(p.start) < 300*time.Millisecond || now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last, p.shown = now, true
	fmt.Fprintf(p.out, "\r%s  %s of %s ", short(p.d.Digest), mib(n), mib(p.d.Size))
}

func (p *progress) end(ok bool) {
	if !p.shown {
		return
	}
	if ok {
		fmt.Fprintf(p.out, "\r%s  %s, done    \n", short(p.d.Digest), mib(p.d.Size))
	} else {
		fmt.Fprintln(p.out)
	}
}

// onTerminal reports whether f is a terminal.
func onTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
