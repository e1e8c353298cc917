package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// lockFile is the file in the data directory that the running node holds
// locked, with its process ID in it.
const lockFile = "tally.lock"

// ErrLocked means another process holds the data directory.
var ErrLocked = errors.New("in use")

// dirLock holds a data directory for one node at a time: two servers on one
// JetStream store overwrite each other's files.
type dirLock struct{ f *os.File }

// lockDir creates dir if needed, checks that the node may write there and
// locks it.
func lockDir(dir string) (*dirLock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data directory %s: cannot create it: %w", dir, err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: cannot write there: %w", dir, err)
	}
	if err := lockExclusive(f); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if pid := strings.TrimSpace(string(holder)); pid != "" && errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("data directory %s: %w by process %s", dir, err, pid)
		}
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory %s: cannot write there: %w", dir, err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory %s: cannot write there: %w", dir, err)
	}
	return &dirLock{f: f}, nil
}

// release lets another node use the directory.
func (l *dirLock) release() error {
	if l == nil {
		return nil
	}
	return l.f.Close() // closing the file drops the lock
}
