package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEveryEditApplies makes every mutant in memory, as the check would,
// without running anything: an edit whose code has moved on fails here,
// in the suite, and not only in CI's mutation check.
func TestEveryEditApplies(t *testing.T) {
	for _, m := range mutants {
		t.Run(m.pkg+": "+m.name, func(t *testing.T) {
			file := filepath.Join("..", "..", m.pkg, m.file)
			if strings.HasPrefix(m.file, "/") {
				file = filepath.Join("..", "..", m.file)
			}
			code, err := os.ReadFile(file)
			require.NoError(t, err)
			text := string(code)
			for i, edit := range m.edits {
				require.Equal(t, 1, strings.Count(text, edit[0]), "edit %d: its text is not in %s exactly once", i+1, m.file)
				text = strings.Replace(text, edit[0], edit[1], 1)
			}
			assert.NotEmpty(t, m.breaks)
			assert.Contains(t, []string{"", "cgroup v1", "cgroup v2"}, m.needs)
			// The package's tests: main_test.go's, and those of the
			// files a step tests on their own (step13's layers_test.go).
			testFiles, err := filepath.Glob(filepath.Join("..", "..", m.pkg, "*_test.go"))
			require.NoError(t, err)
			var tests string
			for _, f := range testFiles {
				data, err := os.ReadFile(f)
				require.NoError(t, err)
				tests += string(data)
			}
			for _, test := range strings.Split(m.tests, "|") {
				assert.Contains(t, tests, "func "+test+"(", "no such test in %s", m.pkg)
			}
		})
	}
}

// TestExercisesNameTheTests checks that an exercise that has the learner
// make a mutant's edit names the tests that then fail.
func TestExercisesNameTheTests(t *testing.T) {
	for _, m := range mutants {
		if m.exercise == 0 {
			continue
		}
		page, err := os.ReadFile(filepath.Join("..", "..", m.pkg, "README.md"))
		require.NoError(t, err)
		_, exercises, ok := strings.Cut(string(page), "\n## Exercises\n")
		require.True(t, ok, "%s/README.md has no exercises", m.pkg)
		start := regexp.MustCompile(`(?m)^` + strconv.Itoa(m.exercise) + `\. `).FindStringIndex(exercises)
		require.NotNil(t, start, "%s/README.md has no exercise %d", m.pkg, m.exercise)
		exercise := exercises[start[0]:]
		if next := regexp.MustCompile(`(?m)^` + strconv.Itoa(m.exercise+1) + `\. `).FindStringIndex(exercise); next != nil {
			exercise = exercise[:next[0]]
		}
		for _, test := range strings.Split(m.tests, "|") {
			assert.Contains(t, exercise, "`"+test+"`", "%s exercise %d has the learner %s, and does not name the test that then fails", m.pkg, m.exercise, m.name)
		}
	}
}

// TestInParallelNeverRunsTwoOfAPackage: every job runs once, in one copy
// at a time per copy, two at once, and never beside another of its
// package, whose tests would see the other's cgroups.
func TestInParallelNeverRunsTwoOfAPackage(t *testing.T) {
	pkgs := []string{"a", "a", "a", "b", "a", "c", "b", "c", "c", "a"}
	var mu sync.Mutex
	ran := make([]int, len(pkgs))
	inPkg, inCopy := map[string]int{}, map[string]int{}
	mostInPkg, mostInCopy, mostAtOnce, atOnce := 0, 0, 0, 0
	inParallel([]string{"one", "two"}, pkgs, func(i int, dir string) {
		mu.Lock()
		ran[i]++
		inPkg[pkgs[i]]++
		inCopy[dir]++
		atOnce++
		mostInPkg, mostInCopy, mostAtOnce = max(mostInPkg, inPkg[pkgs[i]]), max(mostInCopy, inCopy[dir]), max(mostAtOnce, atOnce)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		inPkg[pkgs[i]]--
		inCopy[dir]--
		atOnce--
		mu.Unlock()
	})
	for i, n := range ran {
		assert.Equal(t, 1, n, "job %d", i)
	}
	assert.Equal(t, 1, mostInPkg, "two jobs of one package at once")
	assert.Equal(t, 1, mostInCopy, "two jobs in one copy at once")
	assert.Equal(t, 2, mostAtOnce, "two jobs at once, at most")
}
