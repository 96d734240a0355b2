// Command mkrootfs builds the small root filesystem that the workshop's
// containers run in, from programs already installed on this machine: no
// download, no image, no root needed (as root it also makes /dev/null).
//
// Usage:
//
//	go run ./mkrootfs [DIR]
//
// DIR defaults to "rootfs", which is where the steps look for it. mkrootfs
// copies a few dozen commands (sh, bash, ls, ps, mount, hostname, ...) with
// the dynamic loader and the shared libraries each of them needs, found by
// reading their ELF headers, plus /proc, /dev, /tmp and a minimal /etc.
//
// Running it again updates DIR in place. It refuses to touch a directory
// that is not empty and that it did not build.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"containers-from-scratch/internal/rootfs"
)

const usage = "usage: mkrootfs [DIR]"

func main() {
	flags := flag.NewFlagSet("mkrootfs", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
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
	if r.NoDev {
		fmt.Printf("mkrootfs: %s is on a file system mounted nodev, where no device file can be opened, /dev/null included; build it elsewhere, e.g. in the repository\n", dir)
	} else if !r.DevNull {
		fmt.Println("mkrootfs: no /dev/null: making device files needs root, on a file system that allows them; as a normal user, add it with: " + again)
	}
}
