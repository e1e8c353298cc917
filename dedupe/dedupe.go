// Package dedupe remembers the outcome of writes by group and request ID
// for a window of time, so that a retried write is answered with its first
// outcome instead of being applied again.
//
// A Table keeps its entries in pointer-free arrays, which the garbage
// collector does not scan: per shard, a ring of entries in the order they
// were added, which is the order they expire in, and an open-addressing
// index over the ring. An entry is 48 bytes and its index slot 4, at most
// half of the index in use.
package dedupe

import (
	"hash/maphash"
	"sync"
)

// Outcome is what a write made, enough to answer its retries: the hash of
// the request, to refuse a retry that is another request under the same
// ID, and the change's sequence and value, or the users a members change
// added or removed.
type Outcome struct {
	Fingerprint uint64
	Seq         uint64
	Value       int64
	Users       []string
}

// Key identifies a write: its group, its user and its request ID, hashed
// to 128 bits.
type Key struct{ hi, lo uint64 }

// Table is safe for concurrent use.
type Table struct {
	seedHi, seedLo maphash.Seed
	shards         [shards]shard
}

const shards = 64

// New returns an empty table.
func New() *Table {
	return &Table{seedHi: maphash.MakeSeed(), seedLo: maphash.MakeSeed()}
}

// Key hashes a group, the user who wrote (empty for the admin subjects)
// and a request ID: request IDs are scoped by their user, so that one
// user's ID never matches another's write.
func (t *Table) Key(group, user, requestID string) Key {
	var h maphash.Hash
	h.SetSeed(t.seedHi)
	writeKey(&h, group, user, requestID)
	hi := h.Sum64()
	h.SetSeed(t.seedLo)
	writeKey(&h, group, user, requestID)
	return Key{hi: hi, lo: h.Sum64()}
}

// writeKey writes the parts of a key, each ended by a zero byte, which no
// group or user ID holds.
func writeKey(h *maphash.Hash, group, user, requestID string) {
	h.WriteString(group)
	h.WriteByte(0)
	h.WriteString(user)
	h.WriteByte(0)
	h.WriteString(requestID)
}

func (t *Table) shard(k Key) *shard { return &t.shards[k.hi%shards] }

// Get returns the outcome remembered for k, unless it expired by now
// (nanoseconds by the caller's clock, the same for every call).
func (t *Table) Get(k Key, now int64) (Outcome, bool) {
	s := t.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	// An entry recovered from the journal may expire before entries put
	// ahead of it in the ring, which drops them in order.
	if i, ok := s.find(k); ok && s.ring[i].expires > now {
		e := &s.ring[i]
		return Outcome{Fingerprint: e.fingerprint, Seq: e.seq, Value: e.value, Users: s.users[k]}, true
	}
	return Outcome{}, false
}

// Put remembers o for k until expires (by the caller's clock, as Get's
// now), replacing what k had. now expires older entries first.
func (t *Table) Put(k Key, o Outcome, expires, now int64) {
	s := t.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	if i, ok := s.find(k); ok {
		s.unindex(i)
		s.ring[i].key = Key{} // a tombstone: expires with its place in the ring
		delete(s.users, k)
	}
	s.push(entry{key: k, fingerprint: o.Fingerprint, seq: o.Seq, value: o.Value, expires: expires})
	if len(o.Users) > 0 {
		if s.users == nil {
			s.users = map[Key][]string{}
		}
		s.users[k] = o.Users
	}
}

// Len is the number of entries held, expired or not.
func (t *Table) Len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}

// Bytes is the memory the table's arrays take.
func (t *Table) Bytes() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += cap(s.ring)*entrySize + cap(s.index)*4
		s.mu.Unlock()
	}
	return n
}

// Expire drops the entries expired by now, in every shard.
func (t *Table) Expire(now int64) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		s.expire(now)
		s.mu.Unlock()
	}
}

const entrySize = 48

type entry struct {
	key         Key // zero: a tombstone, or an empty place
	fingerprint uint64
	seq         uint64
	value       int64
	expires     int64
}

// shard is a ring of entries, oldest at head, and an index of ring
// positions (+1; 0 is an empty slot) by key, probed linearly.
type shard struct {
	mu    sync.Mutex
	ring  []entry
	head  int // the oldest entry
	n     int // entries in the ring
	index []uint32
	used  int // index slots in use
	// users holds the users of the entries of members changes, which
	// are few: the ring stays free of pointers.
	users map[Key][]string
}

func (s *shard) slot(k Key) int { return int(k.lo & uint64(len(s.index)-1)) }

// find returns the ring position of k.
func (s *shard) find(k Key) (int, bool) {
	if len(s.index) == 0 || k == (Key{}) {
		return 0, false
	}
	for i := s.slot(k); ; i = (i + 1) & (len(s.index) - 1) {
		p := s.index[i]
		if p == 0 {
			return 0, false
		}
		if s.ring[p-1].key == k {
			return int(p - 1), true
		}
	}
}

// push appends e at the ring's tail and indexes it.
func (s *shard) push(e entry) {
	if s.n == len(s.ring) {
		s.grow()
	}
	pos := (s.head + s.n) % len(s.ring)
	s.ring[pos] = e
	s.n++
	if 2*(s.used+1) > len(s.index) {
		s.reindex(2 * len(s.index)) // indexes pos too
		return
	}
	i := s.slot(e.key)
	for s.index[i] != 0 {
		i = (i + 1) & (len(s.index) - 1)
	}
	s.index[i] = uint32(pos + 1)
	s.used++
}

// unindex removes ring position pos from the index, shifting the entries
// after it back so that every probe sequence stays unbroken.
func (s *shard) unindex(pos int) {
	mask := len(s.index) - 1
	i := s.slot(s.ring[pos].key)
	for s.index[i] != uint32(pos+1) {
		i = (i + 1) & mask
	}
	for j := (i + 1) & mask; ; j = (j + 1) & mask {
		p := s.index[j]
		if p == 0 {
			break
		}
		home := s.slot(s.ring[p-1].key)
		// p may fill the hole at i unless its home lies cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			s.index[i] = p
			i = j
		}
	}
	s.index[i] = 0
	s.used--
}

// expire pops the entries at the head that expired by now.
func (s *shard) expire(now int64) {
	for s.n > 0 && s.ring[s.head].expires <= now {
		if k := s.ring[s.head].key; k != (Key{}) {
			s.unindex(s.head)
			delete(s.users, k)
		}
		s.ring[s.head] = entry{}
		s.head = (s.head + 1) % len(s.ring)
		s.n--
	}
}

// grow doubles the ring, keeping its order, and rebuilds the index over
// the new positions.
func (s *shard) grow() {
	ring := make([]entry, max(16, 2*len(s.ring)))
	for i := range s.n {
		ring[i] = s.ring[(s.head+i)%len(s.ring)]
	}
	s.ring, s.head = ring, 0
	s.reindex(len(s.index))
}

// reindex rebuilds the index with size slots (a power of two).
func (s *shard) reindex(size int) {
	size = max(size, 16)
	for size < 2*(s.n+1) {
		size *= 2
	}
	s.index, s.used = make([]uint32, size), 0
	for i := range s.n {
		pos := (s.head + i) % len(s.ring)
		if k := s.ring[pos].key; k != (Key{}) {
			j := s.slot(k)
			for s.index[j] != 0 {
				j = (j + 1) & (len(s.index) - 1)
			}
			s.index[j] = uint32(pos + 1)
			s.used++
		}
	}
}
