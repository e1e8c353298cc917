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
	// synced takes each flushed batch to the goroutine that calls its
	// callbacks, which may run actors: the next flush does not wait for
	// them.
	synced chan synced
	done   chan struct{}
	stop   bool
	syncs  atomic.Int64
}

type synced struct {
	batch []func(error)
	err   error
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
	s := &Syncer{dir: f, done: make(chan struct{}), synced: make(chan synced, 64)}
	s.cond = sync.NewCond(&s.mu)
	called := make(chan struct{})
	go s.call(called)
	go s.run(called)
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

// call calls the callbacks of each flushed batch, in order, until run
// closes synced.
func (s *Syncer) call(called chan<- struct{}) {
	defer close(called)
	for b := range s.synced {
		for _, fn := range b.batch {
			fn(b.err)
		}
	}
}

func (s *Syncer) run(called <-chan struct{}) {
	defer close(s.done)
	defer func() { close(s.synced); <-called }()
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
			s.synced <- synced{batch, err}
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
