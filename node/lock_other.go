//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || windows)

package node

import "os"

// lockEnforced reports whether lockExclusive keeps a second node out: not
// here, where neither flock(2) nor LockFileEx exists. The node says so when
// it starts; the operator must not start two nodes on one data directory.
const lockEnforced = false

func lockExclusive(*os.File) error { return nil }
