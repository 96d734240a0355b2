// This file writes an OCI image layout (image-spec image-layout.md) as
// skopeo does: blobs/sha256/HEX for every blob, index.json naming the
// image by its tag. Nothing is ever half-written: a blob lands under a
// temporary name and is renamed once its digest is checked, and index.json,
// which makes the image visible, is written last, the same way. A layout
// may hold other images: pull adds to it and keeps what it already has.

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// tempPrefix starts the name of a blob being fetched.
const tempPrefix = ".pull-"

// A layout is an image layout open for writing, locked against another
// pull into it.
type layout struct {
	dir  string
	lock *os.File
}

// openLayout makes dir a layout if it does not exist or is empty, and
// takes its lock. A folder that holds something else is refused.
func openLayout(ctx context.Context, dir string, say io.Writer) (*layout, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	lock, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	l := &layout{dir: dir, lock: lock}
	// Two pulls into one layout would each rewrite index.json, and one tag
	// would be lost: the second waits, and Ctrl-C still stops it.
	for waited := false; ; waited = true {
		err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if err != unix.EWOULDBLOCK {
			l.close()
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		if !waited {
			fmt.Fprintf(say, "pull: waiting for another pull into %s\n", dir)
		}
		select {
		case <-ctx.Done():
			l.close()
			return nil, errors.New("interrupted")
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := l.prepare(); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

func (l *layout) close() { l.lock.Close() }

// prepare removes what a pull that was killed left (the lock says none
// runs), and writes what a layout needs into a folder that is empty, or
// holds no more than a killed pull made of it.
func (l *layout) prepare() error {
	for _, d := range []string{l.dir, filepath.Join(l.dir, "blobs", "sha256")} {
		temps, _ := filepath.Glob(filepath.Join(d, tempPrefix+"*"))
		for _, t := range temps {
			os.Remove(t)
		}
	}
	var marker struct {
		Version string `json:"imageLayoutVersion"`
	}
	data, err := readSmallFile(filepath.Join(l.dir, "oci-layout"))
	if err == nil {
		err = json.Unmarshal(data, &marker)
	}
	if err != nil || marker.Version == "" {
		entries, err := os.ReadDir(l.dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Name() != "blobs" && e.Name() != "index.json" {
				return fmt.Errorf("%s holds something other than an image layout: name another folder with -o", l.dir)
			}
		}
		if err := l.writeFile("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`+"\n")); err != nil {
			return err
		}
	}
	if _, err := os.Lstat(filepath.Join(l.dir, "index.json")); errors.Is(err, fs.ErrNotExist) {
		if err := l.writeFile("index.json", []byte(`{"schemaVersion":2,"mediaType":"`+mediaIndex+`","manifests":[]}`+"\n")); err != nil {
			return err
		}
	}
	if _, _, err := l.readIndex(); err != nil {
		return err
	}
	return os.MkdirAll(filepath.Join(l.dir, "blobs", "sha256"), 0o755)
}

// blobPath is where the layout keeps the blob of a digest, which the
// caller has checked is sha256 and 64 hex digits.
func (l *layout) blobPath(digest string) string {
	return filepath.Join(l.dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// openBlob opens a blob the layout has.
func (l *layout) openBlob(digest string) (*os.File, error) {
	return openRegular(l.blobPath(digest))
}

// openRegular opens a file of the layout: a regular file, not through a
// link, never waiting (a FIFO put there would hang pull).
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if info, err := f.Stat(); err != nil || !info.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return f, nil
}

// readSmallFile reads a file of the layout's own (oci-layout,
// index.json): a regular file of at most maxJSON bytes.
func readSmallFile(path string) ([]byte, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJSON+1))
	if err == nil && len(data) > maxJSON {
		err = fmt.Errorf("%s is larger than %d MiB", path, maxJSON>>20)
	}
	return data, err
}

// has reports whether the layout holds the blob of d, whole and unchanged:
// a blob already there is hashed again rather than trusted by its name.
func (l *layout) has(d descriptor) bool {
	f, err := l.openBlob(d.Digest)
	if err != nil {
		return false
	}
	defer f.Close()
	hash := sha256.New()
	n, err := io.Copy(hash, io.LimitReader(f, d.Size+1))
	return err == nil && n == d.Size && "sha256:"+hex.EncodeToString(hash.Sum(nil)) == d.Digest
}

// read returns a small blob the layout has (a manifest, a config),
// checked: at most maxJSON bytes.
func (l *layout) read(d descriptor) ([]byte, bool) {
	if d.Size > maxJSON || !l.has(d) {
		return nil, false
	}
	return l.readSmall(d)
}

// readSmall returns a blob of at most maxJSON bytes as the layout has it,
// not checked again.
func (l *layout) readSmall(d descriptor) ([]byte, bool) {
	if d.Size > maxJSON {
		return nil, false
	}
	f, err := l.openBlob(d.Digest)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJSON))
	return data, err == nil && int64(len(data)) == d.Size
}

// addBlob writes a blob through fetch, which must write it whole and check
// it: under a temporary name, renamed into place once fetch succeeds.
func (l *layout) addBlob(digest string, fetch func(w io.Writer) error) error {
	return l.addTo(l.blobPath(digest), fetch)
}

// writeFile writes a file of the layout atomically.
func (l *layout) writeFile(name string, data []byte) error {
	return l.addTo(filepath.Join(l.dir, name), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// addTo writes the file at path through write: under a temporary name in
// its folder, synced, then renamed over path.
func (l *layout) addTo(path string, write func(w io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), tempPrefix)
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	err = write(f)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// readIndex reads index.json, to be kept as it is but for a tag: its
// numbers as they are written, its list of manifests.
func (l *layout) readIndex() (map[string]any, []any, error) {
	data, err := readSmallFile(filepath.Join(l.dir, "index.json"))
	var index map[string]any
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		err = dec.Decode(&index)
	}
	entries, isList := index["manifests"].([]any)
	if err == nil && (index == nil || (!isList && index["manifests"] != nil)) {
		err = errors.New("not an image index")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s/index.json: %w: pull leaves it as it is", l.dir, err)
	}
	return index, entries, nil
}

// tag points name at the manifest d in index.json, replacing what the name
// pointed to before and keeping every other entry as it was.
func (l *layout) tag(name string, d descriptor) error {
	index, entries, err := l.readIndex()
	if err != nil {
		return err
	}
	kept := []any{}
	for _, e := range entries {
		if m, ok := e.(map[string]any); ok {
			if a, ok := m["annotations"].(map[string]any); ok && a[refName] == name {
				continue
			}
		}
		kept = append(kept, e)
	}
	d.Annotations = map[string]string{refName: name}
	index["manifests"] = append(kept, d)
	if index["schemaVersion"] == nil {
		index["schemaVersion"] = 2
	}
	out, err := json.MarshalIndent(index, "", "  ")
	if err != nil {
		return err
	}
	if err := l.writeFile("index.json", append(out, '\n')); err != nil {
		return err
	}
	// The renames on disk before pull says it is done.
	dir, err := os.Open(l.dir)
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

const refName = "org.opencontainers.image.ref.name"
