package journal

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// ErrSync means the data of an acknowledged append could not be made
// durable: its outcome after a power loss is unknown.
var ErrSync = errors.New("journal: sync to disk failed")

// Syncer makes appends durable in batches, for a NATS server embedded in
// this process that writes each message to its file before acknowledging
// it but does not fsync it. After JetStream acknowledges an append,
// AppendAsync waits for the next syncfs(2) of the store's file system,
// which covers every append acknowledged before it started: appends of all
// groups that are in flight together share one disk flush (group commit),
// where JetStream's own sync_interval=always flushes every message on its
// own.
type Syncer struct {
	dir   *os.File
	mu    sync.Mutex
	cond  *sync.Cond
	queue []func(error)
	done  chan struct{}
	stop  bool
	syncs atomic.Int64
}

// NewSyncer opens dir, the server's store directory, and starts syncing.
// It needs syncfs(2): on systems without it (HasSyncer is false) it fails,
// and the server must sync every write itself (server.Options.SyncAlways).
func NewSyncer(dir string) (*Syncer, error) {
	if !HasSyncer {
		return nil, errNoSyncfs
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: syncer: %w", err)
	}
	s := &Syncer{dir: f, done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	go s.run()
	return s, nil
}

// after calls fn once everything written so far is on disk.
func (s *Syncer) after(fn func(error)) {
	s.mu.Lock()
	if s.stop {
		s.mu.Unlock()
		fn(fmt.Errorf("%w: syncer closed", ErrSync)) // not under the lock: fn may run an actor
		return
	}
	s.queue = append(s.queue, fn)
	s.cond.Signal()
	s.mu.Unlock()
}

func (s *Syncer) run() {
	defer close(s.done)
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.stop {
			s.cond.Wait()
		}
		batch, stop := s.queue, s.stop
		s.queue = nil
		s.mu.Unlock()
		if len(batch) > 0 {
			err := syncfs(s.dir)
			s.syncs.Add(1)
			if err != nil {
				err = fmt.Errorf("%w: %w", ErrSync, err)
			}
			for _, fn := range batch {
				fn(err)
			}
		}
		if stop {
			return
		}
	}
}

// Syncs is how many disk flushes the syncer has made.
func (s *Syncer) Syncs() int64 { return s.syncs.Load() }

// Close flushes what is queued and stops.
func (s *Syncer) Close() error {
	s.mu.Lock()
	s.stop = true
	s.cond.Signal()
	s.mu.Unlock()
	<-s.done
	return s.dir.Close()
}
