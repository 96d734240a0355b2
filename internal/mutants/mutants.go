package main

// A mutant is one small edit of a step's code, of the kind a learner or a
// maintainer makes, that breaks one guarantee: the tests named must then
// fail. Each edit replaces text that occurs exactly once in the file when
// the edit is made, so that a mutant whose code has moved on is reported,
// not silently skipped.
type mutant struct {
	pkg    string // the folder: the step, or mkrootfs
	file   string // the file edited, in pkg (or from the repository's root, with a slash)
	name   string // what the edit does
	breaks string // the guarantee it breaks
	edits  [][2]string
	tests  string // the tests that guard it: a -run pattern of the package's
	needs  string // "cgroup v1" or "cgroup v2", where only that shows it; "" anywhere
	// exercise is the number of the exercise of the step's page that has
	// the learner make this very edit: the exercise names the tests.
	exercise int
}

// remove edits a line (or lines) out.
func remove(old string) [2]string { return [2]string{old, ""} }

// Guard clauses are turned off by making the error they test nil: the
// code still builds, the call is never made.
const noErr = "if err := error(nil); err != nil {"

var mutants = []mutant{
	// step01: run a command.
	{pkg: "step01-exec", file: "main.go", name: "stdin not wired",
		breaks: "the command reads what the learner types",
		edits:  [][2]string{{"cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr", "cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr"}},
		tests:  "TestStdioIsWired"},
	{pkg: "step01-exec", file: "main.go", name: "no Pdeathsig",
		breaks: "killing run kills the command",
		edits:  [][2]string{{"Pdeathsig: unix.SIGKILL,", "Pdeathsig: unix.Signal(0),"}},
		tests:  "TestKillingRunKillsTheCommand", exercise: 2},
	{pkg: "step01-exec", file: "plumbing.go", name: "no signal caught",
		breaks: "a signal sent to run reaches the command, and run reports how it ended",
		edits:  [][2]string{remove("\t\tsignal.Notify(signals, catchable()...)\n")},
		tests:  "TestSignalsReachTheCommand", exercise: 3},
	{pkg: "step01-exec", file: "plumbing.go", name: "a signal not forwarded",
		breaks: "a signal sent to run reaches the command",
		edits:  [][2]string{{"_ = cmd.Process.Signal(sig) // it may have exited already", "_ = sig"}},
		tests:  "TestSignalsReachTheCommand|TestEverySignalReachesTheCommand"},
	{pkg: "step01-exec", file: "plumbing.go", name: "no 128+S",
		breaks: "a command killed by signal S exits 128+S, as in a shell",
		edits:  [][2]string{{"return &exitError{status: 128 + int(status.Signal())}", "return &exitError{status: int(status.Signal())}"}},
		tests:  "TestSignalsReachTheCommand|TestEverySignalReachesTheCommand"},

	// step02: UTS namespace, and the child.
	{pkg: "step02-uts", file: "main.go", name: "another hostname",
		breaks: "the container's hostname is container",
		edits:  [][2]string{{`[]byte("container")`, `[]byte("box")`}},
		tests:  "TestHostnameIsContainer"},
	{pkg: "step02-uts", file: "main.go", name: "no CLONE_NEWUTS",
		breaks: "the hostname changes inside only",
		edits:  [][2]string{{"Cloneflags: unix.CLONE_NEWUTS,", "Cloneflags: 0,"}},
		tests:  "TestHostnameIsContainer|TestHostnameChangeStaysInside"},
	{pkg: "step02-uts", file: "main.go", name: "an empty environment",
		breaks: "the environment reaches the command",
		edits:  [][2]string{{"err = unix.Exec(path, c.argv, os.Environ())", "err = unix.Exec(path, c.argv, nil)"}},
		tests:  "TestEnvironmentReachesTheCommand"},
	{pkg: "step02-uts", file: "plumbing.go", name: "no 126",
		breaks: "a file that cannot run exits 126, as in a shell",
		edits:  [][2]string{{"case errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOEXEC), errors.Is(err, fs.ErrPermission):", "case false && errors.Is(err, fs.ErrPermission):"}},
		tests:  "TestCommandThatCannotRunExits126"},
	{pkg: "step02-uts", file: "plumbing.go", name: "no LockOSThread in the child",
		breaks: "the command gets the parent-death signal: killing run kills it",
		edits:  [][2]string{{"runtime.LockOSThread()\n\t\tstartChild()", "_ = runtime.LockOSThread\n\t\tstartChild()"}},
		tests:  "TestChildStaysOnItsFirstThread"},
	{pkg: "step02-uts", file: "plumbing.go", name: "an unguarded child",
		breaks: `"child" typed by hand refuses to change the host`,
		edits:  [][2]string{{"if err := checkNewNamespaces(namespaces...); err != nil {", noErr}},
		tests:  "TestChildRefusesOnTheHost"},
	{pkg: "step03-pid", file: "plumbing.go", name: "no terminal foreground",
		breaks: "an interactive command gets the terminal",
		edits:  [][2]string{{"_ = unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, unix.Getpgrp())\n\t\t_ = unix.PthreadSigmask", "_ = unix.PthreadSigmask"}},
		tests:  "TestTerminalKeysDuringSetupWaitForTheCommand|TestInteractiveShellExitsCleanly"},

	// step03: PID namespace.
	{pkg: "step03-pid", file: "main.go", name: "no CLONE_NEWPID",
		breaks: "the command is PID 1",
		edits:  [][2]string{{"unix.CLONE_NEWUTS | unix.CLONE_NEWPID,", "unix.CLONE_NEWUTS,"}},
		tests:  "TestCommandIsPID1"},
	{pkg: "step03-pid", file: "main.go", name: "the talk's cmd.Run() child",
		breaks: "the command, not a Go program, is PID 1",
		edits: [][2]string{{"err = unix.Exec(path, c.argv, os.Environ())",
			"cmd := exec.Command(path, c.argv[1:]...)\n\tcmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr\n\terr = cmd.Run()"}},
		tests: "TestCommandIsPID1"},

	// step04: chroot.
	{pkg: "step04-chroot", file: "main.go", name: "no chdir /",
		breaks: "the command starts in the container's /",
		edits:  [][2]string{{`if err := unix.Chdir("/"); err != nil {`, noErr}},
		tests:  "TestRootIsTheRootfs"},
	{pkg: "step04-chroot", file: "main.go", name: "-rootfs defaults to /",
		breaks: "without -rootfs, the container's / is ./rootfs",
		edits:  [][2]string{{`f.StringVar(&c.rootfs, "rootfs", "rootfs",`, `f.StringVar(&c.rootfs, "rootfs", "/",`}},
		tests:  "TestRootIsTheRootfs"},

	// step05: mount namespace and /proc.
	{pkg: "step05-proc", file: "main.go", name: "no CLONE_NEWNS",
		breaks: "the container's mounts are its own",
		edits:  [][2]string{{"unix.CLONE_NEWPID | unix.CLONE_NEWNS,", "unix.CLONE_NEWPID,"}},
		tests:  "TestMountViewIsTheContainers|TestPsSeesOnlyTheContainer"},
	{pkg: "step05-proc", file: "main.go", name: "no private /",
		breaks: "on a systemd host (/ shared), /proc does not leak to the host",
		edits:  [][2]string{{`if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {`, noErr}},
		tests:  "TestProcDoesNotLeakToASharedHost", exercise: 2},
	{pkg: "step05-proc", file: "main.go", name: "no MS_REC on the private /",
		breaks: "with the root filesystem on a mount of its own, /proc does not leak to a systemd host",
		edits:  [][2]string{{"unix.MS_REC|unix.MS_PRIVATE", "unix.MS_PRIVATE"}},
		tests:  "TestProcDoesNotLeakToASharedHost"},
	{pkg: "step05-proc", file: "main.go", name: "the command looked up on the host",
		breaks: "the command is looked for in the container's files",
		edits: [][2]string{
			remove("path, err := lookPath(c.argv[0])\n\tif err != nil {\n\t\treturn err\n\t}\n"),
			{"if err := unix.Chroot(c.rootfs); err != nil {", "path, err := lookPath(c.argv[0])\n\tif err != nil {\n\t\treturn err\n\t}\n\tif err := unix.Chroot(c.rootfs); err != nil {"},
		},
		tests: "TestCommandNotFoundExits127"},

	// step06: cgroups.
	{pkg: "step06-cgroups", file: "cgroup.go", name: "no pids limit (v1)", needs: "cgroup v1",
		breaks: "a fork bomb is stopped",
		edits:  [][2]string{{"{\"pids.max\", strconv.Itoa(c.pids)},\n\t\t\t// Memory", "// Memory"}},
		tests:  "TestForkBombIsStopped"},
	{pkg: "step06-cgroups", file: "cgroup.go", name: "no memory limit (v1)", needs: "cgroup v1",
		breaks: "a memory hog is killed",
		edits:  [][2]string{remove("{\"memory.limit_in_bytes\", strconv.FormatInt(c.memory, 10)},\n\t\t\t{\"memory.memsw.limit_in_bytes\", strconv.FormatInt(c.memory, 10)},")},
		tests:  "TestMemoryHogIsKilled"},
	{pkg: "step06-cgroups", file: "cgroup.go", name: "no pids limit (v2)", needs: "cgroup v2",
		breaks: "a fork bomb is stopped",
		edits:  [][2]string{{"{\"pids.max\", strconv.Itoa(c.pids)},\n\t\t\t{\"memory.max\"", "{\"memory.max\""}},
		tests:  "TestForkBombIsStopped"},
	{pkg: "step06-cgroups", file: "cgroup.go", name: "no memory limit (v2)", needs: "cgroup v2",
		breaks: "a memory hog is killed",
		edits:  [][2]string{remove(`{"memory.max", strconv.FormatInt(c.memory, 10)},`)},
		tests:  "TestMemoryHogIsKilled"},
	{pkg: "step06-cgroups", file: "main.go", name: "no UseCgroupFD", needs: "cgroup v2",
		breaks: "on cgroup v2, the command starts in its cgroup, under its limits",
		edits:  [][2]string{{"cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, cg.fd", "_ = cg.fd"}},
		tests:  "TestCommandStartsInItsCgroup"},
	{pkg: "step06-cgroups", file: "cgroup.go", name: "a remove that does nothing",
		breaks: "no cgroup is left after the container",
		edits:  [][2]string{{"func (cg *cgroup) remove() {", "func (cg *cgroup) remove() {\n\tif cg != nil {\n\t\treturn\n\t}"}},
		tests:  "TestCgroupIsRemoved"},

	// step07: pivot_root.
	{pkg: "step07-pivot-root", file: "main.go", name: "chroot instead of pivot_root",
		breaks: "the chroot escape is closed",
		edits: [][2]string{
			{`if err := unix.PivotRoot(".", "."); err != nil {`, `if err := unix.Chroot("."); err != nil {`},
			{`if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {`, noErr},
		},
		tests: "TestChrootEscapeIsClosed"},
	{pkg: "step07-pivot-root", file: "main.go", name: "the old root not detached",
		breaks: "the container sees its own mounts only",
		edits:  [][2]string{{`if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {`, noErr}},
		tests:  "TestChrootEscapeIsClosed", exercise: 2},

	// step08: overlay.
	{pkg: "step08-overlay", file: "main.go", name: "the root filesystem itself, no overlay",
		breaks: "the image is never written",
		edits:  [][2]string{{`unix.Mount("overlay", ov.merged, "overlay", 0, ov.options)`, `unix.Mount(ov.lower, ov.merged, "", unix.MS_BIND, "")`}},
		tests:  "TestImageIsNeverWritten"},
	{pkg: "step08-overlay", file: "overlay.go", name: "the upper layer in the root filesystem",
		breaks: "the container's changes stay out of the root filesystem",
		edits:  [][2]string{{`upper: filepath.Join(dir, "upper"),`, `upper: filepath.Join(lower, "upper"),`}},
		tests:  "TestImageIsNeverWritten|TestChangesAreInTheUpperLayer"},
	{pkg: "step08-overlay", file: "main.go", name: "-keep ignored",
		breaks: "-keep keeps the changes",
		edits:  [][2]string{{"defer ov.remove(c.keep)", "defer ov.remove(false)"}},
		tests:  "TestKeepKeepsTheChanges"},
	{pkg: "step08-overlay", file: "overlay.go", name: "-scratch inside the image accepted",
		breaks: "the container's changes, kept or not, stay out of the root filesystem, whatever -scratch names it",
		edits:  [][2]string{{"if err := checkApart(scratch, ov.lower); err != nil {", noErr}},
		tests:  "TestScratchInsideTheImageIsRefused"},

	// step09: network namespace and a veth pair.
	{pkg: "step09-net", file: "main.go", name: "no CLONE_NEWNET",
		breaks: "the network is the container's own",
		edits:  [][2]string{{"unix.CLONE_NEWNS | unix.CLONE_NEWNET,", "unix.CLONE_NEWNS,"}},
		tests:  "TestNetworkIsTheContainersOwn"},
	{pkg: "step09-net", file: "main.go", name: "no veth cleanup",
		breaks: "nothing is left on the host's network",
		edits:  [][2]string{remove("defer cable.remove()")},
		tests:  "TestNothingIsLeftOnTheNetwork"},
	{pkg: "step09-net", file: "net.go", name: "lo left down",
		breaks: "the container reaches itself on 127.0.0.1",
		edits:  [][2]string{{"err = netlink.LinkSetUp(lo)", "_ = lo"}},
		tests:  "TestNetworkIsTheContainersOwn"},
	{pkg: "step09-net", file: "net.go", name: "-net takes any range",
		breaks: "-net refuses loopback, link-local, multicast and the other ranges a cable cannot use",
		edits:  [][2]string{{"for _, r := range unusable {", "for _, r := range unusable[:0] {"}},
		tests:  "TestBadSubnetsAreUsageErrors"},

	// step10: user namespace.
	{pkg: "step10-userns", file: "main.go", name: "no CLONE_NEWUSER",
		breaks: "the container's root is not the host's root",
		edits:  [][2]string{{"Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWUTS", "Cloneflags: unix.CLONE_NEWUTS"}},
		tests:  "TestRootInsideIsTheOwnerOutside|TestHostRootPowersFailInside"},
	{pkg: "step10-userns", file: "main.go", name: "root mapped to the host's root",
		breaks: "the container's root is the root filesystem's owner on the host",
		edits:  [][2]string{{"{ContainerID: 0, HostID: owner.uid, Size: 1}", "{ContainerID: 0, HostID: 0, Size: 1}"}},
		tests:  "TestRootInsideIsTheOwnerOutside|TestHostRootPowersFailInside"},
	{pkg: "step10-userns", file: "userns.go", name: "a root filesystem of root's accepted",
		breaks: "a root filesystem of root's is refused",
		edits:  [][2]string{{"case o.uid == 0 || o.gid == 0:", "case false:"}},
		tests:  "TestRootOwnedRootfsIsRefused"},
	{pkg: "step10-userns", file: "main.go", name: "no devices of the host's",
		breaks: "/dev/null and the others open in the container",
		edits:  [][2]string{{"if err := bindDevices(); err != nil {", noErr}},
		tests:  "TestRunsWithoutRoot"},
	{pkg: "step10-userns", file: "overlay.go", name: "no userxattr",
		breaks: "the container deletes what it likes, which only hides it (whiteouts, opaque directories)",
		edits:  [][2]string{{"workdir=%s,userxattr\"", "workdir=%s\""}},
		tests:  "TestImageIsNeverWritten"},
	{pkg: "step10-userns", file: "inroot.go", name: "the image's links resolved on the host",
		breaks: "no symbolic link or .. in the image leads run's setup out of it",
		edits:  [][2]string{{"Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,", "Resolve: 0,"}},
		tests:  "TestProcLinkStaysInTheImage|TestDevLinksStayInTheImage"},
	{pkg: "step10-userns", file: "main.go", name: "/proc mounted on the image's path as the host resolves it",
		breaks: "no symbolic link or .. in the image leads run's setup out of it",
		edits:  [][2]string{{`mountInRoot("proc", "proc", "proc", 0)`, `unix.Mount("proc", "proc", "proc", 0, "")`}},
		tests:  "TestProcLinkStaysInTheImage"},
	{pkg: "step10-userns", file: "userns.go", name: "devices bound on the image's paths as the host resolves them",
		breaks: "no symbolic link or .. in the image leads run's setup out of it",
		edits:  [][2]string{{`mountInRoot("/dev/"+name, "dev/"+name, "", unix.MS_BIND)`, `unix.Mount("/dev/"+name, "dev/"+name, "", unix.MS_BIND, "")`}},
		tests:  "TestDevLinksStayInTheImage"},
	{pkg: "step10-userns", file: "inroot.go", name: "a raced lookup not tried again",
		breaks: "a container starts on a busy machine, where openat2 may answer EAGAIN",
		edits:  [][2]string{{"errors.Is(err, unix.EAGAIN) && try < 100", "false && try < 100"}},
		tests:  "TestRacedLookupIsTriedAgain"},
	{pkg: "step10-userns", file: "overlay.go", name: "a user without a home gets root's scratch directory",
		breaks: "without HOME, a normal user's run finds a scratch directory of theirs, or says to pass -scratch",
		edits:  [][2]string{{"\t\tif home == \"\" {\n\t\t\treturn \"\"", "\t\tif home == \"\" {\n\t\t\treturn \"/var/lib/containers-from-scratch/containers\""}},
		tests:  "TestScratchDefaultsWithoutHome"},
	{pkg: "step10-userns", file: "plumbing.go", name: "any standard input or output",
		breaks: "the container is not handed a way into the host's files: a directory as its standard input or output",
		edits:  [][2]string{{"return c, checkStdio()", "return c, nil"}},
		tests:  "TestStdioThatLeadsIntoTheHostIsRefused"},
	{pkg: "step10-userns", file: "cgroup.go", name: "the delegated cgroup not put back", needs: "cgroup v2",
		breaks: "run leaves the cgroup delegated to it as it was given",
		edits:  [][2]string{{"_ = write(cg.given, \"cgroup.subtree_control\", off)", "_ = off"}},
		tests:  "TestLimitsHoldInADelegatedCgroup"},
	// Issue 27: whose the container's root is, its groups, a learner's run.
	{pkg: "step10-userns", file: "main.go", name: "root's group inside is the owner's user outside",
		breaks: "the container's root group is the root filesystem's group on the host",
		edits:  [][2]string{{"HostID: owner.gid", "HostID: owner.uid"}},
		tests:  "TestRootGroupIsTheRootfsGroup"},
	{pkg: "step10-userns", file: "main.go", name: "sudo's caller's groups kept",
		breaks: "with sudo, the command keeps none of the caller's supplementary groups",
		edits:  [][2]string{{"NoSetGroups: os.Geteuid() != 0}", "NoSetGroups: true}"}},
		tests:  "TestSudoDropsTheCallersGroups"},

	// mkrootfs.
	{pkg: "mkrootfs", file: "/internal/rootfs/rootfs.go", name: "no ELF loader",
		breaks: "every program in the root filesystem runs",
		edits:  [][2]string{{`deps = append(deps, string(bytes.TrimRight(interp, "\x00")))`, `_ = bytes.TrimRight(interp, "\x00")`}},
		tests:  "TestEveryELFHasItsLoaderAndLibraries|TestEveryCommandRunsInAChroot"},
}
