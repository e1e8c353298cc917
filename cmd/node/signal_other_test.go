//go:build windows || plan9

package main

import (
	"os"
	"testing"
)

// sigstop skips the test: this system cannot stop a process and let it run
// again by a signal.
func sigstop(t *testing.T, _ *os.Process) error {
	t.Helper()
	t.Skip("no SIGSTOP on this system")
	return nil
}

func sigcont(*os.Process) error { return nil }
