//go:build !windows && !plan9

package main

import (
	"os"
	"syscall"
	"testing"
)

// sigstop stops a process until sigcont (SIGSTOP); both it and its embedded
// NATS server stop answering.
func sigstop(t *testing.T, p *os.Process) error {
	t.Helper()
	return p.Signal(syscall.SIGSTOP)
}

// sigcont lets a paused process run again (SIGCONT).
func sigcont(p *os.Process) error { return p.Signal(syscall.SIGCONT) }
