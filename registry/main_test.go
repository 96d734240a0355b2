package main

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"containers-from-scratch/internal/oci"
	"containers-from-scratch/internal/steptest"
)

// The test binary is also registry: see package steptest. As root, the
// tests run in a network namespace of their own.
var tool = &steptest.Step{Name: "registry", UsesNetwork: true}

func TestMain(m *testing.M) { steptest.Main(m, tool, main) }

func TestListensOnTheLoopbackOnly(t *testing.T) {
	layout := filepath.Join(t.TempDir(), "demo")
	_, err := oci.WriteImage(layout, oci.Image{Layers: []oci.Layer{{}}, Tag: "1"})
	require.NoError(t, err)
	for _, addr := range []string{"0.0.0.0:5000", ":5000", "[::]:5000", "192.0.2.1:5000", "localhost:5000", "127.0.0.1"} {
		// One that listens would serve until stopped: 10 s is ample to refuse.
		cmd := tool.Command(t, "-addr", addr, layout)
		timer := time.AfterFunc(10*time.Second, func() { cmd.Process.Kill() })
		r := steptest.Finish(t, cmd)
		timer.Stop()
		require.Equal(t, 1, r.Status, "-addr %s: %s", addr, r.Stderr)
		assert.Equal(t, "registry: -addr "+addr+": give a loopback address and a port, as in 127.0.0.1:5000\n", r.Stderr)
	}
	r := tool.Exec(t, t.TempDir())
	assert.Equal(t, 1, r.Status)
	assert.Contains(t, r.Stderr, "not an image layout (no index.json)")
	other := filepath.Join(t.TempDir(), "demo")
	_, err = oci.WriteImage(other, oci.Image{Layers: []oci.Layer{{}}, Tag: "1"})
	require.NoError(t, err)
	r = tool.Exec(t, layout, other)
	assert.Equal(t, "registry: two layouts named demo: a repository's name is its folder's\n", r.Stderr)
}

func TestServesTheLayoutsTagsAndBlobs(t *testing.T) {
	layout := filepath.Join(t.TempDir(), "demo")
	img, err := oci.WriteImage(layout, oci.Image{
		Layers: []oci.Layer{{oci.Entry{Header: tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644}, Body: "a"}}},
		Tag:    "1",
	})
	require.NoError(t, err)
	addr := freeAddress(t)
	cmd := tool.Command(t, "-addr", addr, "-token", layout)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "registry: serving "+addr+"/demo from the layout "+layout+"\n", line)

	get := func(path, token string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		require.NoError(t, err)
		req.Header.Set("Accept", oci.MediaManifest)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(body)
	}

	// Without a token: 401 and the challenge; /token gives one.
	resp, _ := get("/v2/", "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, `Bearer realm="http://`+addr+`/token",service="cfs-registry"`, resp.Header.Get("WWW-Authenticate"))
	resp, body := get("/token?service=cfs-registry&scope=repository:demo:pull", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var answer struct{ Token string }
	require.NoError(t, json.Unmarshal([]byte(body), &answer))
	require.NotEmpty(t, answer.Token)

	resp, body = get("/v2/demo/manifests/1", answer.Token)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, oci.MediaManifest, resp.Header.Get("Content-Type"))
	assert.Equal(t, img.Manifest.Digest, resp.Header.Get("Docker-Content-Digest"))
	assert.Equal(t, img.Manifest.Digest, oci.Digest([]byte(body)))
	resp, body = get("/v2/demo/blobs/"+img.Layers[0].Digest, answer.Token)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, img.Layers[0].Digest, oci.Digest([]byte(body)))

	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/demo/manifests/1", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+answer.Token)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "a manifest of a type the request does not accept")

	for path, code := range map[string]string{
		"/v2/demo/manifests/2":                      "MANIFEST_UNKNOWN",
		"/v2/other/manifests/1":                     "NAME_UNKNOWN",
		"/v2/demo/blobs/sha256:../../index.json":    "DIGEST_INVALID",
		"/v2/demo/manifests/../../../../etc/passwd": "MANIFEST_UNKNOWN",
	} {
		_, body := get(path, answer.Token)
		assert.Contains(t, body, `"code":"`+code+`"`, path)
	}
	resp, err = http.Post("http://"+addr+"/v2/demo/blobs/uploads/", "application/octet-stream", strings.NewReader("x"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "read only")

	// Ctrl-C stops it, and that is no failure.
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	assert.NoError(t, cmd.Wait())
}

// freeAddress is an address on the loopback that nothing listens on.
func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	return addr
}
