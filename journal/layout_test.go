package journal_test

import (
	"testing"

	"github.com/tallyhq/tally/journal"
)

// TestLayoutNames: one shard is the contract's first layout, one stream
// on tally.journal.<group>; several put the shard before the group, and
// Group reads both.
func TestLayoutNames(t *testing.T) {
	one := journal.Layout{Stream: "TALLY_JOURNAL", Prefix: "tally.journal", Shards: 1}
	three := journal.Layout{Stream: "TALLY_JOURNAL", Prefix: "tally.journal", Shards: 3}
	tests := []struct {
		name         string
		layout       journal.Layout
		group        string
		stream, subj string
		shard        int
	}{
		{"one shard", one, "g1", "TALLY_JOURNAL", "tally.journal.g1", 0},
		{"one shard, hash sign", one, "@TGS#x", "TALLY_JOURNAL", "tally.journal.@TGS#x", 0},
		// partition 39 of 64 (as NATS's partition(64) computes it) is in shard 0
		{"three shards, alice", three, "alice", "TALLY_JOURNAL_0", "tally.journal.0.alice", 0},
		// partition 20: shard 2
		{"three shards, bob", three, "bob", "TALLY_JOURNAL_2", "tally.journal.2.bob", 2},
		// partition 40: shard 1
		{"three shards, hash sign", three, "@TGS#x", "TALLY_JOURNAL_1", "tally.journal.1.@TGS#x", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.layout.ShardOf(tt.group)
			if s != tt.shard {
				t.Errorf("ShardOf(%q) = %d, want %d", tt.group, s, tt.shard)
			}
			if got := tt.layout.StreamOf(s); got != tt.stream {
				t.Errorf("StreamOf(%d) = %q, want %q", s, got, tt.stream)
			}
			if got := tt.layout.Subject(tt.group); got != tt.subj {
				t.Errorf("Subject(%q) = %q, want %q", tt.group, got, tt.subj)
			}
			if got, ok := tt.layout.Group(tt.subj); !ok || got != tt.group {
				t.Errorf("Group(%q) = %q, %v; want %q, true", tt.subj, got, ok, tt.group)
			}
		})
	}
	for _, subj := range []string{"tally.journal", "tally.journal.", "tally.journal-probe", "tally.journal-probe.0", "tally.journal.0.", "tally.journal.x.g", "tally.journal.3.g", "tally.journal.g", "other.g"} {
		if got, ok := three.Group(subj); ok {
			t.Errorf("three shards: Group(%q) = %q, true; want false", subj, got)
		}
	}
	// A subject forged with a dot in the group is read as it is, so that
	// verify reports it.
	for _, l := range []journal.Layout{one, three} {
		subj := l.Subject("a") + ".b"
		if got, ok := l.Group(subj); !ok || got != "a.b" {
			t.Errorf("%d shards: Group(%q) = %q, %v; want a.b, true", l.Shards, subj, got, ok)
		}
	}
	if got := journal.PartitionOf("user-123456", 64); got != 50 {
		t.Errorf("PartitionOf(user-123456, 64) = %d, want 50 (NATS's partition(64))", got)
	}
	if got := three.ShardOfPartition(50); got != 2 {
		t.Errorf("ShardOfPartition(50) = %d, want 2", got)
	}
}
