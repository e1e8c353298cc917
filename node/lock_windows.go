package node

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

// lockEnforced reports whether lockExclusive keeps a second node out.
const lockEnforced = true

// lockExclusive locks f without waiting; Windows drops the lock when the
// process exits, however it exits. The lock covers one byte far past the
// process ID that the file holds, which others may then still read: a
// Windows lock also keeps other processes from reading what it covers.
func lockExclusive(f *os.File) error {
	ol := windows.Overlapped{OffsetHigh: 1}
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return ErrLocked
	}
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	return nil
}
