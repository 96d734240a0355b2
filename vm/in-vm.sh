#!/bin/bash
# Runs inside the systemd VM that vm/systemd-vm-test.sh boots, from the
# clone of the repository, as root; reports on the serial console (the
# VM's unit sends our output there): the tests, then the mutants that only
# cgroup v2 shows (internal/mutants).
set -u
export HOME=/root GOPROXY=off GOTOOLCHAIN=local GOFLAGS=-mod=readonly
echo "CFS-KERNEL $(uname -r)"
echo "CFS-CGROUP $(stat -fc %T /sys/fs/cgroup)"
echo "CFS-PROPAGATION $(findmnt -no PROPAGATION /)"
echo "CFS-INIT $(ps -o comm= -p 1)"
# A user with a systemd user manager (which needs PAM's systemd-user, from
# libpam-systemd), as a learner has: the tests start
# step10 in a scope of its, as the page does (TestLimitsHoldInADelegatedCgroup).
if ! { useradd --uid 3333 --user-group --create-home learner && systemctl start user@3333.service; }; then
	systemctl status --no-pager user@3333.service | tail -n 5
	echo "CFS-ERROR no systemd user manager for uid 3333"
fi
start=$(date +%s)
# The tests were built for this processor by systemd-vm-test.sh: the
# packages of tests/list, in order, tests/jobs at a time, each in its own
# folder of the clone, with tests/NAME.run and tests/NAME.skip as -test.run
# and -test.skip (NAME: the package's path, with + for /).
tests=/mnt/cfs/tests
mkdir -p /root/logs
one() {
	local pkg=$1 name=${1//\//+} run skip began
	run=$(cat "$tests/$name.run" 2>/dev/null)
	skip=$(cat "$tests/$name.skip" 2>/dev/null)
	began=$(date +%s)
	if (cd "$pkg" && "$tests/$name.test" -test.v -test.timeout=20m ${run:+-test.run "$run"} ${skip:+-test.skip "$skip"}) >"/root/logs/$name" 2>&1; then
		printf 'ok  \t%s\t%ss\n' "$pkg" $(($(date +%s) - began)) >>"/root/logs/$name"
	else
		printf 'FAIL\t%s\n' "$pkg" >>"/root/logs/$name"
	fi
	echo "CFS-PROGRESS $(tail -n1 "/root/logs/$name")" # the logs come after them all
	case $(tail -n1 "/root/logs/$name") in ok*) ;; *) return 1 ;; esac
}
status=0
jobs=$(cat "$tests/jobs" 2>/dev/null || echo 1)
running=0
mapfile -t packages <"$tests/list"
for pkg in "${packages[@]}"; do
	if [ "$running" -ge "$jobs" ]; then
		wait -n || status=1
		running=$((running - 1))
	fi
	one "$pkg" &
	running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
	wait -n || status=1
	running=$((running - 1))
done
for pkg in "${packages[@]}"; do cat "/root/logs/${pkg//\//+}"; done >/root/test.log
cat /root/test.log
count() { grep -cE -- "^\s*--- $1" /root/test.log; }
echo "CFS-RESULT status=$status passed=$(count PASS) skipped=$(count SKIP) failed=$(count FAIL) seconds=$(($(date +%s) - start))"
if [ ! -x /mnt/cfs/mutants/mutants ]; then
	echo "CFS-MUTANTS none: systemd-vm-test.sh built none for this processor"
	exit 0
fi
# Their tests were built by systemd-vm-test.sh too. An emulated machine is
# slow: a test waits for a command up to 60 s.
/mnt/cfs/mutants/mutants -only cgroup-v2 -timeout 60s -built /mnt/cfs/mutants >/root/mutants.log 2>&1
status=$?
cat /root/mutants.log
echo "CFS-MUTANTS status=$status $(grep '^mutants: ' /root/mutants.log | tail -n1)"
