package steptest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The checks below hold the cgroups of steps 06-10 to what the pages
// promise: that -cpus F gives F processors, that a cgroup that could not
// be made whole is not left behind, that its errors say which file the
// kernel refused, and that runs that clean up never take the cgroup of one
// being made.

// CPUQuotaGivesWhatCpusAsks runs busy loops under -cpus F and measures,
// from the cgroup's own count of the CPU time it used, the processors they
// get: about F, neither more nor less. The quota is read too: whatever
// period run picks, quota/period must be F. A busy machine may give the
// loops less than their quota in a window, whatever their weight
// (favourCPU): a window counts only when the quota itself held them back
// in most of its periods (cpu.stat's nr_throttled against nr_periods), and
// another window is measured until one does.
func CPUQuotaGivesWhatCpusAsks(t *testing.T, s *Step) {
	RequireRoot(t)
	for _, c := range []struct {
		cpus  string
		want  float64
		loops int // more loops than the quota's processors, on 2 or more
	}{{"0.5", 0.5, 1}, {"1", 1, 2}} {
		t.Run("-cpus "+c.cpus, func(t *testing.T) {
			script := "echo ready; " + strings.Repeat("(while :; do :; done) & ", c.loops) + "wait"
			p := Start(t, s.Command(t, s.RunArgs("-cpus", c.cpus, "sh", "-c", script)...))
			p.WaitFor(t, "ready")
			dirs := cgroupDirs(t, p.Cmd.Process.Pid)
			favourCPU(t, dirs["cpu"])
			quota, period := cpuQuota(t, dirs)
			assert.InDelta(t, c.want, quota/period, 0.001, "quota %v / period %v", quota, period)
			share, held := 0.0, false
			for try := 0; try < 5 && !held; try++ {
				usage0, periods0, throttled0 := cpuPeriods(t, dirs)
				start := time.Now()
				time.Sleep(2 * time.Second)
				usage, periods, throttled := cpuPeriods(t, dirs)
				share = (usage - usage0).Seconds() / time.Since(start).Seconds()
				held = periods > periods0 && (throttled-throttled0)*10 >= (periods-periods0)*8
				t.Logf("-cpus %s: share %.2f, throttled in %d of %d periods", c.cpus, share, throttled-throttled0, periods-periods0)
			}
			require.NoError(t, unix.Kill(ChildPID(t, p.Cmd.Process.Pid), unix.SIGKILL))
			p.Wait(t)
			require.True(t, held, "the quota never held the loops back: no quota, or one that no loop reaches")
			assert.GreaterOrEqual(t, share, 0.8*c.want, "-cpus %s gave less than it asks", c.cpus)
			assert.LessOrEqual(t, share, 1.2*c.want, "-cpus %s gave more than it asks", c.cpus)
		})
	}
}

// cpuQuota reads the CPU time a cgroup may use in each period, and the
// period, in microseconds.
func cpuQuota(t *testing.T, dirs map[string]string) (quota, period float64) {
	t.Helper()
	var q, p string
	if dirs["cpu"] == dirs["cpuacct"] { // v2: "QUOTA PERIOD", or "max PERIOD"
		q, p, _ = strings.Cut(strings.TrimSpace(readFile(t, dirs["cpu"]+"/cpu.max")), " ")
	} else {
		q = strings.TrimSpace(readFile(t, dirs["cpu"]+"/cpu.cfs_quota_us"))
		p = strings.TrimSpace(readFile(t, dirs["cpu"]+"/cpu.cfs_period_us"))
	}
	quota, err := strconv.ParseFloat(q, 64)
	require.NoError(t, err, "no quota: %s", q)
	period, err = strconv.ParseFloat(p, 64)
	require.NoError(t, err)
	return quota, period
}

// cpuPeriods reads the CPU time a cgroup used, the quota periods it has
// run in, and in how many of them its quota held it back.
func cpuPeriods(t *testing.T, dirs map[string]string) (time.Duration, int, int) {
	t.Helper()
	usage, throttled := cpuStats(t, dirs)
	for _, line := range strings.Split(readFile(t, dirs["cpu"]+"/cpu.stat"), "\n") {
		if v, ok := strings.CutPrefix(line, "nr_periods "); ok {
			periods, err := strconv.Atoi(v)
			require.NoError(t, err)
			return usage, periods, throttled
		}
	}
	t.Fatalf("no nr_periods in %s/cpu.stat", dirs["cpu"])
	return 0, 0, 0
}

// cgroupWrite finds, in strace's log (written with -y, which names the
// file of each descriptor), a write to a file of the cgroup hierarchy, and
// whether strace made it fail.
var cgroupWrite = regexp.MustCompile(`(?m)^\d+ +write\(\d+</sys/fs/cgroup/([^>]*)>.*?( \(INJECTED\))?$`)

// eachCgroupWriteFailing runs the step's program once for each file that
// run writes to make the container's cgroup, with the write to that file,
// and no other, failing as the kernel fails one whose value it refuses
// (EINVAL). It calls check with what run did, the file, and the cgroup
// directories that run could have made. A first run, traced, tells which
// files run writes; each limit the page names must be among them.
//
// strace picks the write by its file (-P), which is named after run's PID
// and start time: run is started from a shell that stops itself first, so
// that strace can be attached to it, knowing both, before run starts. (A
// write picked by its number instead, strace's when=N, counts per thread:
// on a busy machine Go moves run between threads, and misses some files.)
func eachCgroupWriteFailing(t *testing.T, s *Step, check func(t *testing.T, r Result, file string, dirs []string)) {
	RequireRoot(t)
	// A first run makes the cgroups' parents, and a second, traced, tells
	// which files run writes.
	r := s.Run(t, "true")
	require.Equal(t, 0, r.Status, r.Stderr)
	_, name, log := s.writesTraced(t, "")
	var files []string // as "%s/PATH", %s for the cgroup's name
	for _, m := range cgroupWrite.FindAllStringSubmatch(log, -1) {
		file := strings.Replace(m[1], name, "%s", 1)
		if !slices.Contains(files, file) {
			files = append(files, file)
		}
	}
	for _, limit := range []string{"pids.max", "memory.max|memory.limit_in_bytes", "cpu.max|cpu.cfs_quota_us"} {
		assert.True(t, slices.ContainsFunc(files, func(f string) bool {
			return regexp.MustCompile(`/(` + limit + `)$`).MatchString(f)
		}), "run never writes %s: %v", limit, files)
	}
	for _, file := range files {
		t.Run(strings.Replace(file, "containers-from-scratch/%s/", "", 1), func(t *testing.T) {
			r, name, log := s.writesTraced(t, "/sys/fs/cgroup/"+file)
			require.Contains(t, log, "(INJECTED)", "run never wrote %s: %s", file, r.Stderr)
			// The cgroup directories of this run, in every hierarchy.
			dirs, err := filepath.Glob("/sys/fs/cgroup/containers-from-scratch/" + name)
			require.NoError(t, err)
			more, err := filepath.Glob("/sys/fs/cgroup/*/containers-from-scratch/" + name)
			require.NoError(t, err)
			check(t, r, filepath.Base(file), append(dirs, more...))
		})
	}
}

// writesTraced runs "run true" with strace tracing its writes, and its
// child's, and returns what run did, the name of its cgroup and strace's
// log. With a file, whose "%s" stands for the cgroup's name, strace traces
// the writes to that file alone, and makes them fail with EINVAL.
func (s *Step) writesTraced(t *testing.T, file string) (r Result, name, log string) {
	t.Helper()
	_, err := exec.LookPath("strace")
	require.NoError(t, err, "strace is needed to make one write fail (apt-get install strace)")
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	t.Cleanup(cancel)
	// The shell stops, then becomes run: same PID, same start time.
	argv := append([]string{"-c", `kill -STOP $$; exec "$@"`, "sh", "env"}, Plain(s.Bin, s.RunArgs("true")...)...)
	cmd := exec.CommandContext(ctx, "env", Plain("sh", argv...)...)
	p := Start(t, cmd)
	run := cmd.Process.Pid
	require.Eventually(t, func() bool { return stopped(run) }, patience, time.Millisecond, "the shell never stopped")
	name = cgroupName(t, run)
	log = filepath.Join(t.TempDir(), "strace.log")
	options := []string{"-f", "-qq", "-y", "-o", log, "-e", "trace=write"}
	if file != "" {
		options = append(options, "-P", strings.Replace(file, "%s", name, 1), "-e", "inject=write:error=EINVAL")
	}
	tracer := exec.CommandContext(ctx, "strace", append(options, "-p", strconv.Itoa(run))...)
	require.NoError(t, tracer.Start())
	t.Cleanup(func() {
		if tracer.ProcessState == nil {
			_ = tracer.Process.Kill()
			_ = tracer.Wait()
		}
	})
	require.Eventually(t, func() bool {
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", run))
		return strings.Contains(string(status), fmt.Sprintf("\nTracerPid:\t%d\n", tracer.Process.Pid))
	}, patience, time.Millisecond, "strace never attached")
	require.NoError(t, unix.Kill(run, unix.SIGCONT))
	r = p.Wait(t)
	require.NoError(t, tracer.Wait())
	data, err := os.ReadFile(log)
	require.NoError(t, err)
	return r, name, string(data)
}

// stopped reports whether process pid is stopped by a signal.
func stopped(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	i := bytes.LastIndexByte(stat, ')')
	return err == nil && i > 0 && i+2 < len(stat) && stat[i+2] == 'T'
}

// FailedCgroupLeavesNoCgroup makes each write that sets up the container's
// cgroup fail in turn: run must stop with an error, and leave no
// directory of the cgroup it was making behind.
func FailedCgroupLeavesNoCgroup(t *testing.T, s *Step) {
	eachCgroupWriteFailing(t, s, func(t *testing.T, r Result, file string, dirs []string) {
		assert.NotEqual(t, 0, r.Status, "run went on after a write to %s failed", file)
		assert.Empty(t, dirs, "a cgroup left behind after a write to %s failed", file)
		for _, dir := range dirs { // never left for the next test
			_ = unix.Rmdir(dir)
		}
	})
}

// CgroupWriteErrorsNameTheFile makes each write that sets up the
// container's cgroup fail in turn: the one line run prints must name the
// file the kernel refused, so that the learner can look it up.
func CgroupWriteErrorsNameTheFile(t *testing.T, s *Step) {
	eachCgroupWriteFailing(t, s, func(t *testing.T, r Result, file string, _ []string) {
		OneLine(t, r.Stderr)
		assert.Contains(t, r.Stderr, file, "the error does not say which file the kernel refused")
		assert.Contains(t, r.Stderr, "invalid argument")
	})
}

// OtherRunsLeaveACgroupBeingMadeAlone stops a run just after it made the
// directory of its cgroup, before it locks it, and starts another run,
// which cleans up what killed runs left: until the first run holds its
// lock, the other must wait for the parent, which the first holds, and
// not take the new directory for one a killed run left. Both must then
// run their containers.
func OtherRunsLeaveACgroupBeingMadeAlone(t *testing.T, s *Step) {
	RequireRoot(t)
	// A first run makes the cgroups' parents, so that the one mkdirat
	// left is the container's own cgroup's.
	r := s.Run(t, "true")
	require.Equal(t, 0, r.Status, r.Stderr)
	p, run := s.RunStoppedAt(t, unix.SYS_MKDIRAT, s.RunArgs("true")...)
	StoppedIn(t, p.Log, run, unix.SYS_MKDIRAT)
	other := Start(t, s.Command(t, s.RunArgs("true")...))
	// The other run either waits for the parent's lock, or, where the lock
	// does not keep it out, has cleaned up and run its container already.
	waiting := func() bool {
		for _, task := range tasks(other.Cmd.Process.Pid) {
			call, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", other.Cmd.Process.Pid, task))
			if strings.HasPrefix(string(call), strconv.Itoa(unix.SYS_FLOCK)+" ") {
				return true
			}
		}
		return false
	}
	require.Eventually(t, func() bool {
		return waiting() || Gone(other.Cmd.Process.Pid) // Gone: ended, or a zombie
	}, patience, time.Millisecond, "the other run never got to cleaning up")
	// On cgroup v1 each hierarchy has its own mkdirat, which strace stops
	// once per thread: let run go on each time.
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			_ = unix.Kill(run, unix.SIGCONT)
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	r = p.Wait(t)
	assert.Equal(t, 0, r.Status, "the run stopped after making its cgroup: %s", r.Stderr)
	r = other.Wait(t)
	assert.Equal(t, 0, r.Status, "the other run: %s", r.Stderr)
}
