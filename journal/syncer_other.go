//go:build !linux

package journal

import (
	"errors"
	"os"
)

// HasSyncer reports whether NewSyncer works here: it needs Linux's
// syncfs(2), which no other system has. Flushing each file of the store
// instead would race the server, which creates, renames and removes them
// as it writes; the server's own sync of every write is the portable way.
const HasSyncer = false

var errNoSyncfs = errors.New("journal: syncer: no syncfs(2) on this system; the server must sync every write itself")

func syncfs(*os.File) error { return errNoSyncfs }
