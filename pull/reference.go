// This file reads an image reference the way Docker does: `alpine` is
// docker.io/library/alpine:latest, `ghcr.io/org/app:1.2` names its own
// registry, and `NAME@sha256:…` pins a manifest by its digest.

package main

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// A reference names an image in a registry.
type reference struct {
	domain string // as written (docker.io when none is), for messages
	host   string // host[:port] to connect to
	path   string // the repository, as in library/alpine
	tag    string // "" when only a digest is given
	digest string // "sha256:…" when given
}

var (
	// A repository's path: lowercase parts joined by . _ __ or dashes,
	// separated by slashes (distribution's grammar).
	pathPattern   = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	tagPattern    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestPattern = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
)

// parseReference reads [DOMAIN/]PATH[:TAG][@DIGEST].
func parseReference(s string) (reference, error) {
	var r reference
	name := s
	if at := strings.IndexByte(s, '@'); at >= 0 {
		name, r.digest = s[:at], s[at+1:]
		if !digestPattern.MatchString(r.digest) {
			return r, fmt.Errorf("%s: a digest is sha256: and 64 lowercase hex digits", s)
		}
	}
	// The tag follows the last colon after the last slash: a colon before
	// it is a port's.
	if colon := strings.LastIndexByte(name, ':'); colon > strings.LastIndexByte(name, '/') {
		name, r.tag = name[:colon], name[colon+1:]
		if !tagPattern.MatchString(r.tag) {
			return r, fmt.Errorf("%s: a tag is letters, digits, _ . and -, 128 at most", s)
		}
	}
	if r.tag == "" && r.digest == "" {
		r.tag = "latest"
	}
	// The first part is a registry if it looks like a host: a dot, a port,
	// or localhost. Otherwise the image is Docker Hub's.
	r.domain, r.path = "docker.io", name
	if first, rest, ok := strings.Cut(name, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		r.domain, r.path = first, rest
	}
	r.host = r.domain
	if r.domain == "docker.io" || r.domain == "index.docker.io" {
		r.domain, r.host = "docker.io", "registry-1.docker.io"
		if !strings.Contains(r.path, "/") {
			r.path = "library/" + r.path // official images
		}
	}
	if !pathPattern.MatchString(r.path) {
		return r, fmt.Errorf("%s: not an image name: a name is lowercase letters, digits and . _ - separated by slashes, as in alpine or ghcr.io/org/app:1.2", s)
	}
	return r, nil
}

// String is the reference in full, as docker.io/library/alpine:3.20.
func (r reference) String() string {
	s := r.domain + "/" + r.path
	if r.tag != "" {
		s += ":" + r.tag
	}
	if r.digest != "" {
		s += "@" + r.digest
	}
	return s
}

// name is what the layout's index.json calls the image: the tag, or the
// digest when there is no tag.
func (r reference) name() string {
	if r.tag != "" {
		return r.tag
	}
	return r.digest
}

// manifest is what to ask the registry for: the digest when there is one
// (it pins the image, whatever the tag means today), or the tag.
func (r reference) manifest() string {
	if r.digest != "" {
		return r.digest
	}
	return r.tag
}

// loopback reports whether the registry is on this machine, where Docker
// speaks plain HTTP to it: nothing it says crosses a network.
func (r reference) loopback() bool { return onLoopback(r.host) }

// onLoopback reports whether host[:port] is this machine's loopback.
func onLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// plainHTTPAllowed reports whether a URL may be fetched: HTTPS anywhere,
// plain HTTP on the loopback only, where nothing crosses a network.
func plainHTTPAllowed(u *url.URL) bool {
	return u.Scheme == "https" || (u.Scheme == "http" && onLoopback(u.Host))
}

// base is the URL the registry's API lives under.
func (r reference) base() string {
	if r.loopback() {
		return "http://" + r.host
	}
	return "https://" + r.host
}
