package main

import (
	"testing"

	"containers-from-scratch/internal/steptest"
)

// The test binary is also the step's program: see package steptest.
var step = &steptest.Step{Name: "step02-uts", NeedsRoot: true, UsesRootfs: false}

func TestMain(m *testing.M) { steptest.Main(m, step, main) }

// What this step adds.
func TestNotRootGetsOneLine(t *testing.T)        { steptest.NotRootGetsOneLine(t, step) }
func TestHostnameIsContainer(t *testing.T)       { steptest.HostnameIsContainer(t, step) }
func TestHostnameChangeStaysInside(t *testing.T) { steptest.HostnameChangeStaysInside(t, step) }
func TestChildRefusesOnTheHost(t *testing.T)     { steptest.ChildRefusesOnTheHost(t, step) }

func TestRunKilledBeforeItsChildIsArmedLeavesNothing(t *testing.T) {
	steptest.RunKilledBeforeItsChildIsArmedLeavesNothing(t, step)
}
func TestSignalsDuringSetupWaitForTheCommand(t *testing.T) {
	steptest.SignalsDuringSetupWaitForTheCommand(t, step)
}

// What the steps before guarantee, still true.
func TestSignalDispositionsReachTheCommand(t *testing.T) {
	steptest.SignalDispositionsReachTheCommand(t, step)
}
func TestHelpListsTheOptions(t *testing.T)          { steptest.HelpListsTheOptions(t, step) }
func TestEnvironmentReachesTheCommand(t *testing.T) { steptest.EnvironmentReachesTheCommand(t, step) }
func TestCommandThatCannotRunExits126(t *testing.T) { steptest.CommandThatCannotRunExits126(t, step) }
func TestEverySignalReachesTheCommand(t *testing.T) { steptest.EverySignalReachesTheCommand(t, step) }
func TestUsageErrorsExit2(t *testing.T)             { steptest.UsageErrorsExit2(t, step) }
func TestStdioIsWired(t *testing.T)                 { steptest.StdioIsWired(t, step) }
func TestExitStatusPassesThrough(t *testing.T)      { steptest.ExitStatusPassesThrough(t, step) }
func TestSignalsReachTheCommand(t *testing.T)       { steptest.SignalsReachTheCommand(t, step) }
func TestKillingRunKillsTheCommand(t *testing.T)    { steptest.KillingRunKillsTheCommand(t, step) }
func TestCommandGetsRunsCPUs(t *testing.T)          { steptest.CommandGetsRunsCPUs(t, step) }
func TestTheChildWaitsForRunsGoOn(t *testing.T)     { steptest.TheChildWaitsForRunsGoOn(t, step) }
func TestChildStaysOnItsFirstThread(t *testing.T)   { steptest.ChildStaysOnItsFirstThread(t, step) }
func TestCommandNotFoundExits127(t *testing.T)      { steptest.CommandNotFoundExits127(t, step) }
func TestInteractiveShellExitsCleanly(t *testing.T) { steptest.InteractiveShellExitsCleanly(t, step) }

// Issue 27: what the supervisor hands the command, and what it keeps.
func TestEveryExitStatusPassesThrough(t *testing.T) { steptest.EveryExitStatusPassesThrough(t, step) }
func TestCommandGetsRunsEnvironmentOnly(t *testing.T) {
	steptest.CommandGetsRunsEnvironmentOnly(t, step)
}
func TestOnlyStandardDescriptorsReachTheCommand(t *testing.T) {
	steptest.OnlyStandardDescriptorsReachTheCommand(t, step)
}

// Issue 27: a signal held during setup, and each signal once.
func TestSignalDuringSetupReachesTheCommand(t *testing.T) {
	steptest.SignalDuringSetupReachesTheCommand(t, step)
}
func TestEachSignalReachesTheCommandOnce(t *testing.T) {
	steptest.EachSignalReachesTheCommandOnce(t, step)
}
