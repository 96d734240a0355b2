package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	"containers-from-scratch/internal/rootfs"
)

// BenchmarkPullTheDemoImage times pull, the program, fetching the course's
// three-layer demo image (about 6 MiB of layers) from a registry in this
// process, on the loopback: into an empty layout, and again into one that
// has it all. go test -run '^$' -bench . ./pull
func BenchmarkPullTheDemoImage(b *testing.B) {
	dir := b.TempDir()
	if _, err := rootfs.Build(filepath.Join(dir, "rootfs")); err != nil {
		b.Fatal(err)
	}
	img, err := rootfs.DemoImage(filepath.Join(dir, "rootfs"))
	if err != nil {
		b.Fatal(err)
	}
	s := serve(b, img, nil)
	b.Run("first", func(b *testing.B) {
		for i := range b.N {
			pullOnce(b, filepath.Join(dir, fmt.Sprint("first-", i)), s.ref("1"))
		}
	})
	b.Run("again", func(b *testing.B) {
		layout := filepath.Join(dir, "again")
		pullOnce(b, layout, s.ref("1"))
		b.ResetTimer()
		for range b.N {
			pullOnce(b, layout, s.ref("1"))
		}
	})
}

func pullOnce(b *testing.B, dir, ref string) {
	b.Helper()
	if out, err := exec.Command(tool.Bin, "-o", dir, ref).CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
}
