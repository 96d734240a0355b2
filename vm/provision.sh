#!/usr/bin/env bash
# Makes a Debian 13 machine ready for the workshop: Go at the version go.mod
# needs, git, what the tests use, the root filesystem built, and a shell that
# starts in the repository. Run as root:
#
#   vm/provision.sh [--rootfs-on DIR] REPO_DIR [USER]
#
# REPO_DIR is the repository (the Vagrantfile shares it as /vagrant); USER is
# the workshop user, vagrant by default, who must be able to use sudo. With
# --rootfs-on, the root filesystem lives in DIR, on the VM's own disk, and is
# bind-mounted at REPO_DIR/rootfs: a shared folder may hold neither device
# files nor links (Lima's vm/cfs.yaml does this; the mount lasts until the
# next boot, where Lima runs this script again). Running it again changes
# nothing and succeeds. When a step fails, it says which.
set -Eeuo pipefail

usage="usage: provision.sh [--rootfs-on DIR] REPO_DIR [USER]"
rootfs_on=
if [ "${1:-}" = --rootfs-on ]; then
	rootfs_on=${2:?$usage}
	shift 2
fi
repo=${1:?$usage}
user=${2:-vagrant}
doing="starting"
trap 'echo "provision: FAILED while $doing (line $LINENO)" >&2' ERR
step() {
	doing=$1
	echo "provision: $doing"
}

[ "$(id -u)" = 0 ] || { echo "provision: run as root" >&2; exit 1; }
[ -f "$repo/go.mod" ] || { echo "provision: $repo has no go.mod: is it the repository?" >&2; exit 1; }
id "$user" >/dev/null 2>&1 || { echo "provision: no user $user" >&2; exit 1; }
as_user() { runuser -u "$user" -- env HOME="$(getent passwd "$user" | cut -d: -f6)" "$@"; }

step "installing Go, git and what the tests use"
export DEBIAN_FRONTEND=noninteractive
packages=(golang-go git sudo ca-certificates procps hostname util-linux diffutils strace iproute2 iputils-ping uidmap)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	# A mirror that is slow to answer gets a few more tries.
	apt-get -o Acquire::Retries=3 update -qq
	apt-get -o Acquire::Retries=3 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

step "checking that Go is new enough for go.mod"
want=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$repo/go.mod")
have=$(go env GOVERSION)
have=${have#go}
if [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1)" != "$want" ]; then
	# Debian's Go never downloads a toolchain by itself (GOTOOLCHAIN=local);
	# this lets it fetch the one go.mod names through the Go module proxy.
	echo "provision: Go $have is older than go.mod's $want: letting go fetch go$want"
	as_user go env -w GOTOOLCHAIN=auto
	go env -w GOTOOLCHAIN=auto
fi
as_user go version

step "letting $user run the steps as root (sudo, go run -exec sudo)"
if ! as_user sudo -n true; then
	echo "provision: $user cannot use sudo without a password, as Vagrant boxes allow" >&2
	false
fi
# sudo sets a PATH of its own; Debian's go is in /usr/bin, which it keeps.
as_user sudo -n sh -c 'command -v go' >/dev/null

step "downloading the Go modules the course uses"
# The module proxy is outside: a slow answer gets two more tries.
for try in 1 2 3; do
	(cd "$repo" && as_user go mod download) && break
	[ "$try" -lt 3 ] || { echo "provision: FAILED while $doing: the Go module proxy did not answer" >&2; exit 1; }
	echo "provision: the Go module proxy did not answer: trying again"
	sleep $((try * 5))
done

if [ -n "$rootfs_on" ]; then
	step "keeping the root filesystem on the VM's disk: $rootfs_on, mounted at $repo/rootfs"
	mkdir -p "$rootfs_on" "$repo/rootfs"
	chown "$user:$(id -gn "$user")" "$rootfs_on"
	mountpoint -q "$repo/rootfs" || mount --bind "$rootfs_on" "$repo/rootfs"
fi

step "building the root filesystem in $repo/rootfs"
(cd "$repo" && as_user go run ./mkrootfs && as_user go run -exec 'sudo -n' ./mkrootfs)

step "making a shell in the VM start in the repository"
profile="$(getent passwd "$user" | cut -d: -f6)/.bashrc"
line="cd $(printf %q "$repo") # added by containers-from-scratch's vm/provision.sh"
grep -qxF "$line" "$profile" 2>/dev/null || echo "$line" >>"$profile"
chown "$user:" "$profile"

doing="finishing"
cat <<EOF
provision: ready. Next, from the repository on your machine:
  vagrant ssh   (or, with Lima: limactl shell cfs)
and then, in the VM (you start in $repo):
  go run -exec sudo ./step05-proc run sh
  go test -exec sudo ./...
EOF
