#!/usr/bin/env bash
# Runs the course's tests on a real systemd host with pure cgroup v2, as
# most learners' machines are: a Debian 13 VM booted with QEMU, whose / is
# shared (systemd's default, which is what makes a container's /proc leak)
# and whose cgroups are unified. Run as root from anywhere in the repository:
#
#   vm/systemd-vm-test.sh [--rev REV] [--arch arm64] [--all]
#
# It tests a clean clone of REV (default HEAD). The system image (Debian 13,
# systemd, Debian's kernel, Go) is built with debootstrap from the Debian
# mirror of this machine's apt sources and cached in
# /var/cache/containers-from-scratch; every run boots it afresh, with a
# throw-away overlay, and no network. QEMU uses KVM when /dev/kvm is usable,
# software emulation otherwise. Exits with the suite's status.
#
# The tests are built here (go test -c) and run there as root, two packages
# at a time: emulated, a build takes ten times as long. Emulated, every test
# does, so without --all the VM runs the tests that this machine and the
# fresh Debian 13 (vm/fresh-machine-test.sh) cannot show (v2_tests below):
# cgroup v2, systemd's shared / and its delegation to a user, Debian 13's
# kernel, each step's basic run, and the pages' commands; then the mutants
# that only cgroup v2 shows. --all runs every test but the workshop's
# (about 60 minutes emulated).
#
# --arch arm64 does the same on an emulated arm64 machine (QEMU's virt
# board), as an Apple silicon Mac's VM is. Its image is built through
# qemu-user (binfmt_misc), and has no Go, so no mutants. It runs the tests
# where the architecture makes a difference (ARM64_TESTS below), each
# step's package and mkrootfs's; --all runs all of theirs (about 40 minutes).
set -Eeuo pipefail

suite=trixie # Debian 13
cache=/var/cache/containers-from-scratch
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
rev=HEAD
arch=amd64
all=
usage() {
	echo "usage: vm/systemd-vm-test.sh [--rev REV] [--arch amd64|arm64] [--all]" >&2
	exit 2
}
while [ $# -gt 0 ]; do
	case $1 in
	--rev)
		[ -n "${2:-}" ] || usage
		rev=$2
		shift 2
		;;
	--arch)
		case ${2:-} in amd64 | arm64) arch=$2 ;; *) usage ;; esac
		shift 2
		;;
	--all)
		all=yes
		shift
		;;
	*) usage ;;
	esac
done
started=$SECONDS
name=systemd-vm
[ "$arch" = amd64 ] || name=systemd-vm-$arch
# The tests that the amd64 VM runs unless --all: those whose code or whose
# checks take another path on this host than on the host that runs CI and
# the fresh Debian 13 (a private / and cgroup v1 or hybrid, under the same
# kernel). Each step runs its basic run, its mounts under systemd's shared
# /, and what its own feature does on this host: cgroups made on cgroup v2,
# limited and removed, Debian 13's kernel (pivot_root, overlay, seccomp,
# IPC, the masked /proc), the user namespace and the cgroup that systemd
# delegates to a user. The cgroup checks run in step06 and step13: steps
# 07-09 have step06's cgroup.go, and 10-12 step13's (10 without step11's
# cgroupIsRoot). step13, the whole course in one program, runs them all.
# Beside the steps: the pages' commands, where those for cgroup v2 run
# (internal/lessons), and bench's runs, which measure cgroup v2's parts.
# The rest does the same on any Linux, and runs on the host and the fresh
# Debian 13.
V2_BASIC='StdioIsWired|ExitStatusPassesThrough|HostnameIsContainer|CommandIsPID1|PsSeesOnlyTheContainer|RootIsTheRootfs|MountsStayInTheTests|MountViewIsTheContainers|ProcDoesNotLeakToASharedHost|MountsDoNotLeakToASharedHost|OnlyTheContainersMounts'
V2_CGROUPS='CommandStartsInItsCgroup|ForkBombIsStopped|MemoryHogIsKilled|CgroupIsRemoved|CPUQuotaGivesWhatCpusAsks|CgroupWriteErrorsNameTheFile|FailedCgroupLeavesNoCgroup|OtherRunsLeaveACgroupBeingMadeAlone|OtherRunsLeaveALiveCgroupAlone|SignalDuringCgroupSetupLeavesNoCgroup|RunKilledBeforeItsChildIsArmedLeavesNothing'
declare -A V2_ADDS=(
	[step06-cgroups]=$V2_CGROUPS
	[step07-pivot-root]='PivotRootErrorsAreExplained'
	[step08-overlay]='ChangesAreInTheUpperLayer|FailedOverlayDirsLeaveNothing|OverlayErrorsAreExplained'
	[step09-net]='NetworkIsTheContainersOwn|NothingIsLeftOnTheNetwork'
	[step10-userns]='RootInsideIsTheOwnerOutside|RunsWithoutRoot|LearnerRunsWithoutSudo|LimitsHoldInADelegatedCgroup|UserNamespaceWallsAreExplained'
	[step11-ipc]='HostIPCIsOutOfReach|IPCMadeInsideStaysInside|CgroupIsRootInside'
	[step12-lockdown]='DoorsAreClosed|StatusShowsTheLockdown|InstalledFilterRefusesEachCall|SystemCallNumbers|ProcIsMasked'
	[step13-image]='ImageRunsAsItsConfigSays|LayersAreUnpackedOnce|HostileLayersAreRefused|IDsLeftByTheContainerAreRemoved|UnpackedLayersStackInAnOverlay|UnpackInAUserNamespace'
)
v2_tests() { # STEP
	local adds=${V2_ADDS[$1]:-} step
	if [ "$1" = step13-image ]; then
		for step in "${!V2_ADDS[@]}"; do [ "$step" = "$1" ] || adds+="|${V2_ADDS[$step]}"; done
	fi
	echo "^Test($V2_BASIC${adds:+|$adds})\$"
}
BENCH_V2_TESTS='^Test(TablesAndChartAddUp|LeftoverCgroupsOfAKilledBenchGo|CtrlCStopsAndLeavesNothing)$'
# The tests that arm64 runs unless --all: what depends on the processor
# (system calls by name and number, strace's injected errors, the loader
# and libraries mkrootfs copies, signals) and each step's basic run, in
# every package; and a race test held by strace's delay_enter in three steps
# (each step has the same supervisor). The race tests that strace stops with
# SIGSTOP run only with --all: strace itself fails now and then there
# (ptrace(PTRACE_LISTEN): Input/output error, about once in 150 stops).
ARM64_TESTS='^Test(StdioIsWired|ExitStatusPassesThrough|HostnameIsContainer|CommandIsPID1|PsSeesOnlyTheContainer|RootIsTheRootfs|CommandStartsInItsCgroup|ForkBombIsStopped|NetworkIsTheContainersOwn|ContainerAndHostReachEachOther|ChangesAreInTheUpperLayer|OnlyTheContainersMounts|RootInsideIsTheOwnerOutside|RunsWithoutRoot|LimitsHoldInADelegatedCgroup|EachSignalReachesTheCommandOnce|ProcLinkStaysInTheImage|DevLinksStayInTheImage|OverlayErrorsAreExplained|PivotRootErrorsAreExplained|UserNamespaceWallsAreExplained|CgroupWriteErrorsNameTheFile|FailedOverlayDirsLeaveNothing|RacedLookupIsTriedAgain|CommandWaitsForTheCable|EveryELFHasItsLoaderAndLibraries|EveryCommandRunsInAChroot|ReportsWhatItBuilt|HostIPCIsOutOfReach|IPCMadeInsideStaysInside|CgroupIsRootInside|ChildRefusesOutsideItsNamespaces|DoorsAreClosed|StatusShowsTheLockdown|InstalledFilterRefusesEachCall|SystemCallNumbers|ProcIsMasked|OrdinaryWorkStillWorks|ImageRunsAsItsConfigSays|LayersAreUnpackedOnce|HostileLayersAreRefused|ThisMachinesPlatformIsPicked|IDsLeftByTheContainerAreRemoved|UnpackedLayersStackInAnOverlay|OpenImage.*)$'
ARM64_RACES='RunKilledBeforeItsChildIsArmedLeavesNothing'
ARM64_RACE_STEPS='step02-uts step06-cgroups step10-userns'
# shellcheck source=vm/lib.sh
. "$repo/vm/lib.sh"

[ "$(id -u)" = 0 ] || fail "run as root: debootstrap and the image need it"
case $arch in
amd64)
	qemu=${CFS_VM_QEMU:-qemu-system-x86_64}
	board=()
	console=ttyS0
	kernel=linux-image-amd64
	golang="golang-go,"
	qemu_package="qemu-system-x86"
	;;
arm64)
	qemu=${CFS_VM_QEMU:-qemu-system-aarch64}
	board=(-M virt -cpu cortex-a72)
	console=ttyAMA0
	kernel=linux-image-arm64
	golang=
	qemu_package="qemu-system-arm qemu-user-static"
	;;
esac
for tool in debootstrap "$qemu" mkfs.ext4 curl git go; do
	command -v "$tool" >/dev/null ||
		fail "$tool is missing (apt-get install debootstrap $qemu_package e2fsprogs curl git)"
done

work=$(mktemp -d /var/tmp/cfs-systemd-vm.XXXXXX)
qemu_pid=
binfmt=
cleanup() {
	[ -z "$qemu_pid" ] || kill -9 "$qemu_pid" 2>/dev/null || true
	# What this run registered with binfmt_misc goes with it.
	[ -z "$binfmt" ] || echo -1 >"$binfmt" 2>/dev/null || true
	remove_work "$work"
}

# foreign_binaries lets this machine run programs built for $1 (debootstrap
# runs the new system's own dpkg and maintainer scripts), through
# qemu-user, registered with the kernel's binfmt_misc for this run if the
# machine does not have it already. F: the kernel opens QEMU now, so that
# it works inside the chroot too.
foreign_binaries() {
	local cpu conf
	case $1 in arm64) cpu=aarch64 ;; *) fail "no qemu-user name for $1" ;; esac
	conf=/usr/lib/binfmt.d/qemu-$cpu.conf
	[ -f "$conf" ] || fail "no $conf: apt-get install qemu-user-static"
	[ -e /proc/sys/fs/binfmt_misc/register ] ||
		mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
		fail "cannot mount binfmt_misc, which runs the $1 system's programs here"
	if [ ! -e "/proc/sys/fs/binfmt_misc/qemu-$cpu" ]; then
		grep -q ':[A-Z]*F[A-Z]*$' "$conf" || fail "$conf does not fix its interpreter (flag F)"
		cat "$conf" >/proc/sys/fs/binfmt_misc/register || fail "cannot register $conf with binfmt_misc"
		binfmt=/proc/sys/fs/binfmt_misc/qemu-$cpu
	fi
}
trap cleanup EXIT

# --- the system image, built once ---------------------------------------

image=$cache/debian-$suite-systemd-vm.img
[ "$arch" = amd64 ] || image=$cache/debian-$suite-systemd-vm-$arch.img
packages=systemd,systemd-sysv,udev,$kernel,initramfs-tools,${golang}util-linux,procps,hostname,diffutils,ca-certificates,strace,git,iproute2,iputils-ping,uidmap,dbus,libpam-systemd
# Bump image_version when what goes into the image changes.
image_version=7
recipe="$suite $packages $image_version"
if [ ! -s "$image" ] || [ "$(cat "$image.recipe" 2>/dev/null)" != "$recipe" ]; then
	mirror=$(host_mirror "$suite")
	say "building the system image from $mirror (once; cached in $cache)"
	root=$work/image
	[ "$arch" = amd64 ] || foreign_binaries "$arch"
	bootstrap() { rm -rf "$root" && debootstrap --arch="$arch" --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; }
	retry 3 bootstrap || fail "debootstrap: $(tail -n 3 "$work/debootstrap.log")"
	echo "cfs-vm" >"$root/etc/hostname"
	echo "LABEL=cfs-root / ext4 rw 0 1" >"$root/etc/fstab"
	# The unit that runs the suite at boot and powers the VM off after.
	cat >"$root/etc/systemd/system/cfs-test.service" <<-'EOF'
		[Unit]
		Description=containers-from-scratch test suite
		After=local-fs.target
		[Service]
		Type=oneshot
		ExecStart=/usr/local/bin/cfs-test
		ExecStopPost=/usr/bin/systemctl --no-block poweroff
		[Install]
		WantedBy=multi-user.target
	EOF
	cat >"$root/usr/local/bin/cfs-test" <<-'EOF'
		#!/bin/bash
		# Copies the repository disk in, and runs the clone's vm/in-vm.sh,
		# which reports on the serial console.
		exec >/dev/ttyS0 2>&1
		echo "CFS-BOOTED"
		mkdir -p /mnt/cfs && mount -o ro LABEL=cfs-repo /mnt/cfs || { echo "CFS-ERROR no repository disk"; exit 1; }
		cp -a /mnt/cfs/repo /root/cfs && mkdir -p /root/go/pkg && cp -a /mnt/cfs/gomodcache /root/go/pkg/mod
		cd /root/cfs || exit 1
		[ -f vm/in-vm.sh ] && exec bash vm/in-vm.sh
		echo "CFS-ERROR this commit has no vm/in-vm.sh: it is older than the VM's image (version 4 on)"
	EOF
	sed -i "s|/dev/ttyS0|/dev/$console|" "$root/usr/local/bin/cfs-test"
	chmod +x "$root/usr/local/bin/cfs-test"
	chroot "$root" systemctl enable cfs-test.service >/dev/null 2>&1
	chroot "$root" systemctl mask getty@tty1.service "serial-getty@$console.service" >/dev/null 2>&1
	# Compile Go's standard library now, not on every boot. (go finds
	# itself through /proc.)
	# shellcheck disable=SC2016 # the inner script expands its own $1
	[ -z "$golang" ] || unshare --mount --propagation private sh -c \
		'mount -t proc proc "$1/proc" && chroot "$1" env HOME=/root GOTOOLCHAIN=local go build std' \
		systemd-vm "$root"
	if ! cp "$root"/boot/vmlinuz-* "$work/vmlinuz" || ! cp "$root"/boot/initrd.img-* "$work/initrd.img"; then
		fail "no kernel or initramfs in the image"
	fi
	mkfs.ext4 -q -F -L cfs-root -d "$root" "$work/image.img" 4G >/dev/null ||
		fail "mkfs.ext4 could not make the system image"
	mkdir -p "$cache" || fail "cannot create the cache folder $cache"
	# The recipe goes last: an image without it is built again.
	rm -f "$image.recipe"
	{ mv "$work/vmlinuz" "$image.vmlinuz" && mv "$work/initrd.img" "$image.initrd" && mv "$work/image.img" "$image"; } ||
		fail "cannot move the system image into $cache"
	echo "$recipe" >"$image.recipe"
	rm -rf "$root"
else
	say "using the cached system image $image"
fi

# --- the repository disk, new for every run ------------------------------

say "a clean clone of $rev, with the modules it needs"
disk=$work/disk
git clone -q "$repo" "$disk/repo"
git -C "$disk/repo" checkout -q "$(git -C "$repo" rev-parse --verify "$rev^{commit}")"
download() { (cd "$disk/repo" && GOMODCACHE="$disk/gomodcache" GOFLAGS=-modcacherw go mod download); }
retry 3 download ||
	fail "go mod download: the modules must come from the Go module proxy, before the VM starts"
# The tests are built here, for the VM's processor (emulated, a build takes
# ten times as long), and in-vm.sh runs them from the disk's tests/ folder:
# the packages in tests/list, in that order, tests/jobs at a time, each
# with the -test.run of tests/NAME.run and the -test.skip of tests/NAME.skip
# if there is one (NAME is the package's path, / written +).
say "building the tests for $arch"
mkdir -p "$disk/tests"
tests() { # PACKAGE [RUN [SKIP]]
	local name=${1//\//+}
	(cd "$disk/repo" && GOARCH=$arch CGO_ENABLED=0 GOFLAGS=-mod=readonly GOMODCACHE="$disk/gomodcache" \
		go test -c -o "$disk/tests/$name.test" "./$1") || fail "go test -c ./$1 for $arch failed"
	[ -z "${2:-}" ] || echo "$2" >"$disk/tests/$name.run"
	[ -z "${3:-}" ] || echo "$3" >"$disk/tests/$name.skip"
	echo "$1" >>"$disk/tests/list"
}
steps=$(cd "$disk/repo" && printf '%s\n' step*/ | tr -d / | sort -r) # the longest first
case $arch-$all in
amd64-)
	echo 2 >"$disk/tests/jobs"
	tests internal/lessons '^TestTranscriptsRun$'
	for pkg in $steps; do tests "$pkg" "$(v2_tests "$pkg")"; done
	tests bench "$BENCH_V2_TESTS"
	;;
amd64-yes)
	echo 2 >"$disk/tests/jobs"
	# Every package with tests but the workshop's, whose tests run every
	# step's suite again, and the pages' runs of bench and the workshop.
	for pkg in internal/lessons $steps bench mkrootfs pull registry internal/steptest internal/mutants vm; do
		tests "$pkg" "" '^TestThePageRuns$'
	done
	;;
arm64-*)
	echo 1 >"$disk/tests/jobs"
	for pkg in $steps mkrootfs; do
		run=
		if [ -z "$all" ]; then
			run=$ARM64_TESTS
			case " $ARM64_RACE_STEPS " in *" $pkg "*) run="${ARM64_TESTS%)\$}|$ARM64_RACES)\$" ;; esac
		fi
		tests "$pkg" "$run"
	done
	;;
esac
if [ "$arch" = amd64 ]; then
	# The mutants that only cgroup v2 shows, each one's tests built here
	# too, and the tool that runs them there.
	(cd "$disk/repo" && GOARCH=$arch CGO_ENABLED=0 GOFLAGS=-mod=readonly GOMODCACHE="$disk/gomodcache" \
		go build -o "$disk/mutants/mutants" ./internal/mutants &&
		GOARCH=$arch CGO_ENABLED=0 GOFLAGS=-mod=readonly GOMODCACHE="$disk/gomodcache" \
			go run ./internal/mutants -only cgroup-v2 -build "$disk/mutants" >"$work/mutants.log" 2>&1) ||
		fail "the cgroup v2 mutants do not build: $(tail -n 20 "$work/mutants.log")"
else
	rm -rf "$disk/gomodcache" # no Go in the image: the VM needs no modules
	mkdir -p "$disk/gomodcache"
fi
mkfs.ext4 -q -F -L cfs-repo -d "$disk" "$work/repo.img" 768M >/dev/null ||
	fail "mkfs.ext4 could not make the repository disk"

# --- boot, test, power off ---------------------------------------------

# How QEMU emulates the machine when it cannot use KVM. vm/README.md has the
# crash rates measured for each choice; these variables are there to measure
# another one, not to be set in CI.
cpus=${CFS_VM_CPUS:-2}
cpu_model=${CFS_VM_CPU_MODEL:-} # empty: QEMU's default
# QEMU before 8.1 could run code it had translated wrongly when two of its
# threads translated at once (fixed in 8.1 by "accel/tcg: Always lock pages
# before translation"), and the guest's kernel then dies of an instruction
# that is not there. With such a QEMU, one thread emulates every CPU.
read -r major minor < <("$qemu" --version | sed -nE '1s/.*version ([0-9]+)\.([0-9]+).*/\1 \2/p')
tcg=thread=multi
if [ "${major:-0}" -lt 8 ] || { [ "$major" = 8 ] && [ "${minor:-0}" -lt 1 ]; }; then
	tcg=thread=single
fi
tcg=${CFS_VM_TCG:-$tcg}

# KVM when this machine can lend its processor's virtualization to a guest:
# /dev/kvm alone is not enough (nested under another hypervisor it may exist
# and still fail), so a KVM boot that fails falls back to emulation.
boot() {
	local accel=$1
	local -a cpu=(-accel "tcg,$tcg")
	local how version
	version=$("$qemu" --version | grep -oE 'version [0-9.]+')
	how="tcg ($tcg${cpu_model:+, cpu $cpu_model}, $version)"
	[ -z "$cpu_model" ] || cpu+=(-cpu "$cpu_model")
	if [ "$accel" = kvm ]; then
		cpu=(-accel kvm -cpu host)
		how=kvm
	fi
	say "booting with $how, $cpus CPUs, 2 GiB; at most ${limit}s"
	: >"$serial"
	"$qemu" "${board[@]}" "${cpu[@]}" -smp "$cpus" -m 2048 -nodefaults -display none -no-reboot \
		-kernel "$image.vmlinuz" -initrd "$image.initrd" \
		-append "root=LABEL=cfs-root rw console=$console quiet systemd.show_status=0 panic=-1" \
		-drive "file=$image,format=raw,if=virtio,snapshot=on" \
		-drive "file=$work/repo.img,format=raw,if=virtio,readonly=on" \
		-serial "file:$serial" -nic none 2>"$work/qemu.log" &
	qemu_pid=$!
	local waited=0
	timed_out=
	while kill -0 "$qemu_pid" 2>/dev/null; do
		if [ "$waited" -ge "$limit" ]; then
			timed_out=yes
			break
		fi
		# A KVM that cannot run this guest stops it with an internal error
		# and leaves QEMU waiting.
		if [ "$accel" = kvm ] && grep -qE 'KVM internal error|kvm_.*Assertion' "$work/qemu.log"; then
			break
		fi
		# Booting takes well under a minute, emulated (arm64: one or two);
		# the rest is the suite.
		if [ "$waited" -ge "$boot_limit" ] && ! grep -q CFS-BOOTED "$serial"; then
			break
		fi
		sleep 1
		waited=$((waited + 1))
	done
	kill -9 "$qemu_pid" 2>/dev/null || true
	wait "$qemu_pid" 2>/dev/null || true
	qemu_pid=
}

# crash prints what shows that the guest's kernel or the emulator itself
# crashed, if anything does: a cause outside the project, unlike a test
# that fails, which always leaves a result.
crash() {
	{
		tr -d '\r' <"$serial" | grep -a -m1 -E 'Kernel panic|BUG: |Oops|general protection fault|invalid opcode' || true
		grep -a -m1 -E 'Aborted|Segmentation fault|core dumped|assertion|qemu: fatal' "$work/qemu.log" || true
	} | sed -E 's/^\[ *[0-9.]+\] *//' | head -n1
}

# The suite takes about 35 minutes on a quiet machine (thirteen steps);
# an emulated VM on a busy one is slower.
limit=${CFS_VM_TIMEOUT:-3000}
boot_limit=300
[ "$arch" = amd64 ] || boot_limit=600
[ -z "$all" ] || limit=${CFS_VM_TIMEOUT:-5400}
serial=$work/serial.log
timed_out=
accel=tcg
if [ "$arch" = amd64 ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
	accel=kvm
fi
boot "$accel"
if [ "$accel" = kvm ] && ! grep -q CFS-BOOTED "$serial"; then
	say "KVM could not run the VM ($(grep -m1 -E 'KVM|kvm|error' "$work/qemu.log" || echo 'no boot')): emulating instead"
	accel=tcg
	boot tcg
fi
# An emulated machine can crash by itself: its kernel panics where the
# emulator ran it wrong (seen once in about six runs of QEMU 7.2's threaded
# TCG). That is no fault of the tests, so the suite runs once more in a new
# boot; a suite that finished, passed or not, is never run again.
first_crash=
if ! grep -q CFS-RESULT "$serial" && [ -z "$timed_out" ]; then
	first_crash=$(crash)
	if [ -n "$first_crash" ]; then
		say "the emulated machine crashed, not a test ($first_crash): running the suite once more"
		boot "$accel"
	elif ! grep -q CFS-BOOTED "$serial"; then
		say "the VM did not boot (no sign of the test unit): once more"
		boot "$accel"
	fi
	if [ -n "$first_crash" ] && ! grep -q CFS-RESULT "$serial" && [ -n "$(crash)" ]; then
		tail -n 30 "$serial" >&2
		fail "the emulator crashed twice, not a test: $first_crash; then $(crash)"
	fi
fi

# --- what came out -------------------------------------------------------

field() { sed -n "s/^CFS-$1 //p" "$serial" | tr -d '\r' | tail -n1; }
if ! grep -q CFS-BOOTED "$serial"; then
	tail -n 30 "$serial" >&2
	fail "the VM did not boot to the test unit${timed_out:+ within ${limit}s}"
fi
result=$(field RESULT)
if [ -z "$result" ]; then
	tail -n 40 "$serial" >&2
	last_crash=$(crash)
	fail "the suite did not finish${timed_out:+ within ${limit}s}$(field ERROR | sed 's/^/: /')${last_crash:+: the emulated machine crashed ($last_crash)}"
fi
last_crash=$(crash)
[ -z "$last_crash" ] || say "note: the kernel reported \"$last_crash\" during the suite; a failure below may be the emulator's"
tr -d '\r' <"$serial" | grep -E -- '^(ok|FAIL|panic)\s|CPU share|delegated by systemd' || true
if grep -qE -- '^\s*--- (FAIL|SKIP)' "$serial"; then
	echo "$name: what failed or was skipped:"
	tr -d '\r' <"$serial" | grep -E -B15 -A3 -- '^\s*--- (FAIL|SKIP)' | head -n 300
	# What a failed subtest printed comes long before its "--- FAIL" line,
	# which go test writes when the parent ends: show each one's output,
	# from its "=== RUN" to the next.
	tr -d '\r' <"$serial" | awk '
		/^\s*--- FAIL: / { failed[$3] = 1 }
		{ lines[NR] = $0 }
		END {
			for (i = 1; i <= NR; i++) {
				if (lines[i] ~ /^=== (RUN|CONT)/) { split(lines[i], f, " "); show = (f[3] in failed) }
				if (show) print lines[i]
			}
		}' | head -n 300
fi
eval "$(echo "$result" | tr ' ' '\n' | grep -E '^(status|passed|skipped|failed|seconds)=[0-9]+$')"
cat <<EOF
$name: $accel; kernel $(field KERNEL), cgroup $(field CGROUP), / $(field PROPAGATION), init $(field INIT)
$name: tests and subtests: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped; suite ${seconds:-?}s, whole run $((SECONDS - started))s
EOF
mutants=$(field MUTANTS)
tr -d '\r' <"$serial" | grep -E -- '^(killed|SURVIVED|BROKEN) ' || true
echo "$name: ${mutants:-the mutation check did not finish}"
setup_error=$(field ERROR)
[ -z "$setup_error" ] || fail "inside the VM: $setup_error"
[ "${passed:-0}" -gt 0 ] || fail "zero tests ran"
[ "${skipped:-0}" -eq 0 ] || fail "tests were skipped inside the VM, as root"
[ "${status:-1}" -eq 0 ] || fail "the suite failed inside the VM (status $status)"
if [ "$arch" = amd64 ]; then
	case $mutants in
	status=0\ *) ;;
	"") fail "the mutation check of cgroup v2 did not finish inside the VM${timed_out:+ within ${limit}s}${last_crash:+: the emulated machine crashed ($last_crash)}" ;;
	*) fail "the mutation check of cgroup v2 failed inside the VM: a mutant survived, or could not be made" ;;
	esac
fi
say "passed"
