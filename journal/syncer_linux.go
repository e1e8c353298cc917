package journal

import (
	"os"

	"golang.org/x/sys/unix"
)

// HasSyncer reports whether NewSyncer works here: it needs Linux's
// syncfs(2).
const HasSyncer = true

// errNoSyncfs is unused on Linux.
var errNoSyncfs error

// syncfs flushes the file system that holds dir to disk.
func syncfs(dir *os.File) error { return unix.Syncfs(int(dir.Fd())) }
