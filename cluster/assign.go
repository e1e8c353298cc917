package cluster

import (
	"cmp"
	"slices"
)

// Candidate is a live member as the assignment of shards sees it: its
// name, and the NATS server its connection is on.
type Candidate struct {
	Name   string
	Server string
}

// Assign returns the owner of each shard of the journal, whose shard s
// has its stream replicated on the servers peers[s]. A shard's candidates
// are the members whose server is one of its peers, so that its owner can
// lead its stream where it runs; they rank by rendezvous hashing on the
// shard. Each member takes at most its share of the shards (the shards
// divided by the members that are candidates of any, rounded up), and
// every member that can take one shard takes one before any takes a
// second; the pairs of a shard and a candidate go best first, and
// augmenting paths place the shards this leaves without an owner: every node computes the same owners from the same members
// and peers, in whatever order it got them. A shard without a candidate
// (no member runs on a server of its stream) goes to the member that
// rendezvous hashing picks among all; "" when there are no members.
func Assign(peers [][]string, members []Candidate) []string {
	members = slices.Clone(members)
	slices.SortFunc(members, func(a, b Candidate) int { return cmp.Compare(a.Name, b.Name) })
	members = slices.CompactFunc(members, func(a, b Candidate) bool { return a.Name == b.Name })
	hashes := make([]uint64, len(members))
	for i, m := range members {
		hashes[i] = nameHash(m.Name)
	}
	cands := make([][]int, len(peers))
	eligible := map[int]bool{}
	for s, servers := range peers {
		for i, m := range members {
			if m.Server != "" && slices.Contains(servers, m.Server) {
				cands[s] = append(cands[s], i)
				eligible[i] = true
			}
		}
		slices.SortFunc(cands[s], func(a, b int) int {
			if c := cmp.Compare(score(hashes[b], s), score(hashes[a], s)); c != 0 {
				return c
			}
			return cmp.Compare(members[a].Name, members[b].Name)
		})
	}
	owner := make([]int, len(peers))
	for s := range owner {
		owner[s] = -1
	}
	if len(eligible) > 0 {
		// Capacity grows one shard at a time, so that every member takes
		// one before any takes two. In each round, pairs of a shard and a
		// candidate are taken best score first, as rendezvous hashing
		// would: a member that leaves then moves few shards besides its
		// own. Only the shards this leaves without an owner are placed by
		// augmenting paths.
		type pair struct {
			s, i  int
			score uint64
		}
		var pairs []pair
		for s, cs := range cands {
			for _, i := range cs {
				pairs = append(pairs, pair{s, i, score(hashes[i], s)})
			}
		}
		slices.SortFunc(pairs, func(a, b pair) int {
			if c := cmp.Compare(b.score, a.score); c != 0 {
				return c
			}
			if c := cmp.Compare(a.s, b.s); c != 0 {
				return c
			}
			return cmp.Compare(members[a.i].Name, members[b.i].Name)
		})
		m := matching{cands: cands, owner: owner, load: make([]int, len(members))}
		for m.capacity = 1; m.capacity <= (len(peers)+len(eligible)-1)/len(eligible); m.capacity++ {
			for _, p := range pairs {
				if owner[p.s] < 0 && m.load[p.i] < m.capacity {
					owner[p.s] = p.i
					m.load[p.i]++
				}
			}
			for s := range peers {
				if owner[s] < 0 {
					m.seen = make([]bool, len(members))
					m.place(s)
				}
			}
		}
	}
	out := make([]string, len(peers))
	for s, i := range owner {
		if i >= 0 {
			out[s] = members[i].Name
			continue
		}
		var best uint64
		for j, m := range members {
			if sc := score(hashes[j], s); out[s] == "" || sc > best {
				out[s], best = m.Name, sc
			}
		}
	}
	return out
}

// matching assigns shards to members, each member at most capacity of
// them.
type matching struct {
	cands    [][]int // each shard's candidates, best first
	owner    []int   // each shard's member, or -1
	load     []int   // each member's shards
	capacity int
	seen     []bool // members visited by the current search
}

// place finds shard s a member: one with room, or one that has room once
// another of its shards moves to another member (an augmenting path).
func (m *matching) place(s int) bool {
	for _, i := range m.cands[s] {
		if m.seen[i] {
			continue
		}
		m.seen[i] = true
		if m.load[i] < m.capacity {
			m.owner[s] = i
			m.load[i]++
			return true
		}
		for t, o := range m.owner {
			if o == i && m.place(t) {
				m.load[i]-- // place gave t to another member
				m.owner[s] = i
				m.load[i]++
				return true
			}
		}
	}
	return false
}
