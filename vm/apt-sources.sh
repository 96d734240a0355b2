# Sourced by .ci/run: what this machine's apt sources say.
# shellcheck shell=bash

# debian_uri SUITE [APT-OPTION...] prints the URI of this machine's apt
# source for Debian's SUITE with its main component, the mirror it already
# uses (a local one, a proxy), or nothing if no source serves it. apt reads
# the sources itself: /etc/apt/sources.list and sources.list.d, one-line
# and deb822 entries, without the disabled ones. A CD-ROM is no mirror. The
# options (-o Dir::Etc=...) let a test point apt at other sources.
debian_uri() {
	local suite=$1
	shift
	# shellcheck disable=SC2016 # $(REPO_URI) is apt's field, not the shell's.
	apt-get "$@" indextargets --no-release-info --format '$(REPO_URI)' \
		"Release: $suite" 'Component: main' 'Target-Of: deb' 'Identifier: Packages' 2>/dev/null |
		awk '!/^cdrom:/ && !found { print; found = 1 }' || true
}
