package main

import (
	"testing"

	"containers-from-scratch/internal/steptest"
)

// The test binary is also the step's program: see package steptest.
var step = &steptest.Step{Name: "step01-exec", NeedsRoot: false, UsesRootfs: false}

func TestMain(m *testing.M) { steptest.Main(m, step, main) }

// What this step adds.
func TestUsageErrorsExit2(t *testing.T)             { steptest.UsageErrorsExit2(t, step) }
func TestStdioIsWired(t *testing.T)                 { steptest.StdioIsWired(t, step) }
func TestExitStatusPassesThrough(t *testing.T)      { steptest.ExitStatusPassesThrough(t, step) }
func TestSignalsReachTheCommand(t *testing.T)       { steptest.SignalsReachTheCommand(t, step) }
func TestKillingRunKillsTheCommand(t *testing.T)    { steptest.KillingRunKillsTheCommand(t, step) }
func TestCommandGetsRunsCPUs(t *testing.T)          { steptest.CommandGetsRunsCPUs(t, step) }
func TestCommandNotFoundExits127(t *testing.T)      { steptest.CommandNotFoundExits127(t, step) }
func TestInteractiveShellExitsCleanly(t *testing.T) { steptest.InteractiveShellExitsCleanly(t, step) }
func BenchmarkStart(b *testing.B)                   { steptest.BenchmarkStart(b, step) }
func TestHelpListsTheOptions(t *testing.T)          { steptest.HelpListsTheOptions(t, step) }
func TestEnvironmentReachesTheCommand(t *testing.T) { steptest.EnvironmentReachesTheCommand(t, step) }
func TestCommandThatCannotRunExits126(t *testing.T) { steptest.CommandThatCannotRunExits126(t, step) }
func TestEverySignalReachesTheCommand(t *testing.T) { steptest.EverySignalReachesTheCommand(t, step) }
func TestSignalDispositionsReachTheCommand(t *testing.T) {
	steptest.SignalDispositionsReachTheCommand(t, step)
}

// Issue 27: what the supervisor hands the command, and what it keeps.
func TestEveryExitStatusPassesThrough(t *testing.T) { steptest.EveryExitStatusPassesThrough(t, step) }

// Issue 27: a signal held during setup, and each signal once.
func TestEachSignalReachesTheCommandOnce(t *testing.T) {
	steptest.EachSignalReachesTheCommandOnce(t, step)
}
