// Package vm holds the workshop VMs' files. Lima runs on macOS, not here:
// these tests check what can be checked of its template without it, and
// vm/fresh-machine-test.sh runs the template's provisioning on a fresh
// Debian 13 the way Lima does.
package vm

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// lima is what these tests read of a Lima template.
type lima struct {
	MinimumLimaVersion string            `yaml:"minimumLimaVersion"`
	Base               []string          `yaml:"base"`
	Images             []any             `yaml:"images"`
	Param              map[string]string `yaml:"param"`
	Mounts             []struct {
		Location   string  `yaml:"location"`
		MountPoint *string `yaml:"mountPoint"`
		Writable   bool    `yaml:"writable"`
	} `yaml:"mounts"`
	Provision []struct {
		Mode   string `yaml:"mode"`
		Script string `yaml:"script"`
	} `yaml:"provision"`
}

// start is how a learner starts the VM, from the repository.
const start = `limactl start --param REPO="$PWD" ./vm/cfs.yaml`

func readLima(t *testing.T) lima {
	t.Helper()
	data, err := os.ReadFile("cfs.yaml")
	require.NoError(t, err)
	var l lima
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	require.NoError(t, dec.Decode(&l))
	return l
}

// TestLimaStartsDebian13 checks that the VM is Debian 13 on both kinds of
// Mac: the images come from Lima's own list of Debian 13's cloud images,
// which has an x86_64 and an aarch64 image with their digests (see
// templates/_images/debian-13.yaml in lima-vm/lima), and from nothing else.
func TestLimaStartsDebian13(t *testing.T) {
	l := readLima(t)
	assert.Equal(t, []string{"template:_images/debian-13"}, l.Base)
	assert.Empty(t, l.Images, "images of its own would come before Lima's")
	// --param came in Lima 2.1.2.
	assert.Regexp(t, `^2\.(1\.([2-9]|\d\d)|[2-9]\.\d+|\d\d+\.\d+)$`, l.MinimumLimaVersion)
}

// TestLimaSharesTheRepository checks that the repository, and only it, is
// shared, writable (provisioning builds in it, and so do learners), at the
// same path as on the Mac, so that "limactl shell cfs" run from the
// repository starts in it.
func TestLimaSharesTheRepository(t *testing.T) {
	l := readLima(t)
	require.Contains(t, l.Param, "REPO")
	require.Len(t, l.Mounts, 1)
	m := l.Mounts[0]
	assert.Equal(t, "{{.Param.REPO}}", m.Location)
	assert.Nil(t, m.MountPoint, "the same path as on the Mac")
	assert.True(t, m.Writable)
}

// TestLimaProvisionsAsVagrantDoes checks that Lima runs vm/provision.sh, as
// root, with the arguments that vm/fresh-machine-test.sh runs it with: the
// test takes them from this very line.
func TestLimaProvisionsAsVagrantDoes(t *testing.T) {
	l := readLima(t)
	require.Len(t, l.Provision, 1)
	p := l.Provision[0]
	assert.Equal(t, "system", p.Mode, "as root")
	exec := regexp.MustCompile(`(?m)^exec (.*/vm/provision\.sh.*)$`).FindStringSubmatch(p.Script)
	require.NotNil(t, exec, "a line that execs vm/provision.sh:\n%s", p.Script)
	assert.Equal(t, `"{{.Param.REPO}}/vm/provision.sh" --rootfs-on /var/lib/containers-from-scratch/rootfs "{{.Param.REPO}}" "{{.User}}"`, exec[1])

	fresh, err := os.ReadFile("fresh-machine-test.sh")
	require.NoError(t, err)
	assert.Contains(t, string(fresh), `s/^ *exec \(.*\/vm\/provision\.sh.*\)$/\1/p' "$repo/vm/cfs.yaml"`,
		"fresh-machine-test.sh takes the provision line from cfs.yaml")
	provision, err := os.ReadFile("provision.sh")
	require.NoError(t, err)
	assert.Contains(t, string(provision), `if [ "${1:-}" = --rootfs-on ]; then`)
}

// TestLimaWaitsForTheRepository checks that the provision script waits for
// the shared repository before it runs provision.sh, for a bounded time, and
// gives up with a line that says what to do. With QEMU, Lima shares the
// repository over sshfs, which it attaches from the Mac once the VM is up,
// while the provision scripts may already run (lima-vm/lima issue 287). The
// script runs here as Lima would, its template filled in the way Lima does
// (Go's text/template), against a repository that comes late or never.
func TestLimaWaitsForTheRepository(t *testing.T) {
	l := readLima(t)
	require.Len(t, l.Provision, 1)
	script := l.Provision[0].Script
	bound := regexp.MustCompile(`(?m)^wait=(\d+)$`).FindStringSubmatch(script)
	require.NotNil(t, bound, "a line wait=SECONDS, the bound of the wait:\n%s", script)
	seconds, err := strconv.Atoi(bound[1])
	require.NoError(t, err)
	assert.True(t, seconds >= 60 && seconds <= 600, "wait a few minutes, not %d s", seconds)

	run := func(t *testing.T, script, repo string) (string, error) {
		t.Helper()
		tmpl, err := template.New("provision").Parse(script)
		require.NoError(t, err)
		var b strings.Builder
		require.NoError(t, tmpl.Execute(&b, map[string]any{"Param": map[string]string{"REPO": repo}, "User": "ada"}))
		out, err := exec.Command("bash", "-c", b.String()).CombinedOutput()
		return string(out), err
	}

	t.Run("comes late", func(t *testing.T) {
		repo := t.TempDir()
		late := 1500 * time.Millisecond
		// provision.sh appears whole (written aside, then renamed in), as a
		// mount brings it.
		timer := time.AfterFunc(late, func() {
			aside := filepath.Join(repo, "provision.sh")
			_ = os.WriteFile(aside, []byte("#!/bin/sh\necho provision.sh \"$@\"\n"), 0o755)
			_ = os.Mkdir(filepath.Join(repo, "vm"), 0o755)
			_ = os.Rename(aside, filepath.Join(repo, "vm", "provision.sh"))
		})
		defer timer.Stop()
		start := time.Now()
		out, err := run(t, script, repo)
		require.NoError(t, err, out)
		assert.GreaterOrEqual(t, time.Since(start), late, "it did not wait for provision.sh")
		assert.Equal(t, "provision.sh --rootfs-on /var/lib/containers-from-scratch/rootfs "+repo+" ada\n", out)
	})

	t.Run("never comes", func(t *testing.T) {
		repo := t.TempDir()
		out, err := run(t, strings.Replace(script, bound[0], "wait=1", 1), repo)
		var exit *exec.ExitError
		require.True(t, errors.As(err, &exit), "it must fail, not %v:\n%s", err, out)
		assert.Equal(t, 1, exit.ExitCode())
		assert.Contains(t, out, "provision: FAILED while waiting for the repository: "+repo+"/vm/provision.sh is not in the VM after 1 s\n")
		assert.Contains(t, out, "limactl stop cfs, then limactl start cfs", "it says what to do")
		assert.Contains(t, out, "--vm-type=vz", "it names the way around sshfs")
	})
}

// TestLimaDocsSayTheSame checks that the template's comment and the pages
// give the same command to start the VM.
func TestLimaDocsSayTheSame(t *testing.T) {
	for _, page := range []string{"cfs.yaml", "README.md", "../README.md"} {
		data, err := os.ReadFile(page)
		require.NoError(t, err)
		assert.True(t, strings.Contains(string(data), start), "%s does not say: %s", page, start)
		assert.True(t, strings.Contains(string(data), "limactl shell cfs"), "%s does not say: limactl shell cfs", page)
	}
}
