package membership_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/membership"
)

func openIndex(tb testing.TB) *membership.Index {
	tb.Helper()
	js := journaltest.JetStream(tb, journaltest.Connect(tb, journaltest.StartServer(tb)))
	x, err := membership.Open(context.Background(), js, membership.Config{Replicas: 1, Storage: jetstream.MemoryStorage})
	if err != nil {
		tb.Fatal(err)
	}
	return x
}

func TestIndex(t *testing.T) {
	ctx := context.Background()
	x := openIndex(t)
	// IDs with the contract's odd characters, and one that is another's
	// escape, stay apart.
	groups := []string{"@TGS#2abc", "g=40", "g@", "room-1", "a_b"}
	for _, g := range groups {
		if err := x.Add(ctx, g, []string{"alice", "bob#1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Add(ctx, "other", []string{"bob#1"}); err != nil {
		t.Fatal(err)
	}
	if err := x.Remove(ctx, "g@", []string{"alice", "nobody"}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		user string
		want []string
	}{
		{"alice", []string{"@TGS#2abc", "a_b", "g=40", "room-1"}},
		{"bob#1", []string{"@TGS#2abc", "a_b", "g=40", "g@", "other", "room-1"}},
		{"bob", nil},
		{"carol", nil},
	} {
		got, err := x.GroupsOf(ctx, tt.user)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("GroupsOf(%q) = %q, want %q", tt.user, got, tt.want)
		}
	}
}

// TestIndexThousandGroups: a user in 1,000 groups (of 1,000 users in a
// bucket of 11,000 keys) gets all of them.
func TestIndexThousandGroups(t *testing.T) {
	ctx := context.Background()
	x := openIndex(t)
	for i := range 1000 {
		users := []string{"alice"}
		if i < 10 {
			for j := range 1000 {
				users = append(users, fmt.Sprintf("u%d", j))
			}
		}
		if err := x.Add(ctx, fmt.Sprintf("group-%d", i), users); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	got, err := x.GroupsOf(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("GroupsOf of a user in 1,000 groups took %v", time.Since(start))
	if len(got) != 1000 {
		t.Fatalf("GroupsOf(alice) = %d groups, want 1000", len(got))
	}
	got, err = x.GroupsOf(ctx, "u7")
	if err != nil || len(got) != 10 {
		t.Fatalf("GroupsOf(u7) = %d groups, %v, want 10", len(got), err)
	}
}

// BenchmarkGroupsOf measures a sign-in's lookup of a user in 1,000 groups.
func BenchmarkGroupsOf(b *testing.B) {
	ctx := context.Background()
	x := openIndex(b)
	for i := range 1000 {
		if err := x.Add(ctx, fmt.Sprintf("group-%d", i), []string{"alice", "bob"}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		got, err := x.GroupsOf(ctx, "alice")
		if err != nil || len(got) != 1000 {
			b.Fatalf("GroupsOf = %d, %v", len(got), err)
		}
	}
}
