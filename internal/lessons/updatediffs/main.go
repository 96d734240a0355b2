// Command updatediffs rewrites the "What changed" diffs of every step README
// from the code: main.go's open, the other files' folded under <details>;
// and what each page says its step costs, from the course README's table.
// Run it through go generate:
//
//	go generate ./internal/lessons
package main

import (
	"fmt"
	"os"

	"containers-from-scratch/internal/lessons"
)

func main() {
	root := "."
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	changed, err := lessons.UpdateDiffs(root)
	if err != nil {
		fmt.Fprintf(os.Stderr, "updatediffs: %v\n", err)
		os.Exit(1)
	}
	costed, err := lessons.UpdateCosts(root)
	if err != nil {
		fmt.Fprintf(os.Stderr, "updatediffs: %v\n", err)
		os.Exit(1)
	}
	for _, path := range append(changed, costed...) {
		fmt.Println("updated", path)
	}
}
