package actors

import (
	"hash/maphash"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// registry keeps the live actors of one kind by name (a group ID or a user
// ID) and activates an actor on the first message to its name.
//
// Messages are posted while holding the name's shard lock, so once an actor
// has removed itself no message reaches it through the registry: a
// passivating actor needs only to drain its mailbox, and a message sent
// afterwards activates a fresh actor.
type registry struct {
	root   *actor.RootContext
	props  *actor.Props
	seed   maphash.Seed
	shards [256]shard
}

type shard struct {
	mu   sync.RWMutex
	pids map[string]*actor.PID
}

// activate is the first message of every actor the registry spawns: the
// props are shared, so the name travels in a message.
type activate struct {
	name string
	reg  *registry
}

func newRegistry(root *actor.RootContext, props *actor.Props) *registry {
	r := &registry{root: root, props: props, seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].pids = map[string]*actor.PID{}
	}
	return r
}

func (r *registry) shard(name string) *shard {
	return &r.shards[maphash.String(r.seed, name)%uint64(len(r.shards))]
}

// send posts msg to name's actor, activating one when none is live.
func (r *registry) send(name string, msg any) {
	s := r.shard(name)
	s.mu.RLock()
	if pid, ok := s.pids[name]; ok {
		r.root.Send(pid, msg)
		s.mu.RUnlock()
		return
	}
	s.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	pid, ok := s.pids[name]
	if !ok {
		pid = r.root.Spawn(r.props)
		r.root.Send(pid, &activate{name: name, reg: r})
		s.pids[name] = pid
	}
	r.root.Send(pid, msg)
}

// remove unregisters pid as name's actor; it returns when no message can
// reach pid through the registry any more.
func (r *registry) remove(name string, pid *actor.PID) {
	s := r.shard(name)
	s.mu.Lock()
	if cur, ok := s.pids[name]; ok && cur.Id == pid.Id {
		delete(s.pids, name)
	}
	s.mu.Unlock()
}

// active reports whether name has a live actor.
func (r *registry) active(name string) bool {
	s := r.shard(name)
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.pids[name]
	return ok
}

// stopAll stops every registered actor at once, dropping what their
// mailboxes hold.
func (r *registry) stopAll() {
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for name, pid := range s.pids {
			r.root.Stop(pid)
			delete(s.pids, name)
		}
		s.mu.Unlock()
	}
}
