package actors

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// registry keeps the actors of one kind by name (a group ID or a user ID),
// activates an actor on the first message to its name, and asks idle
// actors to stop.
//
// A name has at most one actor at a time. Messages are posted while
// holding the name's shard lock, so once a stopping actor has released its
// name no message reaches it through the registry: it needs only to drain
// its mailbox. Messages sent meanwhile wait in the registry and go to the
// next actor, which starts from the snapshot the stopping one leaves (or
// from the journal, when it leaves none). Snapshots unused for keep are
// dropped. One goroutine per registry keeps a coarse clock and sweeps the
// names, so that no actor needs a timer of its own.
type registry struct {
	root  *actor.RootContext
	props *actor.Props
	ours  bool // props make tally's mailbox (mailbox.go)
	// spawnMu is held around each spawn of ours, so that spawned is the
	// mailbox its props just made.
	spawnMu sync.Mutex
	spawned *mailbox
	seed    maphash.Seed
	idle    int64 // nanos without a message after which an actor is asked to stop
	keep    int64 // nanos a snapshot is kept; 0 keeps none
	now     atomic.Int64
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	shards  [256]shard
}

type shard struct {
	mu      sync.RWMutex
	entries map[string]*entry
	live    map[string]*entry // the entries with a live actor
}

// entry is a name's live actor, its stopping actor, or the snapshot its
// last actor left.
type entry struct {
	pid  *actor.PID // the live actor, or nil
	mb   *mailbox   // the live actor's mailbox, when it is one of ours
	stop *stopping  // the actor that released the name and is stopping, or nil
	snap *snapshot  // what the last actor left, while neither is set
	last atomic.Int64
	// backoff doubles the name's idle time for each time a message came
	// back within the idle time after its actor stopped, up to maxBackoff:
	// a name called steadily keeps its actor instead of restarting it.
	backoff uint8
}

const maxBackoff = 3

type stopping struct {
	id      string // the stopping actor's PID
	waiting []any  // messages for the next actor
	stale   bool   // notified meanwhile: the snapshot it leaves is not kept
}

// activate is the first message of every actor the registry spawns: the
// props are shared, so the name travels in a message.
type activate struct {
	name string
	reg  *registry
	snap *snapshot // the state the last actor left, or nil
	mb   *mailbox  // the actor's mailbox, when it is one of ours
}

// idleCheck asks an actor that got no message for the registry's idle
// time to stop if it has nothing in flight.
type idleCheck struct{}

// newRegistry returns a registry of the actors props make. With ours, the
// actors get tally's mailbox whatever props say (props are changed to make
// it), and run the messages sent to them when idle on the sender's
// goroutine.
func newRegistry(root *actor.RootContext, props *actor.Props, ours bool, idle, keep time.Duration) *registry {
	r := &registry{
		root: root, props: props, ours: ours, seed: maphash.MakeSeed(),
		idle: int64(idle), keep: int64(keep),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	for i := range r.shards {
		r.shards[i].entries = map[string]*entry{}
		r.shards[i].live = map[string]*entry{}
	}
	if ours {
		props.Configure(actor.WithMailbox(func() actor.Mailbox {
			r.spawned = &mailbox{} // under spawnMu
			return r.spawned
		}))
	}
	r.now.Store(systemClock{}.Mono())
	go r.sweep(min(max(idle/4, time.Millisecond), time.Second))
	return r
}

func (r *registry) shard(name string) *shard {
	return &r.shards[maphash.String(r.seed, name)%uint64(len(r.shards))]
}

// send posts msg to name's actor, activating one when none is live, or
// keeps it for the next one while the last one stops. An idle actor runs
// msg on the caller's goroutine before send returns (mailbox.claim).
func (r *registry) send(name string, msg any) {
	s := r.shard(name)
	now := r.now.Load()
	s.mu.RLock()
	if e, ok := s.entries[name]; ok && e.pid != nil {
		e.last.Store(now)
		mb := r.post(e, msg)
		s.mu.RUnlock()
		if mb != nil {
			mb.process()
		}
		return
	}
	s.mu.RUnlock()
	if mb := r.sendLocked(s, name, msg, now); mb != nil {
		mb.process()
	}
}

// post posts msg to e's live actor, and returns its mailbox when the
// caller must run it once it holds no lock.
func (r *registry) post(e *entry, msg any) *mailbox {
	if e.mb == nil {
		r.root.Send(e.pid, msg)
		return nil
	}
	if e.mb.claim(msg) {
		return e.mb
	}
	return nil
}

// sendLocked is send's slow path, under the shard's write lock.
func (r *registry) sendLocked(s *shard, name string, msg any, now int64) *mailbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[name]
	if !ok {
		e = &entry{}
		s.entries[name] = e
	}
	stopped := e.last.Swap(now) // when the last actor stopped, for a snapshot
	switch {
	case e.pid != nil:
	case e.stop != nil:
		if len(e.stop.waiting) == 0 {
			e.backOff(true) // back while its actor stops
		}
		e.stop.waiting = append(e.stop.waiting, msg)
		return nil
	default:
		if e.snap != nil {
			e.backOff(now-stopped < r.idle<<e.backoff)
		}
		e.pid, e.mb = r.spawn(name, e.snap)
		e.snap = nil
		s.live[name] = e
	}
	return r.post(e, msg)
}

// notify posts msg to name's live actor; of an actor that is stopping,
// or that stopped, it drops the snapshot, so that the next actor starts
// from the journal. It activates nothing.
func (r *registry) notify(name string, msg any) {
	s := r.shard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[name]
	switch {
	case !ok:
	case e.pid != nil:
		r.root.Send(e.pid, msg)
	case e.stop != nil:
		e.stop.stale = true
	default:
		delete(s.entries, name)
	}
}

// backOff lengthens the name's idle time when a message came back soon
// after its actor stopped, and resets it otherwise.
func (e *entry) backOff(soon bool) {
	switch {
	case !soon:
		e.backoff = 0
	case e.backoff < maxBackoff:
		e.backoff++
	}
}

// spawn starts name's actor; the caller holds the name's shard lock. The
// actor's first message, its activation, is scheduled on the pool, so
// that messages posted meanwhile queue behind it.
func (r *registry) spawn(name string, snap *snapshot) (*actor.PID, *mailbox) {
	var mb *mailbox
	r.spawnMu.Lock()
	pid := r.root.Spawn(r.props) // makes its mailbox on this goroutine
	if r.ours {
		mb, r.spawned = r.spawned, nil
	}
	r.spawnMu.Unlock()
	r.root.Send(pid, &activate{name: name, reg: r, snap: snap, mb: mb})
	return pid, mb
}

// release is called by an actor that stops taking messages; once it
// returns no message reaches pid through the registry.
func (r *registry) release(name string, pid *actor.PID) {
	s := r.shard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[name]; ok && e.pid != nil && e.pid.Id == pid.Id {
		e.pid, e.mb, e.stop = nil, nil, &stopping{id: pid.Id}
		delete(s.live, name)
	}
}

// finish is called by an actor that stops, with the snapshot it leaves or
// nil: the messages that waited go to a new actor started from the
// snapshot; without any, the snapshot is kept for keep. An actor that
// stops without releasing its name first (a panic) leaves nothing.
func (r *registry) finish(name string, pid *actor.PID, snap *snapshot) {
	s := r.shard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[name]
	switch {
	case !ok:
		return
	case e.pid != nil && e.pid.Id == pid.Id:
		delete(s.entries, name)
		delete(s.live, name)
		return
	case e.stop == nil || e.stop.id != pid.Id:
		return // not pid's name any more
	}
	waiting := e.stop.waiting
	if e.stop.stale {
		snap = nil
	}
	e.stop = nil
	if len(waiting) > 0 {
		e.pid, e.mb = r.spawn(name, snap)
		s.live[name] = e
		for _, m := range waiting {
			r.root.Send(e.pid, m)
		}
		return
	}
	if snap == nil || r.keep == 0 {
		delete(s.entries, name)
		return
	}
	e.snap = snap
	e.last.Store(r.now.Load())
}

// sweep advances the clock every tick; every half idle period it asks
// the actors idle that long to stop, and every eighth of keep it drops the
// snapshots unused for keep.
func (r *registry) sweep(tick time.Duration) {
	defer close(r.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	lastIdle, lastKeep := systemClock{}.Mono(), systemClock{}.Mono()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			n := systemClock{}.Mono()
			r.now.Store(n)
			if n-lastIdle >= r.idle/2 {
				lastIdle = n
				r.askIdle(n)
			}
			if r.keep > 0 && n-lastKeep >= max(r.idle/2, r.keep/8) {
				lastKeep = n
				r.dropSnapshots(n)
			}
		}
	}
}

// askIdle asks every live actor idle for the idle time to stop.
func (r *registry) askIdle(now int64) {
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		for _, e := range s.live {
			if now-e.last.Load() >= r.idle<<e.backoff {
				r.root.Send(e.pid, &idleCheck{})
			}
		}
		s.mu.RUnlock()
	}
}

// dropSnapshots drops the snapshots unused for keep.
func (r *registry) dropSnapshots(now int64) {
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for name, e := range s.entries {
			if e.snap != nil && now-e.last.Load() >= r.keep {
				delete(s.entries, name)
			}
		}
		s.mu.Unlock()
	}
}

// stopAll stops the sweeper and every actor at once, dropping what their
// mailboxes hold.
func (r *registry) stopAll() {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for _, e := range s.live {
			r.root.Stop(e.pid)
		}
		clear(s.live)
		clear(s.entries)
		s.mu.Unlock()
	}
}

// counts returns how many names have a live actor and how many are held
// as a snapshot only (for the metrics: it takes every shard's lock in
// turn).
func (r *registry) counts() (live, snapshots int) {
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		live += len(s.live)
		for _, e := range s.entries {
			if e.pid == nil && e.stop == nil && e.snap != nil {
				snapshots++
			}
		}
		s.mu.RUnlock()
	}
	return live, snapshots
}
