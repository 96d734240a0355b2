// This file speaks the OCI distribution API (distribution-spec spec.md),
// the HTTP API of every registry: Docker Hub, ghcr.io, quay.io, the
// reference registry. Pulling uses three of its requests, all GETs:
//
//	/v2/                          is this a registry, and how do I log in?
//	/v2/NAME/manifests/TAG|DIGEST the image's index or manifest
//	/v2/NAME/blobs/DIGEST         a config or a layer
//
// plus, for most registries, a token that the registry's auth server gives
// anyone for pulling a public image.

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// The media types pull asks for, in the Accept header of a manifest
// request: without them a registry may answer with an old format.
var manifestTypes = []string{
	mediaIndex, mediaManifest,
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}

const (
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	maxJSON       = 4 << 20 // a manifest or a token is small: more is a broken or hostile registry
)

// stallAfter is how long pull waits for the next bytes of a blob. The tests
// shorten it through the environment.
var stallAfter = stallTime()

func stallTime() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("CONTAINERS_FROM_SCRATCH_PULL_STALL")); err == nil && d > 0 {
		return d
	}
	return time.Minute
}

// A registry is one repository of one registry, as its client sees it.
type registry struct {
	ref    reference
	client *http.Client
	token  string // the bearer token, once the auth server gave one
	trace  io.Writer
}

// newRegistry returns a client of ref's repository; with trace, it writes
// there a line for each request and what came back.
func newRegistry(ref reference, trace io.Writer) *registry {
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: stallAfter,
		ForceAttemptHTTP2:     true,
	}
	client := &http.Client{Transport: transport, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		// Blobs are often served from elsewhere (a CDN): follow, but never
		// from HTTPS down to plain HTTP.
		if len(via) >= 10 {
			return errors.New("more than 10 redirects")
		}
		if !plainHTTPAllowed(req.URL) {
			return fmt.Errorf("redirected to %s: refused, HTTPS only off the loopback", req.URL.Redacted())
		}
		// The token is the registry's: Go keeps it for the same host name
		// on another port, pull does not.
		if req.URL.Scheme != via[0].URL.Scheme || req.URL.Host != via[0].URL.Host {
			req.Header.Del("Authorization")
		}
		return nil
	}}
	return &registry{ref: ref, client: client, trace: trace}
}

// A registryError is the registry's own answer to a request that failed,
// from its JSON body ({"errors":[{"code":…,"message":…}]}).
type registryError struct {
	status int
	code   string
	detail string
}

func (e *registryError) Error() string {
	s := fmt.Sprintf("HTTP %d", e.status)
	if e.code != "" {
		s += " " + e.code
	}
	if e.detail != "" {
		s += ": " + e.detail
	}
	return s
}

// get sends a GET for the API path, with the token once there is one. A
// 401 with a Bearer challenge is answered once: pull asks the auth server
// for a token with the scope the challenge names, and asks again.
func (r *registry) get(ctx context.Context, path string, accept ...string) (*http.Response, error) {
	for try := 0; ; try++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.ref.base()+path, nil)
		if err != nil {
			return nil, err
		}
		if len(accept) > 0 {
			req.Header.Set("Accept", strings.Join(accept, ", "))
		}
		if r.token != "" {
			req.Header.Set("Authorization", "Bearer "+r.token)
		}
		resp, err := r.do(req)
		if err != nil {
			return nil, unanswered(r.ref, err)
		}
		if resp.StatusCode == http.StatusOK {
			return resp, nil
		}
		challenge := resp.Header.Get("WWW-Authenticate")
		failure := readError(resp)
		if ctx.Err() != nil { // the error's body never came whole
			return nil, unanswered(r.ref, ctx.Err())
		}
		// Only the registry's own challenge is answered: a host that a
		// redirect led to does not choose the token pull sends the registry.
		if resp.StatusCode != http.StatusUnauthorized || try > 0 || challenge == "" || resp.Request.URL.Host != r.ref.host {
			return nil, failure
		}
		if r.token, err = r.login(ctx, challenge); err != nil {
			return nil, err
		}
	}
}

// do sends a request, and traces it and its answer.
func (r *registry) do(req *http.Request) (*http.Response, error) {
	resp, err := r.client.Do(req)
	if r.trace == nil || err != nil {
		return resp, err
	}
	answer := clean(resp.Status)
	if challenge := resp.Header.Get("WWW-Authenticate"); challenge != "" {
		answer += ", " + clean(challenge)
	} else if t := resp.Header.Get("Content-Type"); t != "" {
		answer += ", " + clean(t)
	}
	fmt.Fprintf(r.trace, "GET %s\n  %s\n", resp.Request.URL.Redacted(), answer)
	return resp, nil
}

// unanswered words a request that got no HTTP answer at all.
func unanswered(ref reference, err error) error {
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("the registry %s sent no whole answer in %v", ref.host, stallAfter)
	}
	return fmt.Errorf("the registry %s does not answer: %w", ref.host, err)
}

// readError reads a failed response's body (a little of it) into an error.
func readError(resp *http.Response) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &registryError{status: resp.StatusCode}
	var answer struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &answer) == nil && len(answer.Errors) > 0 {
		e.code, e.detail = clean(answer.Errors[0].Code), clean(answer.Errors[0].Message)
	}
	return e
}

// login gets an anonymous pull token from the auth server that a Bearer
// challenge names: WWW-Authenticate: Bearer realm="https://auth.docker.io/token",
// service="registry.docker.io",scope="repository:library/alpine:pull".
func (r *registry) login(ctx context.Context, challenge string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, stallAfter)
	defer cancel()
	scheme, params, _ := strings.Cut(challenge, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("the registry %s asks for a login (%s): pull fetches public images only", r.ref.host, scheme)
	}
	p := challengeParams(params)
	realm, err := url.Parse(p["realm"])
	if err != nil || realm.Host == "" || !plainHTTPAllowed(realm) {
		return "", fmt.Errorf("the registry %s names an auth server pull will not use: %q (HTTPS only off the loopback)", r.ref.host, p["realm"])
	}
	q := realm.Query()
	if p["service"] != "" {
		q.Set("service", p["service"])
	}
	scope := p["scope"]
	if scope == "" {
		scope = "repository:" + r.ref.path + ":pull"
	}
	q.Set("scope", scope)
	realm.RawQuery = q.Encode()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", err
	}
	resp, err := r.do(req)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return "", errors.New("interrupted")
		}
		return "", fmt.Errorf("the auth server %s does not answer: %w", realm.Host, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the auth server %s gave no token: %w", realm.Host, readError(resp))
	}
	defer resp.Body.Close()
	var answer struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"` // OAuth's name for it; some servers send only this
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJSON)).Decode(&answer); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("the auth server %s sent no whole answer in %v", realm.Host, stallAfter)
		}
		return "", fmt.Errorf("the auth server %s: its answer is not a token: %w", realm.Host, err)
	}
	if answer.Token == "" {
		answer.Token = answer.AccessToken
	}
	if answer.Token == "" {
		return "", fmt.Errorf("the auth server %s gave an empty token", realm.Host)
	}
	return answer.Token, nil
}

// challengeParams reads `realm="…",service="…"` into a map.
func challengeParams(s string) map[string]string {
	p := map[string]string{}
	for s != "" {
		s = strings.TrimLeft(s, ", ")
		key, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		var value string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				break
			}
			value, s = rest[1:end+1], rest[end+2:]
		} else {
			value, s, _ = strings.Cut(rest, ",")
		}
		p[strings.ToLower(strings.TrimSpace(key))] = value
	}
	return p
}

// manifest fetches an index or a manifest, by tag or digest, and returns
// its bytes, media type and digest. By digest, the bytes must hash to it;
// by tag, the digest is theirs (the registry's Docker-Content-Digest must
// agree).
func (r *registry) manifest(ctx context.Context, ref string) (body []byte, mediaType, digest string, err error) {
	ctx, cancel := context.WithTimeout(ctx, stallAfter) // a manifest is small: it comes whole, or not at all
	defer cancel()
	resp, err := r.get(ctx, "/v2/"+r.ref.path+"/manifests/"+ref, manifestTypes...)
	if err != nil {
		return nil, "", "", err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxJSON+1))
	if err != nil {
		return nil, "", "", fmt.Errorf("manifest %s: %w", ref, unanswered(r.ref, err))
	}
	if len(body) > maxJSON {
		return nil, "", "", fmt.Errorf("manifest %s is larger than %d MiB", ref, maxJSON>>20)
	}
	digest = digestOf(body)
	if strings.HasPrefix(ref, "sha256:") && ref != digest {
		return nil, "", "", fmt.Errorf("manifest %s: the registry sent one that hashes to %s", ref, digest)
	}
	if said := resp.Header.Get("Docker-Content-Digest"); said != "" && said != digest {
		return nil, "", "", fmt.Errorf("manifest %s: the registry says its digest is %q, but it hashes to %s", ref, clean(said), digest)
	}
	// The media type is the response's Content-Type, and the body says it
	// again in its mediaType. A server that knows no better (a plain file
	// server, a proxy) may send application/octet-stream: then the body's
	// word is taken; two manifest types that disagree are refused.
	mediaType, _, _ = strings.Cut(resp.Header.Get("Content-Type"), ";")
	mediaType = strings.TrimSpace(mediaType)
	var inBody struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(body, &inBody) == nil && inBody.MediaType != "" && inBody.MediaType != mediaType {
		if isIndex(mediaType) || isManifest(mediaType) {
			return nil, "", "", fmt.Errorf("manifest %s: the registry says it is a %s, its body says %q", ref, mediaType, clean(inBody.MediaType))
		}
		mediaType = inBody.MediaType
	}
	return body, mediaType, digest, nil
}

// blob streams the blob of d into w, checking its size and its sha256 as
// it goes; progress sees the bytes as they come. A registry that sends
// nothing for a minute is given up on.
func (r *registry) blob(ctx context.Context, d descriptor, w io.Writer, progress func(n int64)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The registry must keep sending: 64 KiB a minute at least, or the
	// rest of the blob. A byte now and then (slowloris) is not enough.
	stall := time.AfterFunc(stallAfter, func() { cancel(fmt.Errorf("less than 64 KiB came in %v", stallAfter)) })
	defer stall.Stop()
	var sinceReset int64

	resp, err := r.get(ctx, "/v2/"+r.ref.path+"/blobs/"+d.Digest)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
		return fmt.Errorf("blob %s: %w", short(d.Digest), err)
	}
	defer resp.Body.Close()
	hash := sha256.New()
	var got int64
	buf := make([]byte, 256<<10)
	// One byte more than the descriptor says, to see a blob that is longer.
	body := io.LimitReader(resp.Body, d.Size+1)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if sinceReset += int64(n); sinceReset >= 64<<10 {
				stall.Reset(stallAfter)
				sinceReset = 0
			}
			hash.Write(buf[:n])
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			got += int64(n)
			progress(got)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
				err = cause
			} else if errors.Is(err, context.Canceled) {
				return errors.New("interrupted")
			}
			return fmt.Errorf("blob %s: the registry %s stopped after %s of %s: %w", short(d.Digest), r.ref.host, mib(got), mib(d.Size), err)
		}
	}
	if got != d.Size {
		return fmt.Errorf("blob %s: the registry sent %d bytes, the manifest says %d", short(d.Digest), got, d.Size)
	}
	if sum := "sha256:" + hex.EncodeToString(hash.Sum(nil)); sum != d.Digest {
		return fmt.Errorf("blob %s: what the registry sent hashes to %s: refused", short(d.Digest), short(sum))
	}
	return nil
}

// digestOf is the sha256 digest of data, as sha256:HEX.
func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// short is a digest cut to what a person reads: sha256:0123456789ab.
func short(digest string) string {
	if len(digest) > 19 {
		return digest[:19]
	}
	return digest
}

// mib is a size in MiB, as 1.2 MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
