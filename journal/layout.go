package journal

import (
	"strconv"
	"strings"

	"github.com/tallyhq/tally/contract"
)

// Partitions is how many partitions group and user IDs hash into
// (PartitionOf). A shard holds whole partitions, so that a cluster's
// partition has its groups in one stream; it is the contract's, which the
// servers' subject mapping of users' calls uses too.
const Partitions = contract.Partitions

// MaxShards is the most shard streams a journal may have: one per
// partition.
const MaxShards = Partitions

// PartitionOf returns the partition of a group or user ID among n: the
// FNV-1a hash of the ID, modulo n. NATS's subject mapping function
// partition(n, token) computes the same.
func PartitionOf(id string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// Layout is how a journal's groups spread over its streams. With one
// shard it is one stream, Stream, on Prefix.<group>; with S > 1 it is S
// streams, Stream_<s> on Prefix.<s>.<group>, each holding the groups of
// the partitions p with p mod S = s. A group never changes stream, since
// its events name their predecessors by stream sequence.
type Layout struct {
	Stream string // the one stream's name, and the shard streams' stem
	Prefix string // the subjects' prefix, without the trailing dot
	Shards int
}

// StreamOf returns the name of shard s's stream.
func (l Layout) StreamOf(s int) string {
	if l.Shards <= 1 {
		return l.Stream
	}
	return l.Stream + "_" + strconv.Itoa(s)
}

// ShardOf returns the shard that holds group.
func (l Layout) ShardOf(group string) int {
	if l.Shards <= 1 {
		return 0
	}
	return PartitionOf(group, Partitions) % l.Shards
}

// ShardOfPartition returns the shard that holds partition p's groups.
func (l Layout) ShardOfPartition(p int) int {
	if l.Shards <= 1 {
		return 0
	}
	return p % l.Shards
}

// prefixOf is shard s's subject prefix, ending in a dot.
func (l Layout) prefixOf(s int) string {
	if l.Shards <= 1 {
		return l.Prefix + "."
	}
	return l.Prefix + "." + strconv.Itoa(s) + "."
}

// Subject returns the subject of group's events.
func (l Layout) Subject(group string) string { return l.prefixOf(l.ShardOf(group)) + group }

// probeSubject is shard s's probe subject, which is no group's.
func (l Layout) probeSubject(s int) string {
	if l.Shards <= 1 {
		return l.Prefix + "-probe"
	}
	return l.Prefix + "-probe." + strconv.Itoa(s)
}

// Group returns the group of a subject of the layout's streams, and false
// for a subject outside them. A group ID has no dot, but a stream may hold
// a subject that a writer other than tally forged with one: Group returns
// it as it is, for verify to report.
func (l Layout) Group(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, l.Prefix+".")
	if !ok || rest == "" {
		return "", false
	}
	if l.Shards <= 1 {
		return rest, true
	}
	shard, group, ok := strings.Cut(rest, ".")
	if s, err := strconv.Atoi(shard); !ok || err != nil || s < 0 || s >= l.Shards || group == "" {
		return "", false
	}
	return group, true
}

func (l Layout) String() string { return l.describe("") }

// describe is String with more said inside its parentheses.
func (l Layout) describe(more string) string {
	if l.Shards <= 1 {
		return l.Stream + " (" + l.Prefix + ".<group>" + more + ")"
	}
	return l.StreamOf(0) + ".." + strconv.Itoa(l.Shards-1) + " (" + l.Prefix + ".<shard>.<group>, " + strconv.Itoa(l.Shards) + " shards" + more + ")"
}
