// This file keeps what each step page says it costs in step with the
// course README's table, which bench made (go run ./bench -md): each page
// says, between two markers at the end of "How it works", its step's
// median, its cost over the step before, and its ratios to unshare and
// runc. go generate ./internal/lessons rewrites those sentences from the
// table.

package lessons

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The markers: the README's table between BenchBegin and BenchEnd, each
// page's sentence between CostBegin and CostEnd.
const (
	BenchBegin = "<!-- bench: the first table of go run ./bench -md -->"
	BenchEnd   = "<!-- /bench -->"
	CostBegin  = "<!-- cost: from the course README's table (go generate ./internal/lessons) -->"
	CostEnd    = "<!-- /cost -->"
)

// A Cost is a step's row of the README's table.
type Cost struct {
	Median, Over, XUnshare, RuncOver string
}

// Costs reads the steps' rows of the README's table.
func Costs(readme string) (map[string]Cost, error) {
	_, table, ok := strings.Cut(readme, BenchBegin+"\n")
	if ok {
		table, _, ok = strings.Cut(table, "\n"+BenchEnd)
	}
	if !ok {
		return nil, errors.New("no table between " + BenchBegin + " and " + BenchEnd)
	}
	costs := map[string]Cost{}
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) == 6 && strings.HasPrefix(cells[0], "step") {
			costs[cells[0]] = Cost{Median: cells[1], Over: cells[3], XUnshare: strings.TrimSuffix(cells[4], "×"), RuncOver: cells[5]}
		}
	}
	for _, step := range Steps {
		if _, ok := costs[step]; !ok {
			return nil, fmt.Errorf("the README's table has no row for %s", step)
		}
	}
	return costs, nil
}

// CostSentence is what the page of Steps[i] says of its cost.
func CostSentence(i int, c Cost) string {
	s := "**What it costs.** On the machine of the course's table ([What each step costs](../README.md#what-each-step-costs)), `run /bin/true` takes " + c.Median + " ms"
	if i > 0 {
		s += fmt.Sprintf(", %s ms over %s", c.Over, Steps[i-1])
	}
	s += fmt.Sprintf(": %s times as long as `unshare` with the same namespaces, and runc takes %s times as long as %s.", c.XUnshare, c.RuncOver, Steps[i])
	return wrap(s, 76)
}

// wrap breaks text into lines of at most width, between words.
func wrap(text string, width int) string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	return strings.Join(append(lines, line), "\n")
}

// WithCost returns the page with the sentence between its markers.
func WithCost(page, sentence string) (string, error) {
	before, rest, ok := strings.Cut(page, CostBegin+"\n")
	if !ok {
		return "", errors.New("no " + CostBegin)
	}
	_, after, ok := strings.Cut(rest, CostEnd)
	if !ok {
		return "", errors.New("no " + CostEnd + " after " + CostBegin)
	}
	return before + CostBegin + "\n" + sentence + "\n" + CostEnd + after, nil
}

// UpdateCosts rewrites each step page's sentence from the README's table,
// and returns the pages it changed.
func UpdateCosts(root string) ([]string, error) {
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		return nil, err
	}
	costs, err := Costs(string(readme))
	if err != nil {
		return nil, fmt.Errorf("README.md: %w", err)
	}
	var changed []string
	for i, step := range Steps {
		path := filepath.Join(root, step, "README.md")
		page, err := os.ReadFile(path)
		if err != nil {
			return changed, err
		}
		updated, err := WithCost(string(page), CostSentence(i, costs[step]))
		if err != nil {
			return changed, fmt.Errorf("%s: %w", path, err)
		}
		if updated != string(page) {
			if err := os.WriteFile(path, []byte(updated), 0o644); err != nil {
				return changed, err
			}
			changed = append(changed, path)
		}
	}
	return changed, nil
}
