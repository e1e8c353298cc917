package cluster

import (
	"fmt"
	"hash/fnv"

	"github.com/tallyhq/tally/journal"
)

// Partition returns the partition of a group or user ID.
func (c *Cluster) Partition(id string) int { return PartitionOf(id, len(c.parts)) }

// PartitionOf returns the partition of a group or user ID among n: the
// FNV-1a hash of the ID, modulo n (journal.PartitionOf, by which the
// journal's shards hold whole partitions).
func PartitionOf(id string, n int) int { return journal.PartitionOf(id, n) }

type ranked struct {
	name  string
	hash  uint64
	inbox string
}

// Place finds where a call on partition p is served and calls fn: with ""
// when here, the partition then entered (the caller calls Exit(p) once it
// answered the call), with a node's inbox to forward the call to, with
// ErrNoOwner when no node took the partition within ParkFor, or with
// ErrCutOff or ErrNoLeader when this node's heartbeats do not get through.
// fn may be called before Place returns, or later from another goroutine.
func (c *Cluster) Place(p int, fn func(inbox string, err error)) { c.place(p, false, fn) }

// PlaceForwarded is Place for a call that another node forwarded here to
// be placed on p: it goes on only to the holder of p's lease, and while
// no live node holds it, it waits here (at most ParkFor) rather than go
// on to this node's own guess of p's owner. The node that forwarded it
// guessed otherwise; two nodes whose views of the owners differ for a
// moment (while the shards' leaders move) would pass it back and forth.
func (c *Cluster) PlaceForwarded(p int, fn func(inbox string, err error)) { c.place(p, true, fn) }

func (c *Cluster) place(p int, forwarded bool, fn func(inbox string, err error)) {
	if c.enter(p) {
		fn("", nil)
		return
	}
	if !c.member() {
		// The others do not count this node, and it may not reach them:
		// say why rather than forward the call into the void.
		fn("", c.notMember(p))
		return
	}
	c.mu.Lock()
	inbox, park := c.target(p, forwarded)
	if park {
		c.parked[p] = append(c.parked[p], waiter{fn: fn, forwarded: forwarded, deadline: c.mono() + int64(c.cfg.ParkFor)})
		c.mu.Unlock()
		c.kick()
		return
	}
	c.mu.Unlock()
	if inbox == "" {
		fn("", fmt.Errorf("%w: partition %d: the node has no live members in view", ErrNoOwner, p))
		return
	}
	fn(inbox, nil)
}

// enter counts a call on p if this node serves p now.
func (c *Cluster) enter(p int) bool {
	pt := &c.parts[p]
	pt.inflight.Add(1)
	if pt.state.Load() == owned && c.mono() < pt.until.Load() {
		return true
	}
	pt.inflight.Add(-1)
	return false
}

// Exit ends a call that Place placed here.
func (c *Cluster) Exit(p int) { c.parts[p].inflight.Add(-1) }

// target says where a call on p goes when this node does not serve it:
// the holder of p's lease when it is a live member, else p's chosen owner;
// park when that is this node (the lease is on its way), or when the call
// was forwarded here and no live node holds p. Called with mu held.
func (c *Cluster) target(p int, forwarded bool) (inbox string, park bool) {
	if c.parts[p].state.Load() != leaving {
		if h := c.holders[p]; h != nil && h.GetNode() != c.cfg.Name {
			if _, live := c.view[h.GetNode()]; live {
				return h.GetInbox(), false
			}
		}
	}
	chosen := c.chosen(p)
	switch {
	case chosen == nil && c.stopped:
		return "", false
	case forwarded && !c.stopped:
		return "", true
	case chosen == nil:
		return "", !c.membersSeen.Load()
	case chosen.name == c.cfg.Name:
		return "", true
	default:
		return chosen.inbox, false
	}
}

// chosen is p's owner: its shard's owner with a journal of several
// shards, else the one rendezvous hashing picks over the view. Called with
// mu held.
func (c *Cluster) chosen(p int) *ranked {
	if len(c.shards) > 0 {
		name := c.shards[c.cfg.Journal.ShardOfPartition(p)].owner
		for i := range c.ranked {
			if c.ranked[i].name == name {
				return &c.ranked[i]
			}
		}
		return nil
	}
	var best *ranked
	var bestScore uint64
	for i := range c.ranked {
		r := &c.ranked[i]
		if s := score(r.hash, p); best == nil || s > bestScore || (s == bestScore && r.name < best.name) {
			best, bestScore = r, s
		}
	}
	return best
}

// Owner returns the member that rendezvous hashing picks for partition p
// among members: the owner every node chooses when its view of the live
// members is members; "" when there is none.
func Owner(members []string, p int) string {
	var best string
	var bestScore uint64
	for _, name := range members {
		if s := score(nameHash(name), p); best == "" || s > bestScore || (s == bestScore && name < best) {
			best, bestScore = name, s
		}
	}
	return best
}

// score mixes a member's hash with a partition (splitmix64's finalizer).
func score(h uint64, p int) uint64 {
	x := h ^ (uint64(p)+1)*0x9e3779b97f4a7c15
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func nameHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

type waiter struct {
	fn        func(inbox string, err error)
	forwarded bool  // placed by PlaceForwarded
	deadline  int64 // mono nanos
}

// replace places p's parked calls again: here once p is entered, or on
// the node that now serves p.
func (c *Cluster) replace(p int) {
	c.mu.Lock()
	w := c.parked[p]
	c.parked[p] = nil
	c.mu.Unlock()
	for _, x := range w {
		c.place(p, x.forwarded, x.fn)
	}
}

// replaceAll places every parked call again, after the view changed.
func (c *Cluster) replaceAll() {
	for p := range c.parts {
		c.mu.Lock()
		n := len(c.parked[p])
		c.mu.Unlock()
		if n > 0 {
			c.replace(p)
		}
	}
}

// expireParked answers the calls parked for longer than ParkFor.
func (c *Cluster) expireParked() {
	now := c.mono()
	var late []waiter
	var parts []int
	c.mu.Lock()
	for p, ws := range c.parked {
		keep := ws[:0]
		for _, w := range ws {
			if now >= w.deadline {
				late, parts = append(late, w), append(parts, p)
			} else {
				keep = append(keep, w)
			}
		}
		c.parked[p] = keep
	}
	c.mu.Unlock()
	for i, w := range late {
		w.fn("", fmt.Errorf("%w: partition %d got no owner within %v", ErrNoOwner, parts[i], c.cfg.ParkFor))
	}
}
