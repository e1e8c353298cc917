package membership

import (
	"hash/maphash"
	"slices"
	"strings"
)

// Set is a group's members. The user IDs sit in one byte arena, each its
// length and bytes; a slice of their offsets in byte order serves lists
// and pages, and an open-addressing index of offsets (linear probing, at
// most half full) answers Has in constant time. None of it holds a
// pointer, so the garbage collector does not scan a set however large:
// a member costs its ID's bytes plus one, 4 bytes of order and 8 to 16 of
// index.
//
// The zero Set is empty and ready to use. A Set is not safe for
// concurrent use.
type Set struct {
	arena  []byte
	sorted []uint32 // offsets of the members, in byte order of their IDs
	index  []uint32 // offset+1 of a member at its hash's slot, 0: empty
	dead   int      // arena bytes of removed members
}

var seed = maphash.MakeSeed()

// Len is the number of members.
func (s *Set) Len() int { return len(s.sorted) }

// at returns the ID at offset off of the arena.
func (s *Set) at(off uint32) []byte {
	n := uint32(s.arena[off])
	return s.arena[off+1 : off+1+n]
}

// find returns the index slot of id, and whether id is there; when not,
// the slot is where it would go.
func (s *Set) find(id string) (int, bool) {
	mask := len(s.index) - 1
	i := int(maphash.String(seed, id)) & mask
	for {
		v := s.index[i]
		if v == 0 {
			return i, false
		}
		if string(s.at(v-1)) == id {
			return i, true
		}
		i = (i + 1) & mask
	}
}

// Has reports whether id is a member.
func (s *Set) Has(id string) bool {
	if len(s.sorted) == 0 {
		return false
	}
	_, ok := s.find(id)
	return ok
}

// Add makes the given users members and returns those that were not,
// sorted and without repeats. Each ID must be 1..255 bytes.
func (s *Set) Add(ids []string) []string {
	var added []string
	for _, id := range ids {
		if !s.Has(id) && !slices.Contains(added, id) {
			added = append(added, id)
		}
	}
	if len(added) == 0 {
		return nil
	}
	slices.Sort(added)
	s.grow(len(s.sorted) + len(added))
	fresh := make([]uint32, 0, len(added))
	for _, id := range added {
		off := uint32(len(s.arena))
		s.arena = append(s.arena, byte(len(id)))
		s.arena = append(s.arena, id...)
		i, _ := s.find(id)
		s.index[i] = off + 1
		fresh = append(fresh, off)
	}
	// Merge the new members into the order: each one's place by binary
	// search, the members between them moved in blocks; no sort of the
	// whole set.
	merged := make([]uint32, 0, len(s.sorted)+len(fresh))
	prev := 0
	for j, off := range fresh {
		p := s.position(added[j])
		merged = append(merged, s.sorted[prev:p]...)
		merged = append(merged, off)
		prev = p
	}
	s.sorted = append(merged, s.sorted[prev:]...)
	return added
}

// Remove removes the given users and returns those that were members,
// sorted and without repeats.
func (s *Set) Remove(ids []string) []string {
	var removed []string
	for _, id := range ids {
		if s.Has(id) && !slices.Contains(removed, id) {
			removed = append(removed, id)
		}
	}
	if len(removed) == 0 {
		return nil
	}
	slices.Sort(removed)
	for _, id := range removed {
		i, _ := s.find(id)
		s.dead += 1 + len(id)
		s.unindex(i)
	}
	// removed is sorted, as the order is: their places, found by binary
	// search, ascend, and the members between them move down in blocks.
	w := -1 // where the next kept block goes
	prev := 0
	for _, id := range removed {
		p := s.position(id)
		if w < 0 {
			w = p
		} else {
			w += copy(s.sorted[w:], s.sorted[prev:p])
		}
		prev = p + 1
	}
	w += copy(s.sorted[w:], s.sorted[prev:])
	s.sorted = s.sorted[:w]
	if s.dead > 4096 && s.dead > len(s.arena)/2 {
		s.compact()
	}
	return removed
}

// unindex empties slot i, moving back the entries after it that probing
// would no longer find (backward-shift deletion: no tombstones).
func (s *Set) unindex(i int) {
	mask := len(s.index) - 1
	j := i
	for {
		j = (j + 1) & mask
		v := s.index[j]
		if v == 0 {
			break
		}
		home := int(maphash.String(seed, string(s.at(v-1)))) & mask
		// The entry at j stays when its home lies cyclically in (i, j].
		if (i <= j && i < home && home <= j) || (i > j && (i < home || home <= j)) {
			continue
		}
		s.index[i] = v
		i = j
	}
	s.index[i] = 0
}

// grow makes the index fit n members at most half full.
func (s *Set) grow(n int) {
	if 2*n <= len(s.index) {
		return
	}
	size := max(len(s.index), 16)
	for 2*n > size {
		size *= 2
	}
	s.reindex(size)
}

func (s *Set) reindex(size int) {
	s.index = make([]uint32, size)
	for _, off := range s.sorted {
		i, _ := s.find(string(s.at(off)))
		s.index[i] = off + 1
	}
}

// compact drops removed members' bytes from the arena.
func (s *Set) compact() {
	arena := make([]byte, 0, len(s.arena)-s.dead)
	for k, off := range s.sorted {
		s.sorted[k] = uint32(len(arena))
		arena = append(arena, s.arena[off:off+1+uint32(s.arena[off])]...)
	}
	s.arena, s.dead = arena, 0
	s.reindex(len(s.index))
}

// position returns where id is, or would be, in the order.
func (s *Set) position(id string) int {
	p, _ := slices.BinarySearchFunc(s.sorted, id, func(off uint32, id string) int {
		return strings.Compare(string(s.at(off)), id)
	})
	return p
}

// List returns up to limit members after the user ID after ("": from the
// first), in byte order, and whether more follow.
func (s *Set) List(after string, limit int) (ids []string, more bool) {
	start := 0
	if after != "" {
		start = s.position(after)
		if start < len(s.sorted) && string(s.at(s.sorted[start])) == after {
			start++
		}
	}
	end := min(start+limit, len(s.sorted))
	ids = make([]string, 0, end-start)
	for _, off := range s.sorted[start:end] {
		ids = append(ids, string(s.at(off)))
	}
	return ids, end < len(s.sorted)
}

// All returns every member in byte order.
func (s *Set) All() []string {
	ids, _ := s.List("", s.Len())
	return ids
}

// Digest is the sum of Hash of every member: the journal's events carry
// it instead of the set.
func (s *Set) Digest() uint64 {
	var d uint64
	for _, off := range s.sorted {
		d += Hash(string(s.at(off)))
	}
	return d
}

// Bytes is the memory the set's arrays take.
func (s *Set) Bytes() int { return cap(s.arena) + 4*cap(s.sorted) + 4*cap(s.index) }

// Clone returns a copy of s that shares nothing with it.
func (s *Set) Clone() *Set {
	if s == nil {
		return &Set{}
	}
	return &Set{arena: slices.Clone(s.arena), sorted: slices.Clone(s.sorted), index: slices.Clone(s.index), dead: s.dead}
}

// Hash is a user ID's share of a member set's digest: FNV-1a of its bytes
// and its length, the same in every process, since events carry digests.
func Hash(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint64(id[i])) * 1099511628211
	}
	h = (h ^ uint64(len(id))) * 1099511628211
	// A final mix spreads FNV's low-entropy high bits, so that sums of
	// similar IDs do not collide.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}

// DigestOf is the digest of a member set that holds ids, each once.
func DigestOf(ids []string) uint64 {
	var d uint64
	for _, id := range ids {
		d += Hash(id)
	}
	return d
}

// New returns the set of ids (repeats count once), sorting them once:
// a group's load rebuilds its members with it.
func New(ids []string) *Set {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	s := &Set{sorted: make([]uint32, 0, len(ids))}
	for _, id := range ids {
		s.sorted = append(s.sorted, uint32(len(s.arena)))
		s.arena = append(s.arena, byte(len(id)))
		s.arena = append(s.arena, id...)
	}
	s.grow(len(ids))
	return s
}
