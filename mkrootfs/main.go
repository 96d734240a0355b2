// Command mkrootfs builds the small root filesystem that the workshop's
// containers run in, from programs already installed on this machine: no
// download, no image, no root needed (as root it also makes /dev/null).
//
// Usage:
//
//	go run ./mkrootfs [-image LAYOUT:TAG] [DIR]
//
// DIR defaults to "rootfs", which is where the steps look for it. mkrootfs
// copies a few dozen commands (sh, bash, ls, ps, mount, hostname, ...) with
// the dynamic loader and the shared libraries each of them needs, found by
// reading their ELF headers, plus /proc, /dev, /tmp and a minimal /etc.
//
// Running it again updates DIR in place. It refuses to touch a directory
// that is not empty and that it did not build.
//
// With -image, it then writes the course's demo image of DIR, for step13:
// an OCI image layout at LAYOUT (as skopeo writes one), of three layers,
// tagged TAG.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"containers-from-scratch/internal/oci"
	"containers-from-scratch/internal/rootfs"
)

const usage = "usage: mkrootfs [-image LAYOUT:TAG] [DIR]"

func main() {
	flags := flag.NewFlagSet("mkrootfs", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	image := flags.String("image", "", "")
	if err := flags.Parse(os.Args[1:]); err != nil || flags.NArg() > 1 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	dir, again := "rootfs", "go run -exec sudo ./mkrootfs"
	if flags.NArg() == 1 {
		dir = flags.Arg(0)
		again += " " + dir
	}

	start := time.Now()
	r, err := rootfs.Build(dir)
	if errors.Is(err, rootfs.ErrNotOurs) {
		fmt.Fprintf(os.Stderr, "mkrootfs: %v: left untouched; name another directory, e.g. go run ./mkrootfs rootfs\n", err)
		os.Exit(1)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkrootfs: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("mkrootfs: %s: %d commands, %d files, %.1f MiB (%d written) in %v\n",
		dir, r.Commands, r.Files, float64(r.Bytes)/(1<<20), r.Copied, time.Since(start).Round(time.Millisecond))
	if *image != "" {
		writeImage(dir, *image)
	}
	if r.NoDev {
		fmt.Printf("mkrootfs: %s is on a file system mounted nodev, where no device file can be opened, /dev/null included; build it elsewhere, e.g. in the repository\n", dir)
	} else if !r.DevNull {
		fmt.Println("mkrootfs: no /dev/null: making device files needs root, on a file system that allows them; as a normal user, add it with: " + again)
	}
}

// writeImage writes the demo image of the root filesystem at dir into the
// layout and tag that ref names, LAYOUT:TAG.
func writeImage(dir, ref string) {
	layout, tag, _ := strings.Cut(ref, ":")
	if layout == "" || tag == "" {
		fmt.Fprintf(os.Stderr, "mkrootfs: -image %s: give a layout and a tag, as in -image demo:1\n", ref)
		os.Exit(2)
	}
	img, err := rootfs.DemoImage(dir)
	if err == nil {
		img.Tag = tag
		_, err = oci.WriteImage(layout, img)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkrootfs: -image %s: %v\n", ref, err)
		os.Exit(1)
	}
	fmt.Printf("mkrootfs: %s: the demo image of %s, in %d layers\n", ref, dir, len(img.Layers))
}
