package actors

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tallyhq/tally/membership"
	"github.com/tallyhq/tally/messages"
)

// snapshot is what a group actor leaves in memory when it stops for being
// idle: its counters packed. The next activation starts from it without
// reading the journal; the request IDs it committed stay in the node's
// table.
//
// A snapshot may be stale when another node wrote the group meanwhile:
// the next append then conflicts and the actor reloads, as any actor
// whose journal moved on does.
type snapshot struct {
	counters packed
	version  uint64
	seq      uint64
	epoch    uint64 // in a cluster, the lease the group was served under
	// A group with members keeps them, with what stands for them in its
	// state; the set holds no pointers.
	members    *membership.Set
	membersSeq uint64
	mo         bool
	count      uint64
	digest     uint64
}

// packed is a group's counters in one allocation without pointers, which
// the garbage collector does not scan: for each counter, the key's length
// and bytes, then the value, as protobuf varints. Five counters with short
// keys take a 32-byte allocation, where a slice of key-value pairs took
// 120 bytes and one more allocation per key.
type packed []byte

func pack(m map[string]int64) packed {
	size := 0
	for k, v := range m {
		size += protowire.SizeBytes(len(k)) + protowire.SizeVarint(protowire.EncodeZigZag(v))
	}
	b := make(packed, 0, size)
	for k, v := range m {
		b = protowire.AppendString(b, k)
		b = protowire.AppendVarint(b, protowire.EncodeZigZag(v))
	}
	return b
}

func (p packed) unpack() map[string]int64 {
	m := make(map[string]int64, p.len())
	for b := p; len(b) > 0; {
		k, v, rest := b.next()
		m[string(k)] = v
		b = rest
	}
	return m
}

// len counts the counters in p.
func (p packed) len() int {
	n := 0
	for b := p; len(b) > 0; n++ {
		_, _, b = b.next()
	}
	return n
}

// next reads p's first counter; p is one pack made, so it cannot fail.
func (p packed) next() (key []byte, value int64, rest packed) {
	key, n := protowire.ConsumeBytes(p)
	if n < 0 {
		panic("actors: corrupt packed counters")
	}
	v, m := protowire.ConsumeVarint(p[n:])
	if m < 0 {
		panic("actors: corrupt packed counters")
	}
	return key, protowire.DecodeZigZag(v), p[n+m:]
}

func (g *group) snapshot() *snapshot {
	s := &snapshot{counters: pack(g.state.GetCounters()), version: g.state.GetVersion(), seq: g.seq, epoch: g.epoch, membersSeq: g.membersSeq}
	if st := g.state; st.GetMembersOnly() {
		s.members, s.mo, s.count, s.digest = g.members, true, st.GetMemberCount(), st.GetMembersDigest()
	}
	return s
}

// current reports whether a snapshot is still good to serve from: in a
// cluster, only under the lease it was taken under (the node may have
// lost the partition and taken it back since, and another node written
// the group meanwhile).
func (g *group) current(s *snapshot) bool {
	if g.leases == nil {
		return true
	}
	epoch, _, ok := g.leases.Lease(g.part)
	if ok && epoch == s.epoch {
		g.epoch = epoch
		return true
	}
	return false
}

// restore makes the group current from a snapshot.
func (g *group) restore(s *snapshot) {
	g.state = &messages.GroupState{Counters: s.counters.unpack(), Version: s.version,
		MembersOnly: s.mo, MemberCount: s.count, MembersDigest: s.digest}
	g.seq, g.membersSeq, g.members = s.seq, s.membersSeq, s.members
	if g.members == nil {
		g.members = &membership.Set{}
	}
	g.ready = true
}
