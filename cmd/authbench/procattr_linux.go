package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel end a child process when authbench dies, so
// that an interrupted run leaves no authd or bare handler behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
