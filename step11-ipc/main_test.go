package main

import (
	"testing"

	"containers-from-scratch/internal/steptest"
)

// The test binary is also the step's program: see package steptest.
var step = &steptest.Step{Name: "step11-ipc", NeedsRoot: true, UsesRootfs: true, UsesScratch: true, UsesNetwork: true, UsesUserns: true, UsesIPCAndCgroupns: true}

func TestMain(m *testing.M) { steptest.Main(m, step, main) }

// What this step adds.
func TestHostIPCIsOutOfReach(t *testing.T)      { steptest.HostIPCIsOutOfReach(t, step) }
func TestIPCMadeInsideStaysInside(t *testing.T) { steptest.IPCMadeInsideStaysInside(t, step) }
func TestCgroupIsRootInside(t *testing.T)       { steptest.CgroupIsRootInside(t, step) }
func TestMqueueLinkIsRefused(t *testing.T)      { steptest.MqueueLinkIsRefused(t, step) }
func TestChildRefusesOutsideItsNamespaces(t *testing.T) {
	steptest.ChildRefusesOutsideItsNamespaces(t, step)
}

// What step10 added.
func TestRootInsideIsTheOwnerOutside(t *testing.T) { steptest.RootInsideIsTheOwnerOutside(t, step) }
func TestHostRootPowersFailInside(t *testing.T)    { steptest.HostRootPowersAre(t, step, false) }
func TestRunsWithoutRoot(t *testing.T)             { steptest.RunsWithoutRoot(t, step) }
func TestScratchDefaultsWithoutHome(t *testing.T) {
	steptest.ScratchDefaultsWithoutHome(t, step)
}
func TestLimitsHoldInADelegatedCgroup(t *testing.T) {
	steptest.LimitsHoldInADelegatedCgroup(t, step)
}
func TestRootChangesNoModeWhenItRemoves(t *testing.T) {
	steptest.RootChangesNoModeWhenItRemoves(t, step)
}
func TestRootOwnedRootfsIsRefused(t *testing.T) { steptest.RootOwnedRootfsIsRefused(t, step) }
func TestUserNamespaceWallsAreExplained(t *testing.T) {
	steptest.UserNamespaceWallsAreExplained(t, step)
}

// What the steps before guarantee, still true. Every test runs in a
// network namespace of the tests' own (steptest.Isolated): no packet
// reaches a real network.
func TestNetworkIsTheContainersOwn(t *testing.T) { steptest.NetworkIsTheContainersOwn(t, step) }
func TestContainerAndHostReachEachOther(t *testing.T) {
	steptest.ContainerAndHostReachEachOther(t, step)
}
func TestTwoContainersGetTwoCables(t *testing.T) { steptest.TwoContainersGetTwoCables(t, step) }
func TestNothingIsLeftOnTheNetwork(t *testing.T) { steptest.NothingIsLeftOnTheNetwork(t, step) }
func TestCommandWaitsForTheCable(t *testing.T)   { steptest.CommandWaitsForTheCable(t, step) }
func TestContainerThatDiesWhileWiredIsOneLine(t *testing.T) {
	steptest.ContainerThatDiesWhileWiredIsOneLine(t, step)
}
func TestSetupFailureWhileWiringIsOneLine(t *testing.T) {
	steptest.SetupFailureWhileWiringIsOneLine(t, step)
}
func TestBadSubnetsAreUsageErrors(t *testing.T)  { steptest.BadSubnetsAreUsageErrors(t, step) }
func TestTakenHostEndIsOneLine(t *testing.T)     { steptest.TakenHostEndIsOneLine(t, step) }
func TestSubnetInUseIsRefused(t *testing.T)      { steptest.SubnetInUseIsRefused(t, step) }
func TestImageIsNeverWritten(t *testing.T)       { steptest.ImageIsNeverWritten(t, step) }
func TestChangesAreInTheUpperLayer(t *testing.T) { steptest.ChangesAreInTheUpperLayer(t, step) }
func TestKeepKeepsTheChanges(t *testing.T)       { steptest.KeepKeepsTheChanges(t, step) }
func TestReadOnlyRootfsWorks(t *testing.T)       { steptest.ReadOnlyRootfsWorks(t, step) }
func TestScratchOnOverlayIsOneLine(t *testing.T) { steptest.ScratchOnOverlayIsOneLine(t, step) }
func TestScratchOfSomeoneElsesIsRefused(t *testing.T) {
	steptest.ScratchOfSomeoneElsesIsRefused(t, step)
}
func TestScratchInsideTheImageIsRefused(t *testing.T) {
	steptest.ScratchInsideTheImageIsRefused(t, step)
}
func TestOverlayErrorsAreExplained(t *testing.T) { steptest.OverlayErrorsAreExplained(t, step) }
func TestContainersDoNotSeeEachOthersWrites(t *testing.T) {
	steptest.ContainersDoNotSeeEachOthersWrites(t, step)
}
func TestOtherRunsLeaveALiveContainerAlone(t *testing.T) {
	steptest.OtherRunsLeaveALiveContainerAlone(t, step)
}

func TestChrootEscapeIsClosed(t *testing.T)        { steptest.ChrootEscapeIsClosed(t, step) }
func TestOnlyTheContainersMounts(t *testing.T)     { steptest.OnlyTheContainersMounts(t, step) }
func TestPivotRootErrorsAreExplained(t *testing.T) { steptest.PivotRootErrorsAreExplained(t, step) }
func TestMountsDoNotLeakToASharedHost(t *testing.T) {
	steptest.ProcDoesNotLeakToASharedHost(t, step)
}
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
func TestProcLinkStaysInTheImage(t *testing.T)    { steptest.ProcLinkStaysInTheImage(t, step) }
func TestDevLinksStayInTheImage(t *testing.T)     { steptest.DevLinksStayInTheImage(t, step) }
func TestRacedLookupIsTriedAgain(t *testing.T)    { steptest.RacedLookupIsTriedAgain(t, step) }
func TestPsSeesOnlyTheContainer(t *testing.T)     { steptest.PsSeesOnlyTheContainer(t, step) }
func TestSetupFailureIsOneLine(t *testing.T)      { steptest.SetupFailureIsOneLine(t, step) }
func TestRootfsThatIsAFileIsOneLine(t *testing.T) { steptest.RootfsThatIsAFileIsOneLine(t, step) }
func TestStdioThatLeadsIntoTheHostIsRefused(t *testing.T) {
	steptest.StdioThatLeadsIntoTheHostIsRefused(t, step)
}
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
func TestHostnameIsContainer(t *testing.T)          { steptest.HostnameIsContainer(t, step) }
func TestHostnameChangeStaysInside(t *testing.T)    { steptest.HostnameChangeStaysInside(t, step) }
func TestChildRefusesOnTheHost(t *testing.T)        { steptest.ChildRefusesOnTheHost(t, step) }
func TestCommandIsPID1(t *testing.T)                { steptest.CommandIsPID1(t, step) }
func TestPID1IgnoresSignalsItDoesNotHandle(t *testing.T) {
	steptest.PID1IgnoresSignalsItDoesNotHandle(t, step)
}
func TestRootIsTheRootfs(t *testing.T)               { steptest.RootIsTheRootfs(t, step) }
func TestMissingRootfsSaysHowToBuildIt(t *testing.T) { steptest.MissingRootfsSaysHowToBuildIt(t, step) }
func BenchmarkStart(b *testing.B)                    { steptest.BenchmarkStart(b, step) }

// Issue 27: whose the container's root is, its groups, and a learner's run.
func TestRootGroupIsTheRootfsGroup(t *testing.T) { steptest.RootGroupIsTheRootfsGroup(t, step) }
func TestSudoDropsTheCallersGroups(t *testing.T) { steptest.SudoDropsTheCallersGroups(t, step) }
func TestLearnerRunsWithoutSudo(t *testing.T)    { steptest.LearnerRunsWithoutSudo(t, step) }

// Issue 27: the overlay's directories.
func TestFailedOverlayDirsLeaveNothing(t *testing.T) { steptest.FailedOverlayDirsLeaveNothing(t, step) }
func TestPathsTheMountCannotTakeAreRefused(t *testing.T) {
	steptest.PathsTheMountCannotTakeAreRefused(t, step)
}
func TestUpperLayerIsNoOtherUsersToRead(t *testing.T) {
	steptest.UpperLayerIsNoOtherUsersToRead(t, step)
}

// Issue 27: the routes -net must keep clear of.
func TestRoutesOfEveryTableCount(t *testing.T)      { steptest.RoutesOfEveryTableCount(t, step) }
func TestVPNHalvesDoNotCount(t *testing.T)          { steptest.VPNHalvesDoNotCount(t, step) }
func TestAnyOverlappingRouteIsRefused(t *testing.T) { steptest.AnyOverlappingRouteIsRefused(t, step) }

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
