//go:build !linux

package main

import (
	"errors"
	"os/exec"
)

func dieWithParent(cmd *exec.Cmd) {}

func limitCPU(pid int, cores float64) (release func(), err error) {
	return nil, errors.New("-instance-cpu needs Linux cgroups")
}
