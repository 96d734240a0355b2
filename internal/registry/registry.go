// Package registry serves OCI image layouts over the OCI distribution API,
// read only: the other end of pull. The registry tool runs it on the
// loopback for the pull page, and pull's tests run it in-process, with
// knobs that make it misbehave as registries do.
//
// Repository NAME is the layout at Layouts[NAME]; a tag is an entry of its
// index.json (org.opencontainers.image.ref.name), a digest any of its blobs.
package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// A Server is a registry of image layouts.
type Server struct {
	// Layouts maps each repository's name, as in library/alpine, to its
	// layout's folder.
	Layouts map[string]string
	// Token makes the registry ask for a bearer token, as Docker Hub does:
	// each request without one gets 401 and a challenge naming /token on
	// this server, which gives one to anyone for pulling.
	Token bool

	// TokenUses, when more than 0, is how many requests a token is good
	// for: then the registry asks for a new one, as Docker Hub's expire.
	TokenUses int

	// For tests, each given the digest of what is served (a manifest's or
	// a blob's): Tamper may change its bytes; Drop, when it reports true,
	// makes the server send half of them and close the connection; Stall,
	// half of them and then nothing; Endless, all of them and then zeros
	// without end; Pace, when more than 0, is the pause after each 32 KiB
	// sent; Redirect, when it returns a URL, sends a blob's request there.
	// OmitDigest leaves out the Docker-Content-Digest header.
	Tamper     func(digest string, data []byte) []byte
	Drop       func(digest string) bool
	Stall      func(digest string) bool
	Endless    func(digest string) bool
	Pace       func(digest string) time.Duration
	Redirect   func(digest string) string
	OmitDigest bool

	mu       sync.Mutex
	requests []string
	tokens   map[string]int // each token given, and the requests it is still good for
	issued   int
}

var digestPattern = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// Requests returns the requests served so far, as "GET /v2/…".
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.Path)
	s.mu.Unlock()
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		fail(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "this registry is read only")
		return
	}
	if r.URL.Path == "/token" {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"token": s.newToken(), "expires_in": 300})
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v2/")
	if !ok {
		fail(w, http.StatusNotFound, "NOT_FOUND", "not a registry path")
		return
	}
	// The repository's name is everything before /manifests/ or /blobs/.
	name, kind, ref := "", "", ""
	for _, k := range []string{"/manifests/", "/blobs/"} {
		if i := strings.LastIndex(rest, k); i > 0 {
			name, kind, ref = rest[:i], strings.Trim(k, "/"), rest[i+len(k):]
			break
		}
	}
	if s.Token && !s.validToken(r.Header.Get("Authorization")) {
		challenge := fmt.Sprintf(`Bearer realm="http://%s/token",service="cfs-registry"`, r.Host)
		if name != "" {
			challenge += fmt.Sprintf(`,scope="repository:%s:pull"`, name)
		}
		w.Header().Set("WWW-Authenticate", challenge)
		fail(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return
	}
	if rest == "" {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
		return
	}
	dir, ok := s.Layouts[name]
	if !ok {
		fail(w, http.StatusNotFound, "NAME_UNKNOWN", "repository name not known to registry")
		return
	}
	if kind == "manifests" {
		s.manifest(w, r, dir, ref)
		return
	}
	if !digestPattern.MatchString(ref) {
		fail(w, http.StatusBadRequest, "DIGEST_INVALID", "a digest is sha256:HEX")
		return
	}
	if s.Redirect != nil {
		if to := s.Redirect(ref); to != "" {
			http.Redirect(w, r, to, http.StatusTemporaryRedirect)
			return
		}
	}
	data, err := os.ReadFile(blobPath(dir, ref))
	if err != nil {
		fail(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to registry")
		return
	}
	s.send(w, r, "application/octet-stream", ref, data)
}

// manifest serves a manifest or index by tag (from index.json) or digest.
func (s *Server) manifest(w http.ResponseWriter, r *http.Request, dir, ref string) {
	digest, mediaType := ref, ""
	if !digestPattern.MatchString(ref) {
		digest = ""
		var index struct {
			Manifests []struct {
				MediaType   string            `json:"mediaType"`
				Digest      string            `json:"digest"`
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		data, err := os.ReadFile(filepath.Join(dir, "index.json"))
		if err == nil {
			err = json.Unmarshal(data, &index)
		}
		if err != nil {
			fail(w, http.StatusInternalServerError, "UNKNOWN", "index.json: "+err.Error())
			return
		}
		for _, m := range index.Manifests {
			if m.Annotations["org.opencontainers.image.ref.name"] == ref && digestPattern.MatchString(m.Digest) {
				digest, mediaType = m.Digest, m.MediaType
			}
		}
	}
	data, err := os.ReadFile(blobPath(dir, digest))
	if digest == "" || err != nil {
		fail(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown to registry")
		return
	}
	if mediaType == "" {
		var m struct {
			MediaType string `json:"mediaType"`
		}
		json.Unmarshal(data, &m)
		mediaType = m.MediaType
	}
	// As the reference registry does: a client that does not list the
	// manifest's type in Accept does not get it.
	if !strings.Contains(r.Header.Get("Accept"), mediaType) {
		fail(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "the manifest is a "+mediaType+", which the request does not accept")
		return
	}
	s.send(w, r, mediaType, digest, data)
}

// send answers with a blob's bytes (or, for Tamper and Drop, other bytes).
func (s *Server) send(w http.ResponseWriter, r *http.Request, mediaType, digest string, data []byte) {
	if s.Tamper != nil {
		data = s.Tamper(digest, data)
	}
	w.Header().Set("Content-Type", mediaType)
	if !s.OmitDigest {
		w.Header().Set("Docker-Content-Digest", digest)
	}
	endless := s.Endless != nil && s.Endless(digest)
	if !endless {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	}
	if r.Method == http.MethodHead {
		return
	}
	if s.Drop != nil && s.Drop(digest) {
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the connection is closed mid-body
	}
	if s.Stall != nil && s.Stall(digest) {
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	if endless {
		w.Write(data)
		zeros := make([]byte, 32<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write(zeros); err != nil {
				return
			}
		}
		return
	}
	if s.Pace != nil {
		if pause := s.Pace(digest); pause > 0 {
			for len(data) > 0 {
				n := min(len(data), 32<<10)
				if _, err := w.Write(data[:n]); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				data = data[n:]
				select {
				case <-time.After(pause):
				case <-r.Context().Done():
					return
				}
			}
			return
		}
	}
	w.Write(data)
}

// newToken gives a token, good for TokenUses requests (or all).
func (s *Server) newToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issued++
	t := fmt.Sprintf("anonymous-pull-token-%d", s.issued)
	if s.tokens == nil {
		s.tokens = map[string]int{}
	}
	s.tokens[t] = s.TokenUses
	return t
}

// validToken reports whether an Authorization header holds a token still
// good, and counts the request against it.
func (s *Server) validToken(header string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := strings.CutPrefix(header, "Bearer ")
	uses, given := s.tokens[t]
	if !ok || !given {
		return false
	}
	if s.TokenUses > 0 {
		if uses == 0 {
			return false
		}
		s.tokens[t] = uses - 1
	}
	return true
}

// fail answers with the distribution API's error body.
func fail(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": message}}})
}

func blobPath(dir, digest string) string {
	return filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}
