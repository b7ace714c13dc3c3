//go:build !unix

package e2e

import (
	"os/exec"
	"syscall"
)

// Without process groups the shell steps do not run (shellSession skips).
func inGroup(*exec.Cmd) {}

func signalGroup(cmd *exec.Cmd, _ syscall.Signal) { cmd.Process.Kill() }
