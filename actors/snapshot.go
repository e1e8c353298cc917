package actors

import (
	"slices"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tallyhq/tally/messages"
)

// snapshot is what a group actor leaves in memory when it stops for being
// idle: its counters packed, and the request IDs it still remembers. The
// next activation starts from it without reading the journal.
//
// A snapshot may be stale when another node wrote the group meanwhile:
// the next append then conflicts and the actor reloads, as any actor
// whose journal moved on does.
type snapshot struct {
	counters packed
	version  uint64
	seq      uint64
	seen     map[string]remembered
	expiries []expiry
}

// packed is a group's counters in one allocation without pointers, which
// the garbage collector does not scan: for each counter, the key's length
// and bytes, then the value, as protobuf varints. Five counters with short
// keys take a 32-byte allocation, where a slice of key-value pairs took
// 120 bytes and one more allocation per key.
type packed struct {
	b []byte
	n int // counters in b
}

func pack(m map[string]int64) packed {
	size := 0
	for k, v := range m {
		size += protowire.SizeBytes(len(k)) + protowire.SizeVarint(protowire.EncodeZigZag(v))
	}
	b := make([]byte, 0, size)
	for k, v := range m {
		b = protowire.AppendString(b, k)
		b = protowire.AppendVarint(b, protowire.EncodeZigZag(v))
	}
	return packed{b: b, n: len(m)}
}

func (p packed) unpack() map[string]int64 {
	m := make(map[string]int64, p.n)
	for b := p.b; len(b) > 0; {
		k, n := protowire.ConsumeBytes(b)
		if n < 0 {
			panic("actors: corrupt packed counters")
		}
		b = b[n:]
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			panic("actors: corrupt packed counters")
		}
		b = b[n:]
		m[string(k)] = protowire.DecodeZigZag(v)
	}
	return m
}

func (g *group) snapshot() *snapshot {
	g.forget(g.cfg.Clock.Now().UnixNano())
	s := &snapshot{counters: pack(g.state.GetCounters()), version: g.state.GetVersion(), seq: g.seq}
	if len(g.seen) > 0 {
		s.seen, s.expiries = g.seen, slices.Clip(g.expiries)
	}
	return s
}

// restore makes the group current from a snapshot.
func (g *group) restore(s *snapshot) {
	g.state = &messages.GroupState{Counters: s.counters.unpack(), Version: s.version}
	g.seq, g.seen, g.expiries = s.seq, s.seen, s.expiries
	g.ready = true
}
