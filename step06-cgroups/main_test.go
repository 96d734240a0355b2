package main

import (
	"testing"

	"containers-from-scratch/internal/steptest"
)

// The test binary is also the step's program: see package steptest.
var step = &steptest.Step{Name: "step06-cgroups", NeedsRoot: true, UsesRootfs: true}

func TestMain(m *testing.M) { steptest.Main(m, step, main) }

// What this step adds.
func TestCommandStartsInItsCgroup(t *testing.T) { steptest.CommandStartsInItsCgroup(t, step) }
func TestForkBombIsStopped(t *testing.T)        { steptest.ForkBombIsStopped(t, step) }
func TestMemoryHogIsKilled(t *testing.T)        { steptest.MemoryHogIsKilled(t, step) }
func TestCgroupIsRemoved(t *testing.T)          { steptest.CgroupIsRemoved(t, step) }
func TestBadLimitsAreUsageErrors(t *testing.T)  { steptest.BadLimitsAreUsageErrors(t, step) }

func TestSignalDuringCgroupSetupLeavesNoCgroup(t *testing.T) {
	steptest.SignalDuringCgroupSetupLeavesNoCgroup(t, step)
}
func TestOtherRunsLeaveALiveCgroupAlone(t *testing.T) {
	steptest.OtherRunsLeaveALiveCgroupAlone(t, step)
}

// What the steps before guarantee, still true.
func TestProcLinkStaysInTheImage(t *testing.T)      { steptest.ProcLinkStaysInTheImage(t, step) }
func TestPsSeesOnlyTheContainer(t *testing.T)       { steptest.PsSeesOnlyTheContainer(t, step) }
func TestMountViewIsTheContainers(t *testing.T)     { steptest.MountViewIsTheContainers(t, step) }
func TestProcDoesNotLeakToASharedHost(t *testing.T) { steptest.ProcDoesNotLeakToASharedHost(t, step) }
func TestSetupFailureIsOneLine(t *testing.T)        { steptest.SetupFailureIsOneLine(t, step) }
func TestSignalDispositionsReachTheCommand(t *testing.T) {
	steptest.SignalDispositionsReachTheCommand(t, step)
}
func TestTerminalKeysDuringSetupWaitForTheCommand(t *testing.T) {
	steptest.TerminalKeysDuringSetupWaitForTheCommand(t, step)
}
func TestTerminalComesBackAfterTheContainer(t *testing.T) {
	steptest.TerminalComesBackAfterTheContainer(t, step)
}
func TestHelpListsTheOptions(t *testing.T)          { steptest.HelpListsTheOptions(t, step) }
func TestEnvironmentReachesTheCommand(t *testing.T) { steptest.EnvironmentReachesTheCommand(t, step) }
func TestCommandThatCannotRunExits126(t *testing.T) { steptest.CommandThatCannotRunExits126(t, step) }
func TestEverySignalReachesTheCommand(t *testing.T) { steptest.EverySignalReachesTheCommand(t, step) }
func TestRunKilledBeforeItsChildIsArmedLeavesNothing(t *testing.T) {
	steptest.RunKilledBeforeItsChildIsArmedLeavesNothing(t, step)
}
func TestSignalsDuringSetupWaitForTheCommand(t *testing.T) {
	steptest.SignalsDuringSetupWaitForTheCommand(t, step)
}
func TestBackgroundRunLeavesTheTerminalAlone(t *testing.T) {
	steptest.BackgroundRunLeavesTheTerminalAlone(t, step)
}
func TestEmptyRootfsIsAUsageError(t *testing.T)     { steptest.EmptyRootfsIsAUsageError(t, step) }
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
func TestNotRootGetsOneLine(t *testing.T)           { steptest.NotRootGetsOneLine(t, step) }
func TestHostnameIsContainer(t *testing.T)          { steptest.HostnameIsContainer(t, step) }
func TestHostnameChangeStaysInside(t *testing.T)    { steptest.HostnameChangeStaysInside(t, step) }
func TestChildRefusesOnTheHost(t *testing.T)        { steptest.ChildRefusesOnTheHost(t, step) }
func TestCommandIsPID1(t *testing.T)                { steptest.CommandIsPID1(t, step) }
func TestPID1IgnoresSignalsItDoesNotHandle(t *testing.T) {
	steptest.PID1IgnoresSignalsItDoesNotHandle(t, step)
}
func TestRootIsTheRootfs(t *testing.T)               { steptest.RootIsTheRootfs(t, step) }
func TestMissingRootfsSaysHowToBuildIt(t *testing.T) { steptest.MissingRootfsSaysHowToBuildIt(t, step) }
func TestRootfsThatIsAFileIsOneLine(t *testing.T)    { steptest.RootfsThatIsAFileIsOneLine(t, step) }
func TestStdioThatLeadsIntoTheHostIsRefused(t *testing.T) {
	steptest.StdioThatLeadsIntoTheHostIsRefused(t, step)
}
func TestChrootCanBeEscaped(t *testing.T) { steptest.ChrootCanBeEscaped(t, step) }
func BenchmarkStart(b *testing.B)         { steptest.BenchmarkStart(b, step) }

// Issue 27: what the supervisor hands the command, and what it keeps.
func TestEveryExitStatusPassesThrough(t *testing.T) { steptest.EveryExitStatusPassesThrough(t, step) }
func TestCommandGetsRunsEnvironmentOnly(t *testing.T) {
	steptest.CommandGetsRunsEnvironmentOnly(t, step)
}
func TestOnlyStandardDescriptorsReachTheCommand(t *testing.T) {
	steptest.OnlyStandardDescriptorsReachTheCommand(t, step)
}
func TestRunIntoAPipeLeavesTheTerminalAlone(t *testing.T) {
	steptest.RunIntoAPipeLeavesTheTerminalAlone(t, step)
}

// Issue 27: the cgroup's limits, errors and locks.
func TestCPUQuotaGivesWhatCpusAsks(t *testing.T)    { steptest.CPUQuotaGivesWhatCpusAsks(t, step) }
func TestFailedCgroupLeavesNoCgroup(t *testing.T)   { steptest.FailedCgroupLeavesNoCgroup(t, step) }
func TestCgroupWriteErrorsNameTheFile(t *testing.T) { steptest.CgroupWriteErrorsNameTheFile(t, step) }
func TestOtherRunsLeaveACgroupBeingMadeAlone(t *testing.T) {
	steptest.OtherRunsLeaveACgroupBeingMadeAlone(t, step)
}

// Issue 27: a signal held during setup, and each signal once.
func TestSignalDuringSetupReachesTheCommand(t *testing.T) {
	steptest.SignalDuringSetupReachesTheCommand(t, step)
}
func TestEachSignalReachesTheCommandOnce(t *testing.T) {
	steptest.EachSignalReachesTheCommandOnce(t, step)
}
