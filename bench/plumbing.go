// This file is bench's plumbing, as the steps have theirs: exit statuses,
// error wording, Ctrl-C, and finding what bench needs (Go, the root
// filesystem). The benchmark is in main.go; you may skip this file.

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

// usageError is a command line that bench does not understand: its
// message, then the usage line, and status 2.
type usageError string

func (e usageError) Error() string { return string(e) }

// helpRequest is -h: the usage line and the options, on standard output,
// and status 0.
type helpRequest string

func (e helpRequest) Error() string { return "help requested" }

// interrupted is a signal that stopped the rounds: the status is 128 and
// the signal's number, as a shell reports a command it killed.
type interrupted struct{ sig syscall.Signal }

func (e interrupted) Error() string {
	return fmt.Sprintf("stopped by %v before the last round: no tables", e.sig)
}

// exitStatus prints err, if any, in one line, and returns the status to
// exit with.
func exitStatus(err error) int {
	var bad usageError
	var help helpRequest
	var stopped interrupted
	switch {
	case err == nil:
		return 0
	case errors.As(err, &help):
		fmt.Print(usage + "\n" + string(help))
		return 0
	case errors.As(err, &bad):
		fmt.Fprintf(os.Stderr, "bench: %s\n", bad)
		fmt.Fprintln(os.Stderr, usage)
		return 2
	case errors.As(err, &stopped):
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 128 + int(stopped.sig)
	default:
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
}

// stopOnSignals returns a context that a signal to stop cancels, with
// the signal as its cause. The contenders run in process groups of their
// own, so a Ctrl-C at the terminal reaches bench alone, which stops
// between two runs and cleans up.
func stopOnSignals() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		if sig, ok := <-sigs; ok {
			cancel(interrupted{sig.(syscall.Signal)})
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(sigs)
		cancel(nil)
	}
}

// checkRootfs returns the root filesystem's absolute path, or says in one
// line how to build one.
func checkRootfs(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	entries, err := os.ReadDir(abs)
	if err == nil && len(entries) > 0 {
		return abs, nil
	}
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory: -rootfs takes the directory of a root filesystem", abs)
	}
	return "", fmt.Errorf("no root filesystem at %s: build one with \"go run ./mkrootfs\" from the repository root, or pass -rootfs DIR", abs)
}

// findGo finds the go command, which builds the steps.
func findGo() (string, error) {
	path, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New(`bench builds the steps with go, which is not on PATH (sudo sets a PATH of its own): sudo env "PATH=$PATH" go run ./bench`)
	}
	return path, nil
}

// lastLine is the last line of a program's error output that says
// something: the one that says why it stopped.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	line := strings.TrimSpace(lines[len(lines)-1])
	if line == "" {
		return "no message"
	}
	return line
}
