#!/usr/bin/env bash
# Runs the whole test suite on a real systemd host with pure cgroup v2, as
# most learners' machines are: a Debian 13 VM booted with QEMU, whose / is
# shared (systemd's default, which is what makes a container's /proc leak)
# and whose cgroups are unified. Run as root from anywhere in the repository:
#
#   vm/systemd-vm-test.sh [--rev REV]
#
# It tests a clean clone of REV (default HEAD). The system image (Debian 13,
# systemd, Debian's kernel, Go) is built with debootstrap from the Debian
# mirror of this machine's apt sources and cached in
# /var/cache/containers-from-scratch; every run boots it afresh, with a
# throw-away overlay, and no network. QEMU uses KVM when /dev/kvm is usable,
# software emulation otherwise. Exits with the suite's status.
set -Eeuo pipefail

suite=trixie # Debian 13
cache=/var/cache/containers-from-scratch
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
rev=HEAD
if [ "${1:-}" = --rev ] && [ -n "${2:-}" ]; then
	rev=$2
elif [ $# -gt 0 ]; then
	echo "usage: vm/systemd-vm-test.sh [--rev REV]" >&2
	exit 2
fi
started=$SECONDS
name=systemd-vm
# shellcheck source=vm/lib.sh
. "$repo/vm/lib.sh"

[ "$(id -u)" = 0 ] || fail "run as root: debootstrap and the image need it"
for tool in debootstrap qemu-system-x86_64 mkfs.ext4 curl git go; do
	command -v "$tool" >/dev/null ||
		fail "$tool is missing (apt-get install debootstrap qemu-system-x86 e2fsprogs curl git)"
done

work=$(mktemp -d /var/tmp/cfs-systemd-vm.XXXXXX)
qemu_pid=
cleanup() {
	[ -z "$qemu_pid" ] || kill -9 "$qemu_pid" 2>/dev/null || true
	remove_work "$work"
}
trap cleanup EXIT

# --- the system image, built once ---------------------------------------

image=$cache/debian-$suite-systemd-vm.img
packages=systemd,systemd-sysv,udev,linux-image-amd64,initramfs-tools,golang-go,util-linux,procps,hostname,diffutils,ca-certificates
# Bump image_version when what goes into the image changes.
image_version=1
recipe="$suite $packages $image_version"
if [ ! -s "$image" ] || [ "$(cat "$image.recipe" 2>/dev/null)" != "$recipe" ]; then
	mirror=$(host_mirror "$suite")
	say "building the system image from $mirror (once; cached in $cache)"
	root=$work/image
	debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
		fail "debootstrap: $(tail -n 3 "$work/debootstrap.log")"
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
		# Runs the suite on the repository disk; reports on the serial console.
		exec >/dev/ttyS0 2>&1
		echo "CFS-BOOTED"
		set -u
		mkdir -p /mnt/cfs && mount -o ro LABEL=cfs-repo /mnt/cfs || { echo "CFS-ERROR no repository disk"; exit 1; }
		cp -a /mnt/cfs/repo /root/cfs && mkdir -p /root/go/pkg && cp -a /mnt/cfs/gomodcache /root/go/pkg/mod
		cd /root/cfs
		export HOME=/root GOPROXY=off GOTOOLCHAIN=local GOFLAGS=-mod=readonly
		echo "CFS-KERNEL $(uname -r)"
		echo "CFS-CGROUP $(stat -fc %T /sys/fs/cgroup)"
		echo "CFS-PROPAGATION $(findmnt -no PROPAGATION /)"
		echo "CFS-INIT $(ps -o comm= -p 1)"
		start=$(date +%s)
		go test -count=1 -v ./... >/root/test.log 2>&1
		status=$?
		cat /root/test.log
		count() { grep -cE -- "^\s*--- $1" /root/test.log; }
		echo "CFS-RESULT status=$status passed=$(count PASS) skipped=$(count SKIP) failed=$(count FAIL) seconds=$(($(date +%s) - start))"
	EOF
	chmod +x "$root/usr/local/bin/cfs-test"
	chroot "$root" systemctl enable cfs-test.service >/dev/null 2>&1
	chroot "$root" systemctl mask getty@tty1.service serial-getty@ttyS0.service >/dev/null 2>&1
	# Compile Go's standard library now, not on every boot. (go finds
	# itself through /proc.)
	# shellcheck disable=SC2016 # the inner script expands its own $1
	unshare --mount --propagation private sh -c \
		'mount -t proc proc "$1/proc" && chroot "$1" env HOME=/root GOTOOLCHAIN=local go build std' \
		systemd-vm "$root"
	if ! cp "$root"/boot/vmlinuz-* "$work/vmlinuz" || ! cp "$root"/boot/initrd.img-* "$work/initrd.img"; then
		fail "no kernel or initramfs in the image"
	fi
	mkfs.ext4 -q -F -L cfs-root -d "$root" "$work/image.img" 4G
	mv "$work/vmlinuz" "$image.vmlinuz" && mv "$work/initrd.img" "$image.initrd"
	mv "$work/image.img" "$image" && echo "$recipe" >"$image.recipe"
	rm -rf "$root"
else
	say "using the cached system image $image"
fi

# --- the repository disk, new for every run ------------------------------

say "a clean clone of $rev, with the modules it needs"
disk=$work/disk
git clone -q "$repo" "$disk/repo"
git -C "$disk/repo" checkout -q "$(git -C "$repo" rev-parse --verify "$rev^{commit}")"
(cd "$disk/repo" && GOMODCACHE="$disk/gomodcache" GOFLAGS=-modcacherw go mod download) ||
	fail "go mod download: the modules must come from the Go module proxy, before the VM starts"
mkfs.ext4 -q -F -L cfs-repo -d "$disk" "$work/repo.img" 512M

# --- boot, test, power off ---------------------------------------------

# KVM when this machine can lend its processor's virtualization to a guest:
# /dev/kvm alone is not enough (nested under another hypervisor it may exist
# and still fail), so a KVM boot that fails falls back to emulation.
boot() {
	local accel=$1
	local -a cpu=(-accel "tcg,thread=multi") # QEMU's default CPU: emulated "max" crashed Debian's kernel once
	[ "$accel" = kvm ] && cpu=(-accel kvm -cpu host)
	say "booting with $accel, 2 CPUs, 2 GiB; at most ${limit}s"
	: >"$serial"
	qemu-system-x86_64 "${cpu[@]}" -smp 2 -m 2048 -nodefaults -display none -no-reboot \
		-kernel "$image.vmlinuz" -initrd "$image.initrd" \
		-append "root=LABEL=cfs-root rw console=ttyS0 quiet systemd.show_status=0 panic=-1" \
		-drive "file=$image,format=raw,if=virtio,snapshot=on" \
		-drive "file=$work/repo.img,format=raw,if=virtio,readonly=on" \
		-serial "file:$serial" -nic none 2>"$work/qemu.log" &
	qemu_pid=$!
	local waited=0
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
		# Booting takes well under a minute, emulated; the rest is the suite.
		if [ "$waited" -ge 300 ] && ! grep -q CFS-BOOTED "$serial"; then
			break
		fi
		sleep 1
		waited=$((waited + 1))
	done
	kill -9 "$qemu_pid" 2>/dev/null || true
	wait "$qemu_pid" 2>/dev/null || true
	qemu_pid=
}
limit=${CFS_VM_TIMEOUT:-1200}
serial=$work/serial.log
timed_out=
accel=tcg
if [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
	accel=kvm
fi
boot "$accel"
if [ "$accel" = kvm ] && ! grep -q CFS-BOOTED "$serial"; then
	say "KVM could not run the VM ($(grep -m1 -E 'KVM|kvm|error' "$work/qemu.log" || echo 'no boot')): emulating instead"
	accel=tcg
	timed_out=
	boot tcg
fi
# An emulated machine may, rarely, fail its boot; one more try tells that
# from an image that cannot boot.
if ! grep -q CFS-BOOTED "$serial" && [ -z "$timed_out" ]; then
	say "the VM did not boot ($(grep -a -m1 -E 'Kernel panic|panic' "$serial" | tr -d '\r' || echo 'no sign of the test unit')): once more"
	boot "$accel"
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
	fail "the suite did not finish${timed_out:+ within ${limit}s}$(field ERROR | sed 's/^/: /')"
fi
tr -d '\r' <"$serial" | grep -E -- '^(ok|FAIL|panic)\s|CPU share' || true
if grep -qE -- '^\s*--- (FAIL|SKIP)' "$serial"; then
	echo "$name: what failed or was skipped:"
	tr -d '\r' <"$serial" | grep -E -B15 -A3 -- '^\s*--- (FAIL|SKIP)' | head -n 300
fi
eval "$(echo "$result" | tr ' ' '\n' | grep -E '^(status|passed|skipped|failed|seconds)=[0-9]+$')"
cat <<EOF
$name: $accel; kernel $(field KERNEL), cgroup $(field CGROUP), / $(field PROPAGATION), init $(field INIT)
$name: tests and subtests: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped; suite ${seconds:-?}s, whole run $((SECONDS - started))s
EOF
[ "${passed:-0}" -gt 0 ] || fail "zero tests ran"
[ "${skipped:-0}" -eq 0 ] || fail "tests were skipped inside the VM, as root"
[ "${status:-1}" -eq 0 ] || fail "the suite failed inside the VM (status $status)"
say "passed"
