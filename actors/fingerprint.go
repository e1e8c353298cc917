package actors

import (
	"github.com/tallyhq/tally/messages"
)

// fingerprint hashes what a write asks for (its operation, key, amount,
// counters or key list, not its request ID), so that a retry under the
// same request ID can be told from another request reusing it. It is FNV-1a
// over each part, and the parts of a set or delete are summed, so map
// order does not matter; it is the same in every process, since replay
// recomputes it from the journal.
func fingerprint(c *messages.Change) uint64 {
	h := mix(offset, uint64(c.GetOp()))
	switch c.GetOp() {
	case messages.Op_OP_SET:
		var sum uint64
		for k, v := range c.GetCounters() {
			sum += mix(hashString(offset, k), uint64(v))
		}
		h = mix(h, sum)
	case messages.Op_OP_INCREASE, messages.Op_OP_DECREASE:
		h = mix(hashString(h, c.GetKey()), uint64(c.GetAmount()))
	case messages.Op_OP_DELETE:
		var sum uint64
		for _, k := range c.GetKeys() {
			sum += hashString(offset, k)
		}
		h = mix(h, sum)
	case messages.Op_OP_MEMBERS_ADD, messages.Op_OP_MEMBERS_REMOVE:
		// Over the request's user IDs, which SubmitChange made sorted and
		// distinct.
		var sum uint64
		for _, u := range c.GetMembers() {
			sum += hashString(offset, u)
		}
		h = mix(h, sum)
	}
	return h
}

const (
	offset = 14695981039346656037
	prime  = 1099511628211
)

func hashString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * prime
	}
	// The length ends the string, so ("ab","c") and ("a","bc") differ.
	return mix(h, uint64(len(s)))
}

func mix(h, v uint64) uint64 {
	for range 8 {
		h = (h ^ (v & 0xff)) * prime
		v >>= 8
	}
	return h
}
