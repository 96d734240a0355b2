# Shared by the scripts in vm/: source it, after setting $name.
# shellcheck shell=bash
: "${name:?set name before sourcing vm/lib.sh}"

say() { echo "$name: $*"; }
fail() {
	echo "$name: FAILED: $*" >&2
	exit 1
}

# host_mirror prints the first Debian archive in this machine's apt sources
# (one-line or deb822 format), and checks that it serves Debian $1.
host_mirror() {
	local suite=$1 mirror
	mirror=$(
		{
			grep -hE '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
				sed -E 's/^\s*deb\s+(\[[^]]*\]\s+)?(\S+).*/\2/'
			grep -hE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null |
				sed -E 's/^\s*URIs:\s*//' | tr ' ' '\n'
		} | grep -vE 'security|^$' | head -n1
	)
	[ -n "$mirror" ] || fail "no Debian mirror in this machine's apt sources (/etc/apt/sources.list*)"
	mirror=${mirror%/}
	curl -fsS --max-time 30 --retry 2 --retry-all-errors -o /dev/null "$mirror/dists/$suite/Release" ||
		fail "cannot reach $mirror/dists/$suite/Release: the Debian mirror of this machine's apt sources is needed"
	echo "$mirror"
}

# trust_host_cas makes the system in $1 trust what this machine trusts: its
# bundle until the system installs ca-certificates, and its local
# authorities after, when that package rebuilds the bundle.
trust_host_cas() {
	local root=$1
	mkdir -p "$root/etc/ssl/certs" "$root/usr/local/share/ca-certificates"
	cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
	if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
		cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
	fi
}

# remove_work removes the scratch directory $1. Whatever is still mounted
# below it (a debootstrap that was killed, say) is unmounted first, and
# nothing is removed through a mount that will not go: rm -rf would
# otherwise delete the host's own files through it.
remove_work() {
	local dir=$1 target
	while read -r target; do
		umount -R "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
	done < <(awk -v d="$dir" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
	if awk -v d="$dir" 'index($5, d) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
		echo "$name: mounts left under $dir: not removing it" >&2
		return 1
	fi
	rm -rf "$dir"
}

# retry runs a command that depends on something outside the project (a
# mirror, the module proxy) up to $1 times, saying so before each new try.
# A command that fails for a reason of ours fails the same way every time:
# use it only where the cause can be outside.
retry() {
	local tries=$1 try=1
	shift
	until "$@"; do
		[ "$try" -lt "$tries" ] || return 1
		try=$((try + 1))
		say "\"$*\" failed (a mirror or proxy slow to answer?): try $try of $tries"
		sleep $((try * 5))
	done
}
