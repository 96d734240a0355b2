#!/bin/bash
# Runs inside the systemd VM that vm/systemd-vm-test.sh boots, from the
# clone of the repository, as root; reports on the serial console (the
# VM's unit sends our output there): the suite, then the mutants that only
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
if [ -d /mnt/cfs/tests ]; then
	# An image with no Go (arm64): the tests were built for this processor
	# by systemd-vm-test.sh, with the ones to run in tests/PACKAGE.run or
	# tests/run (all if neither).
	status=0
	: >/root/test.log
	for test in /mnt/cfs/tests/*.test; do
		pkg=$(basename "$test" .test)
		run=$(cat "/mnt/cfs/tests/$pkg.run" 2>/dev/null || cat /mnt/cfs/tests/run 2>/dev/null)
		began=$(date +%s)
		if (cd "$pkg" && "$test" -test.v -test.timeout=15m ${run:+-test.run "$run"}) >>/root/test.log 2>&1; then
			printf 'ok  \t%s\t%ss\n' "$pkg" $(($(date +%s) - began)) >>/root/test.log
		else
			printf 'FAIL\t%s\n' "$pkg" >>/root/test.log
			status=1
		fi
		echo "CFS-PROGRESS $(tail -n1 /root/test.log)" # the log comes after them all
	done
else
	# The workshop's tests build every step for two processors and run
	# whole step suites once more, and the pages' runs (bench's, the
	# workshop's) do the same: the host and the fresh Debian 13 run them;
	# here, in an emulated machine, they took a quarter of CI's hour, and
	# the steps' own suites run on cgroup v2 all the same.
	mapfile -t packages < <(go list ./... | grep -v '/workshop$')
	go test -count=1 -v -timeout 30m -skip 'TestThePageRuns' "${packages[@]}" >/root/test.log 2>&1
	status=$?
fi
cat /root/test.log
count() { grep -cE -- "^\s*--- $1" /root/test.log; }
echo "CFS-RESULT status=$status passed=$(count PASS) skipped=$(count SKIP) failed=$(count FAIL) seconds=$(($(date +%s) - start))"
if ! command -v go >/dev/null; then
	echo "CFS-MUTANTS none: there is no Go here to make them"
	exit 0
fi
# An emulated machine is slow: a test waits for a command up to 60 s.
go run ./internal/mutants -only cgroup-v2 -timeout 60s >/root/mutants.log 2>&1
status=$?
cat /root/mutants.log
echo "CFS-MUTANTS status=$status $(tail -n1 /root/mutants.log)"
