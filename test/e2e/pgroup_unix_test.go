//go:build unix

package e2e

import (
	"os/exec"
	"syscall"
)

// inGroup makes cmd the leader of a new process group, so signalGroup
// reaches whatever a shell started, not only the shell.
func inGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// signalGroup signals the process group cmd leads.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) { syscall.Kill(-cmd.Process.Pid, sig) }
