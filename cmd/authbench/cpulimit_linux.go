package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// limitCPU holds process pid to cores of CPU time (a CFS quota) in a
// cgroup of its own, as if it ran on a machine of that size, until release
// moves it back to the group it came from and removes its own. It needs
// root and the cgroup cpu controller: v1 (/sys/fs/cgroup/cpu) or v2
// (/sys/fs/cgroup with cpu among its controllers). Groups left by an
// authbench that was killed are removed first.
func limitCPU(pid int, cores float64) (release func(), err error) {
	const period = 100_000 // µs
	quota := int(cores * period)
	root, v2 := "/sys/fs/cgroup/cpu", false
	if c, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && slices.Contains(strings.Fields(string(c)), "cpu") {
		root, v2 = "/sys/fs/cgroup", true
		if err := os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("+cpu"), 0); err != nil {
			return nil, fmt.Errorf("cgroup v2: delegating the cpu controller: %w", err)
		}
	} else if _, err := os.Stat(filepath.Join(root, "cpu.cfs_quota_us")); err != nil {
		return nil, errors.New("no cgroup cpu controller at /sys/fs/cgroup/cpu (v1) or /sys/fs/cgroup (v2)")
	}
	removeStale(root)
	from, err := cgroupOf(pid, v2)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, fmt.Sprintf("authbench-%d", pid))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("making a cgroup (needs root): %w", err)
	}
	var limits map[string]string
	if v2 {
		limits = map[string]string{"cpu.max": fmt.Sprintf("%d %d", quota, period)}
	} else {
		limits = map[string]string{"cpu.cfs_period_us": strconv.Itoa(period), "cpu.cfs_quota_us": strconv.Itoa(quota)}
	}
	for file, v := range limits {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0); err != nil {
			removeGroup(dir)
			return nil, fmt.Errorf("cgroup %s: %w", file, err)
		}
	}
	pidText := []byte(strconv.Itoa(pid))
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), pidText, 0); err != nil {
		removeGroup(dir)
		return nil, fmt.Errorf("moving authd into its cgroup: %w", err)
	}
	return func() {
		os.WriteFile(filepath.Join(root, from, "cgroup.procs"), pidText, 0)
		removeGroup(dir)
	}, nil
}

// cgroupOf is the path, under the hierarchy's root, of the cpu cgroup pid
// is in (/proc/PID/cgroup: "0::PATH" on v2, "N:cpu,cpuacct:PATH" on v1).
func cgroupOf(pid int, v2 bool) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		if v2 && f[0] == "0" || !v2 && slices.Contains(strings.Split(f[1], ","), "cpu") {
			return f[2], nil
		}
	}
	return "", fmt.Errorf("process %d: no cpu cgroup in /proc/%d/cgroup", pid, pid)
}

// removeStale removes the groups of authbench processes that no longer
// run (an authd killed with its authbench leaves its group empty).
func removeStale(root string) {
	dirs, _ := filepath.Glob(filepath.Join(root, "authbench-*"))
	for _, d := range dirs {
		if procs, err := os.ReadFile(filepath.Join(d, "cgroup.procs")); err == nil && len(bytes.TrimSpace(procs)) == 0 {
			os.Remove(d)
		}
	}
}

// removeGroup removes a cgroup once the process moved out has left it.
func removeGroup(dir string) {
	for range 50 {
		if os.Remove(dir) == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
