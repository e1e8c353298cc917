//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package node

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// lockEnforced reports whether lockExclusive keeps a second node out.
const lockEnforced = true

// lockExclusive takes an advisory lock on f without waiting; the kernel
// drops it when the process exits, however it exits.
func lockExclusive(f *os.File) error {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return ErrLocked
	}
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	return nil
}
