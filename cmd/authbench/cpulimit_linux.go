package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// limitCPU holds process pid to cores of CPU time (a CFS quota) in a
// cgroup of its own, as if it ran on a machine of that size, until release
// moves it back and removes the group. It needs root and the cgroup cpu
// controller: v1 (/sys/fs/cgroup/cpu) or v2 (/sys/fs/cgroup with cpu in
// its controllers and none of its own processes to keep from a child).
func limitCPU(pid int, cores float64) (release func(), err error) {
	const period = 100_000 // µs
	quota := int(cores * period)
	name := fmt.Sprintf("authbench-%d", pid)
	pidText := []byte(strconv.Itoa(pid))
	root, v2 := "/sys/fs/cgroup/cpu", false
	if c, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && bytes.Contains(c, []byte("cpu")) {
		root, v2 = "/sys/fs/cgroup", true
		if err := os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("+cpu"), 0); err != nil {
			return nil, fmt.Errorf("cgroup v2: delegating the cpu controller: %w", err)
		}
	} else if _, err := os.Stat(filepath.Join(root, "cpu.cfs_quota_us")); err != nil {
		return nil, errors.New("no cgroup cpu controller at /sys/fs/cgroup/cpu (v1) or /sys/fs/cgroup (v2)")
	}
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("making a cgroup (needs root): %w", err)
	}
	remove := func() {
		// The group can be removed once its process has left it.
		for range 50 {
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var limits map[string]string
	if v2 {
		limits = map[string]string{"cpu.max": fmt.Sprintf("%d %d", quota, period)}
	} else {
		limits = map[string]string{"cpu.cfs_period_us": strconv.Itoa(period), "cpu.cfs_quota_us": strconv.Itoa(quota)}
	}
	for file, v := range limits {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0); err != nil {
			remove()
			return nil, fmt.Errorf("cgroup %s: %w", file, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), pidText, 0); err != nil {
		remove()
		return nil, fmt.Errorf("moving authd into its cgroup: %w", err)
	}
	return func() {
		os.WriteFile(filepath.Join(root, "cgroup.procs"), pidText, 0)
		remove()
	}, nil
}
