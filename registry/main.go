// Command registry serves image layouts over the OCI distribution API, read
// only, on this machine's loopback: a registry to pull from without a
// network, as pull's page does with the demo image.
//
// Usage:
//
//	go run ./registry [-addr 127.0.0.1:5000] [-token] LAYOUT...
//
// Each LAYOUT (a folder that skopeo, mkrootfs -image or pull wrote) is the
// repository named as its folder: `go run ./registry demo` serves
// 127.0.0.1:5000/demo, whose tags are the layout's. With -token it asks for
// a bearer token first, as Docker Hub does, and gives one to anyone. It
// listens on the loopback only: pull speaks plain HTTP there, and nothing
// it serves leaves the machine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"containers-from-scratch/internal/registry"
)

const usage = "usage: registry [-addr 127.0.0.1:5000] [-token] LAYOUT..."

func main() {
	flags := flag.NewFlagSet("registry", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	addr := flags.String("addr", "127.0.0.1:5000", "")
	token := flags.Bool("token", false, "")
	if err := flags.Parse(os.Args[1:]); err != nil || flags.NArg() == 0 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err := serve(*addr, *token, flags.Args()); err != nil {
		fmt.Fprintf(os.Stderr, "registry: %v\n", err)
		os.Exit(1)
	}
}

func serve(addr string, token bool, layouts []string) error {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %s: give a loopback address and a port, as in 127.0.0.1:5000", addr)
	}
	s := &registry.Server{Layouts: map[string]string{}, Token: token}
	for _, dir := range layouts {
		if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
			return fmt.Errorf("%s: not an image layout (no index.json)", dir)
		}
		name := filepath.Base(filepath.Clean(dir))
		if _, twice := s.Layouts[name]; twice {
			return fmt.Errorf("two layouts named %s: a repository's name is its folder's", name)
		}
		s.Layouts[name] = dir
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for _, dir := range layouts {
		fmt.Printf("registry: serving %s/%s from the layout %s\n", addr, filepath.Base(filepath.Clean(dir)), dir)
	}
	// Ctrl-C stops it, quietly: that is how it is meant to end.
	server := &http.Server{Handler: s}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		server.Close()
	}()
	err = server.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
