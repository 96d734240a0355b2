#!/usr/bin/env bash
# Proves the workshop setup on a brand-new Debian 13 system instead of
# trusting this machine: bootstraps one with debootstrap, runs the VM's own
# provisioning script in it on a clean clone of the repository, then runs the
# README's quick start there, verbatim, as root, and its test command for
# every package but the workshop tool's. Run as root from anywhere in the
# repository:
#
#   vm/fresh-machine-test.sh
#
# The packages come from the Debian mirror that this machine's apt sources
# name. The bootstrapped base (before provisioning) is cached in
# /var/cache/containers-from-scratch between runs; a provisioned system is
# never reused. Everything else is removed at the end, also on failure.
set -Eeuo pipefail

suite=trixie # Debian 13
cache=/var/cache/containers-from-scratch
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
started=$SECONDS

name=fresh-machine
# shellcheck source=vm/lib.sh
. "$repo/vm/lib.sh"
[ "$(id -u)" = 0 ] || fail "run as root: debootstrap, chroot and the tests need it"
for tool in debootstrap unshare curl git; do
	command -v "$tool" >/dev/null || fail "$tool is missing (apt-get install debootstrap util-linux curl git)"
done

mirror=$(host_mirror "$suite")
say "mirror $mirror, Debian $suite"

work=$(mktemp -d /var/tmp/cfs-fresh-machine.XXXXXX)
root=$work/root
inside=
cleanup() {
	# The system inside must be gone before its files go: its mounts live
	# in a namespace of its own, which ends with its last process.
	if [ -n "$inside" ]; then
		kill -9 "$inside" 2>/dev/null || true
		wait "$inside" 2>/dev/null || true
	fi
	remove_work "$work"
}
trap cleanup EXIT

base=$cache/debian-$suite-base.tar
if [ ! -s "$base" ] || [ "$(cat "$base.mirror" 2>/dev/null)" != "$mirror" ]; then
	say "bootstrapping a minimal Debian $suite (cached afterwards in $cache)"
	mkdir -p "$cache"
	bootstrap() { rm -rf "$root" && debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; }
	retry 3 bootstrap || fail "debootstrap: $(tail -n 3 "$work/debootstrap.log")"
	tar -C "$root" -cf "$base.new" .
	mv "$base.new" "$base"
	echo "$mirror" >"$base.mirror"
else
	say "using the cached base $base"
	mkdir "$root"
	tar -C "$root" -xf "$base"
fi

say "the machine as a Vagrant box leaves it: a vagrant user with sudo, the repository in /vagrant"
cp /etc/resolv.conf "$root/etc/resolv.conf"
echo "127.0.1.1 $(hostname)" >>"$root/etc/hosts" # for sudo, in our UTS namespace
trust_host_cas "$root"
chroot "$root" useradd --create-home --shell /bin/bash vagrant
mkdir -p "$root/etc/sudoers.d"
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/vagrant"
chmod 0440 "$root/etc/sudoers.d/vagrant"
git clone -q "$repo" "$root/vagrant"
chroot "$root" chown -R vagrant: /vagrant

say "and a machine as Lima's vm/cfs.yaml leaves it: the Mac's user (ada, uid 501, home /home/ada.guest) with sudo, the repository at the Mac's path"
lima_user=ada
lima_repo=/Users/ada/containers-from-scratch
chroot "$root" useradd --key UID_MIN=500 --uid 501 --create-home --home-dir "/home/$lima_user.guest" --shell /bin/bash "$lima_user"
ln -s "$lima_user.guest" "$root/home/$lima_user.linux"
echo "$lima_user ALL=(ALL) NOPASSWD: ALL" >"$root/etc/sudoers.d/lima"
chmod 0440 "$root/etc/sudoers.d/lima"
mkdir -p "$root/Users/$lima_user"
git clone -q "$repo" "$root$lima_repo"
chroot "$root" chown -R "$lima_user:" "/Users/$lima_user"
# vm/cfs.yaml's provision line, with what Lima puts in its template's place.
lima_provision=$(sed -n 's/^ *exec \(.*\/vm\/provision\.sh.*\)$/\1/p' "$repo/vm/cfs.yaml")
[ -n "$lima_provision" ] || fail "no provision line (exec .../vm/provision.sh ...) in vm/cfs.yaml"
lima_provision=${lima_provision//'{{.Param.REPO}}'/$lima_repo}
lima_provision=${lima_provision//'{{.User}}'/$lima_user}
printf '%s\n' "$lima_provision" >"$root/root/lima-provision"
printf '%s\n' "$lima_user" "$lima_repo" >"$root/root/lima-machine"

# The README's quick start (its console block) and its test command.
quickstart=$(awk '/^## Quick start/{q=1} q&&/^```console$/{c=1;next} c&&/^```$/{exit} c' "$repo/README.md")
testcmd=$(grep -m1 -E '^go test ' "$repo/README.md")
if [ -z "$quickstart" ] || [ "${testcmd%./...}" = "$testcmd" ]; then
	fail "no quick start, or no test command of ./..., found in README.md"
fi

# Inside: the provisioning, then each "$ " line of the quick start fed the
# "# " lines after it, then the test command, all as root in the clean clone.
cat >"$root/root/fresh-machine-inside.sh" <<'EOF'
set -Eeuo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
/vagrant/vm/provision.sh /vagrant vagrant
echo "fresh-machine: provisioning again must change nothing"
again=$(/vagrant/vm/provision.sh /vagrant vagrant 2>&1) || { echo "$again"; exit 1; }
if ! grep -q '(0 written)' <<<"$again" || [ "$(grep -c 'vm/provision.sh' /home/vagrant/.bashrc)" != 1 ]; then
	echo "$again"
	echo "fresh-machine: the second provisioning changed something" >&2
	exit 1
fi
cd /vagrant
cmd= input=
run() {
	if [ -n "$cmd" ]; then
		echo "fresh-machine: \$ $cmd"
		printf '%s' "$input" | bash -c "$cmd"
	fi
}
while IFS= read -r line; do
	case $line in
	'$ '*) run; cmd=${line#\$ } input= ;;
	'#'*) input+="${line#\# }"$'\n' ;;
	esac
done </root/quickstart
run

{ read -r lima_user; read -r lima_repo; } </root/lima-machine
echo "fresh-machine: as Lima provisions at each boot: $(cat /root/lima-provision)"
bash -c "$(cat /root/lima-provision)"
again=$(bash -c "$(cat /root/lima-provision)" 2>&1) || { echo "$again"; exit 1; }
if ! grep -q '(0 written)' <<<"$again"; then
	echo "$again"
	echo "fresh-machine: Lima's second provisioning changed something" >&2
	exit 1
fi
if ! findmnt -n "$lima_repo/rootfs" >/dev/null || [ ! -c "$lima_repo/rootfs/dev/null" ] ||
	[ "$(stat -c %U "$lima_repo/rootfs/etc/passwd")" != "$lima_user" ]; then
	echo "fresh-machine: $lima_repo/rootfs is not the VM disk's, $lima_user's, with /dev/null" >&2
	exit 1
fi
echo "fresh-machine: as $lima_user in $lima_repo: go run -exec sudo ./step05-proc run hostname"
out=$(cd "$lima_repo" && runuser -u "$lima_user" -- env HOME="/home/$lima_user.linux" go run -exec sudo ./step05-proc run hostname)
[ "$out" = container ] || { echo "fresh-machine: it printed: $out" >&2; exit 1; }

# The README's test command, for every package but the workshop tool's:
# its tests run each step's suite again, as the step packages here do,
# and take as long as the rest together; CI runs them on its own host.
# (go list stamps main packages with git's answer, which git refuses root
# in a repository that vagrant owns: -buildvcs=false.)
testcmd=$(cat /root/testcmd)
packages=$(go list -buildvcs=false ./... | grep -v '/workshop$' | sed 's|^containers-from-scratch/|./|' | tr '\n' ' ')
echo "fresh-machine: \$ $testcmd  (every package but ./workshop)"
bash -c "${testcmd%./...}$packages"
EOF
printf '%s\n' "$quickstart" >"$root/root/quickstart"
printf '%s\n' "$testcmd" >"$root/root/testcmd"

say "provisioning, quick start and tests inside (private mount and PID namespaces, the fresh system as /)"
status=0
# --kill-child: if this script dies, everything inside goes with it.
# shellcheck disable=SC2016 # the inner script expands its own $1
unshare --mount --pid --fork --kill-child --propagation private -- bash -c '
	set -e
	root=$1
	# A real machine'"'"'s / is a mount point, and step05 relies on it.
	mount --bind "$root" "$root"
	mount -t proc proc "$root/proc"
	mount --rbind /sys "$root/sys" # with the cgroup file systems in it
	mount --rbind /dev "$root/dev"
	mount -t tmpfs tmpfs "$root/tmp"
	# The fresh system becomes the root of this mount namespace, as a
	# machine'"'"'s / is, with pivot_root: a chroot leaves the mounts above
	# it in the namespace, and a container started inside could walk up
	# into them past its own pivot_root (step07'"'"'s tests would see it).
	cd "$root"
	pivot_root . .
	umount -l .
	exec /bin/bash /root/fresh-machine-inside.sh
' fresh-machine "$root" &
inside=$!
wait "$inside" || status=$?
inside=

if [ $status -ne 0 ]; then
	fail "inside the fresh system (status $status), after $((SECONDS - started))s"
fi
say "passed in $((SECONDS - started))s"
