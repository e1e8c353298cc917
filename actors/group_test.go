package actors_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

// TestSeedExamples runs the examples of Tencent's group counter API.
func TestSeedExamples(t *testing.T) {
	e := newEnv(t, nil)
	n := e.node

	got := change(t, n, "alice", "group1", set(map[string]int64{"key1": 0, "key2": 0}))
	if diff := cmp.Diff(map[string]int64{"key1": 0, "key2": 0}, got.GetCounters()); diff != "" {
		t.Errorf("set reply (-want +got):\n%s", diff)
	}
	change(t, n, "alice", "group1", set(map[string]int64{"key1": 8}))
	if v := change(t, n, "alice", "group1", increase("key1", 2)).GetValue(); v != 10 {
		t.Errorf("key1 at 8, increase 2 = %d, want 10", v)
	}
	change(t, n, "alice", "group1", set(map[string]int64{"key1": 8}))
	if v := change(t, n, "alice", "group1", decrease("key1", 2)).GetValue(); v != 6 {
		t.Errorf("key1 at 8, decrease 2 = %d, want 6", v)
	}
	if diff := cmp.Diff(map[string]int64{"key1": 6, "key2": 0}, get(t, n, "group1", "key1", "key2")); diff != "" {
		t.Errorf("get [key1 key2] (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int64{"key1": 6}, get(t, n, "group1", "key1", "absent")); diff != "" {
		t.Errorf("get [key1 absent] (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int64{"key1": 6, "key2": 0}, get(t, n, "group1")); diff != "" {
		t.Errorf("get all (-want +got):\n%s", diff)
	}

	want := []*messages.Update{
		{GroupId: "group1", Key: "key1", Value: 0, Seq: 1},
		{GroupId: "group1", Key: "key2", Value: 0, Seq: 1},
		{GroupId: "group1", Key: "key1", Value: 8, Seq: 2},
		{GroupId: "group1", Key: "key1", Value: 10, Seq: 3},
		{GroupId: "group1", Key: "key1", Value: 8, Seq: 4},
		{GroupId: "group1", Key: "key1", Value: 6, Seq: 5},
	}
	if diff := cmp.Diff(want, e.pub.updates(), protocmp.Transform()); diff != "" {
		t.Errorf("updates (-want +got):\n%s", diff)
	}
}

func TestRefusedCommandsChangeNothing(t *testing.T) {
	e := newEnv(t, nil)
	n := e.node
	ctx := context.Background()
	full := map[string]int64{}
	for i := range actors.MaxKeys - 1 {
		full[fmt.Sprintf("k%02d", i)] = 0
	}
	full["max"] = math.MaxInt64 - 1
	change(t, n, "", "g", set(full))
	change(t, n, "", "min", set(map[string]int64{"min": math.MinInt64 + 1}))
	before := e.pub.updates()

	tests := []struct {
		name  string
		group string
		cmd   *messages.Change
		want  error
	}{
		{"21st key by set", "g", set(map[string]int64{"new": 1}), actors.ErrInvalidParameter},
		{"21st key by increase", "g", increase("new", 1), actors.ErrInvalidParameter},
		{"21st key by decrease", "g", decrease("new", 1), actors.ErrInvalidParameter},
		{"increase past MaxInt64", "g", increase("max", 2), actors.ErrInvalidParameter},
		{"increase by MaxInt64 past it", "g", increase("max", math.MaxInt64), actors.ErrInvalidParameter},
		{"decrease below MinInt64", "min", decrease("min", 2), actors.ErrInvalidParameter},
		{"negative amount", "g", increase("max", -1), actors.ErrInvalidParameter},
		{"empty set", "g", set(map[string]int64{}), actors.ErrInvalidParameter},
		{"set of 21 keys", "other", set(keys(21)), actors.ErrInvalidParameter},
		{"129-byte key", "g", increase(strings.Repeat("k", 129), 1), actors.ErrInvalidParameter},
		{"empty key", "g", increase("", 1), actors.ErrInvalidParameter},
		{"control character in key", "g", increase("a\nb", 1), actors.ErrInvalidParameter},
		{"invalid UTF-8 key", "g", increase("a\xffb", 1), actors.ErrInvalidParameter},
		{"65-byte request ID", "g", &messages.Change{Op: messages.Op_OP_INCREASE, Key: "max", RequestId: strings.Repeat("r", 65)}, actors.ErrInvalidParameter},
		{"empty group ID", "", increase("k", 1), actors.ErrInvalidGroupID},
		{"49-byte group ID", strings.Repeat("g", 49), increase("k", 1), actors.ErrInvalidGroupID},
		{"group ID with a dot", "a.b", increase("k", 1), actors.ErrInvalidGroupID},
		{"group ID with a space", "a b", increase("k", 1), actors.ErrInvalidGroupID},
		{"group ID with a wildcard", "a*", increase("k", 1), actors.ErrInvalidGroupID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := n.Change(ctx, "", tt.group, tt.cmd)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Change = %v, want %v", err, tt.want)
			}
			if got := actors.Code(err); got != actors.Code(tt.want) {
				t.Errorf("Code = %v, want %v", got, actors.Code(tt.want))
			}
		})
	}
	t.Run("user IDs", func(t *testing.T) {
		for _, user := range []string{strings.Repeat("u", 33), "a.b", "a>", "a b", "é"} {
			_, err := n.Change(ctx, user, "g", increase("max", 1))
			if !errors.Is(err, actors.ErrInvalidParameter) {
				t.Errorf("Change as %q = %v, want ErrInvalidParameter", user, err)
			}
		}
	})

	if diff := cmp.Diff(full, get(t, n, "g")); diff != "" {
		t.Errorf("refused commands changed g (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, e.pub.updates(), protocmp.Transform()); diff != "" {
		t.Errorf("refused commands published (-before +after):\n%s", diff)
	}
	// The limits are inclusive: MaxInt64 itself and the 20th key are fine.
	if v := change(t, n, "", "g", increase("max", 1)).GetValue(); v != math.MaxInt64 {
		t.Errorf("increase to MaxInt64 = %d", v)
	}
	if v := change(t, n, "", "min", decrease("min", 1)).GetValue(); v != math.MinInt64 {
		t.Errorf("decrease to MinInt64 = %d", v)
	}
	change(t, n, "", "g", set(map[string]int64{"k00": 5})) // a full group may still set its keys
}

func keys(n int) map[string]int64 {
	m := map[string]int64{}
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = int64(i)
	}
	return m
}

func TestDelete(t *testing.T) {
	e := newEnv(t, nil)
	n := e.node
	change(t, n, "", "g", set(map[string]int64{"a": 1, "b": 2, "c": 3}))
	got := change(t, n, "", "g", &messages.Change{Op: messages.Op_OP_DELETE, Keys: []string{"b", "absent", "b"}})
	if diff := cmp.Diff([]string{"b"}, got.GetKeys()); diff != "" {
		t.Errorf("deleted keys (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int64{"a": 1, "c": 3}, get(t, n, "g")); diff != "" {
		t.Errorf("after delete b (-want +got):\n%s", diff)
	}
	change(t, n, "", "g", &messages.Change{Op: messages.Op_OP_DELETE})
	if got := get(t, n, "g"); len(got) != 0 {
		t.Errorf("after delete all = %v, want none", got)
	}
	if nothing := change(t, n, "", "g", &messages.Change{Op: messages.Op_OP_DELETE}); nothing.GetSeq() != 0 {
		t.Errorf("delete of nothing made change %d, want none", nothing.GetSeq())
	}
	want := []*messages.Update{
		{GroupId: "g", Key: "a", Value: 1, Seq: 1},
		{GroupId: "g", Key: "b", Value: 2, Seq: 1},
		{GroupId: "g", Key: "c", Value: 3, Seq: 1},
		{GroupId: "g", Key: "b", Seq: 2, Deleted: true},
		{GroupId: "g", Key: "a", Seq: 3, Deleted: true},
		{GroupId: "g", Key: "c", Seq: 3, Deleted: true},
	}
	if diff := cmp.Diff(want, e.pub.updates(), protocmp.Transform()); diff != "" {
		t.Errorf("updates (-want +got):\n%s", diff)
	}
}

// TestIdempotentWrites sends writes twice with one request ID: they change
// once and both replies are equal, also when the group passivated between
// the two and when the first is still pending.
func TestIdempotentWrites(t *testing.T) {
	e := newEnv(t, func(c *actors.Config) { c.PassivateAfter = 50 * time.Millisecond })
	n := e.node
	inc := func(id string) *messages.Change {
		return &messages.Change{Op: messages.Op_OP_INCREASE, Key: "k", Amount: 5, RequestId: id}
	}
	first := change(t, n, "", "g", inc("r1"))
	second := change(t, n, "", "g", inc("r1"))
	if diff := cmp.Diff(first, second, protocmp.Transform()); diff != "" {
		t.Errorf("replies differ (-first +second):\n%s", diff)
	}
	if v := get(t, n, "g")["k"]; v != 5 {
		t.Errorf("k = %d after one write sent twice, want 5", v)
	}

	t.Run("after passivation", func(t *testing.T) {
		loads := e.journal.Loads("g")
		journaltest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
			if n.Remembered("g") {
				return errors.New("group g still in memory")
			}
			return nil
		})
		again := change(t, n, "", "g", inc("r1"))
		if diff := cmp.Diff(first, again, protocmp.Transform()); diff != "" {
			t.Errorf("reply after passivation differs (-first +again):\n%s", diff)
		}
		if got := e.journal.Loads("g"); got != loads+1 {
			t.Errorf("group loaded %d times more, want 1 (a reactivation)", got-loads)
		}
		if v := get(t, n, "g")["k"]; v != 5 {
			t.Errorf("k = %d after a retry across passivation, want 5", v)
		}
	})

	t.Run("concurrent duplicates", func(t *testing.T) {
		var wg sync.WaitGroup
		replies := make([]*messages.Change, 10)
		for i := range replies {
			wg.Go(func() { replies[i] = change(t, n, "", "h", inc("r2")) })
		}
		wg.Wait()
		for i, r := range replies {
			if diff := cmp.Diff(replies[0], r, protocmp.Transform()); diff != "" {
				t.Errorf("reply %d differs (-0 +%d):\n%s", i, i, diff)
			}
		}
		if v := get(t, n, "h")["k"]; v != 5 {
			t.Errorf("k = %d after ten copies of one write, want 5", v)
		}
	})

	t.Run("window expired", func(t *testing.T) {
		e.clock.Advance(actors.DefaultConfig().DedupeWindow + time.Second)
		if v := change(t, n, "", "g", inc("r1")).GetValue(); v != 10 {
			t.Errorf("write after the dedupe window = %d, want 10 (applied again)", v)
		}
	})
}

// TestConcurrentIncrements: 20 callers x 100 increments on one key.
func TestConcurrentIncrements(t *testing.T) {
	e := newEnv(t, nil)
	const callers, each = 20, 100
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range each {
				if _, err := e.node.Change(context.Background(), "", "hot", increase("likes", 1)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if v := get(t, e.node, "hot")["likes"]; v != callers*each {
		t.Errorf("likes = %d, want %d", v, callers*each)
	}
	ups := e.pub.updates()
	if len(ups) != callers*each {
		t.Fatalf("%d updates, want %d", len(ups), callers*each)
	}
	for i, u := range ups {
		if u.GetSeq() != uint64(i+1) || u.GetValue() != int64(i+1) {
			t.Fatalf("update %d = seq %d value %d, want %d and %d", i, u.GetSeq(), u.GetValue(), i+1, i+1)
		}
	}
	appends := e.journal.appends.Load()
	if appends >= callers*each {
		t.Errorf("%d appends for %d increments: no group commit", appends, callers*each)
	}
	t.Logf("%d increments in %d appends", callers*each, appends)
}

// TestReplayRebuildsLiveState writes at random to 1,000 groups and checks
// that replaying the journal gives every group's live state.
func TestReplayRebuildsLiveState(t *testing.T) {
	e := newEnv(t, nil)
	const groups = 1000
	ctx := context.Background()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range 600 {
				g := fmt.Sprintf("room-%d", rng.IntN(groups))
				k := fmt.Sprintf("k%d", rng.IntN(4))
				var cmd *messages.Change
				switch rng.IntN(10) {
				case 0:
					cmd = set(map[string]int64{k: rng.Int64N(100), "total": rng.Int64N(100)})
				case 1:
					cmd = &messages.Change{Op: messages.Op_OP_DELETE, Keys: []string{k}}
				case 2, 3:
					cmd = decrease(k, rng.Int64N(10))
				default:
					cmd = increase(k, rng.Int64N(10))
				}
				if _, err := e.node.Change(ctx, "", g, cmd); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d writes failed", f)
	}
	for i := range groups {
		g := fmt.Sprintf("room-%d", i)
		change(t, e.node, "", g, increase("touched", 1))
	}
	rebuilt, err := actors.Rebuild(ctx, e.journal)
	if err != nil {
		t.Fatalf("Rebuild = %v", err)
	}
	if len(rebuilt) != groups {
		t.Errorf("rebuilt %d groups, want %d", len(rebuilt), groups)
	}
	for g, st := range rebuilt {
		if diff := cmp.Diff(get(t, e.node, g), st.GetCounters()); diff != "" {
			t.Errorf("group %s: replay differs from live state (-live +replay):\n%s", g, diff)
		}
	}
}

// TestRetriesAfterARestart writes 300 changes with request IDs, then 3,000
// more on the same group, and retries the 300 on a new node on the same
// journal (a restart): each gets its first reply and changes nothing. A
// retry that is another request under a used ID is refused with 10004.
func TestRetriesAfterARestart(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	ops := []func(i int) *messages.Change{
		func(i int) *messages.Change { return increase("k", int64(i+1)) },
		func(i int) *messages.Change { return decrease("k", int64(i)) },
		func(i int) *messages.Change { return set(map[string]int64{"s": int64(i), "t": -int64(i)}) },
	}
	first := make([]*messages.Change, 300)
	cmds := make([]*messages.Change, 300)
	for i := range cmds {
		cmds[i] = ops[i%3](i)
		cmds[i].RequestId = fmt.Sprintf("r%d", i)
		first[i] = change(t, e.node, "", "g", cmds[i])
	}
	for range 3000 {
		change(t, e.node, "", "g", increase("later", 1))
	}
	before := get(t, e.node, "g")
	e.node.Stop()

	again := startNode(t, e.journal, e.clock, e.pub, nil)
	if n, err := again.Recover(ctx, e.journal); err != nil || n != 300 {
		t.Fatalf("Recover = %d, %v; want the 300 request IDs", n, err)
	}
	for i, c := range cmds {
		retry := proto.Clone(c).(*messages.Change)
		got := change(t, again, "", "g", retry)
		if diff := cmp.Diff(first[i], got, protocmp.Transform()); diff != "" {
			t.Errorf("retry of %s differs (-first +retry):\n%s", c.GetRequestId(), diff)
		}
	}
	if got := get(t, again, "g"); !cmp.Equal(got, before) {
		t.Errorf("after the retries g = %v, want %v", got, before)
	}
	for _, other := range []*messages.Change{increase("k", 999), increase("other", 1), set(map[string]int64{"s": 1}), {Op: messages.Op_OP_DELETE}} {
		other.RequestId = "r0"
		if _, err := again.Change(ctx, "", "g", other); !errors.Is(err, actors.ErrInvalidParameter) || !strings.Contains(err.Error(), "another request") {
			t.Errorf("another request under r0 (%v): %v, want ErrInvalidParameter", other, err)
		}
	}
	if got := get(t, again, "g"); !cmp.Equal(got, before) {
		t.Errorf("after the reused IDs g = %v, want %v", got, before)
	}
}

// TestReusedIDWhilePending sends another request under the request ID of
// one still pending: it is refused, and the first is applied once.
func TestReusedIDWhilePending(t *testing.T) {
	e := newEnv(t, nil)
	done := make(chan error, 2)
	a, b := increase("k", 1), increase("k", 2)
	a.RequestId, b.RequestId = "same", "same"
	// Both are sent before either is answered; the group sees them in
	// order, the second while the first is pending or after it.
	e.node.SubmitChange("", "g", a, actors.ReplyFunc(func(_ proto.Message, err error) { done <- err }))
	e.node.SubmitChange("", "g", b, actors.ReplyFunc(func(_ proto.Message, err error) { done <- err }))
	ok, refused := 0, 0
	for range 2 {
		switch err := <-done; {
		case err == nil:
			ok++
		case errors.Is(err, actors.ErrInvalidParameter):
			refused++
		default:
			t.Error(err)
		}
	}
	if ok != 1 || refused != 1 {
		t.Errorf("%d applied and %d refused, want 1 and 1", ok, refused)
	}
	if v := get(t, e.node, "g")["k"]; v != 1 {
		t.Errorf("k = %d, want 1", v)
	}
}

// TestRequestIDsAreScopedByUser writes under one request ID as alice, bob
// and a trusted back end: each is its own write, also while another's is
// pending and after a restart, and each user's retry gets its own first
// reply.
func TestRequestIDsAreScopedByUser(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	inc := func(by int64) *messages.Change {
		c := increase("k", by)
		c.RequestId = "same"
		return c
	}
	// In flight together: none is taken for a copy of another.
	done := make(chan error, 3)
	for i, user := range []string{"alice", "bob", ""} {
		e.node.SubmitChange(user, "g", inc(int64(i+1)), actors.ReplyFunc(func(_ proto.Message, err error) { done <- err }))
	}
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if v := get(t, e.node, "g")["k"]; v != 6 {
		t.Fatalf("k = %d after alice's 1, bob's 2 and the back end's 3 under one ID, want 6", v)
	}
	// Their retries, now and after a restart, change nothing; another
	// request under one's own ID is refused.
	check := func(t *testing.T, n *actors.Node) {
		t.Helper()
		for i, user := range []string{"alice", "bob", ""} {
			if _, err := n.Change(ctx, user, "g", inc(int64(i+1))); err != nil {
				t.Errorf("retry by %q: %v", user, err)
			}
			if _, err := n.Change(ctx, user, "g", inc(10)); !errors.Is(err, actors.ErrInvalidParameter) {
				t.Errorf("another request under %q's ID: %v, want ErrInvalidParameter", user, err)
			}
		}
		if v := get(t, n, "g")["k"]; v != 6 {
			t.Errorf("k = %d after the retries, want 6", v)
		}
	}
	check(t, e.node)
	e.node.Stop()
	again := startNode(t, e.journal, e.clock, e.pub, nil)
	if n, err := again.Recover(ctx, e.journal); err != nil || n != 3 {
		t.Fatalf("Recover = %d, %v; want 3 request IDs", n, err)
	}
	check(t, again)
	// A user not seen before writes under the ID as its own.
	if got := change(t, again, "carol", "g", inc(4)); got.GetValue() != 10 {
		t.Errorf("carol's write under a used ID = %d, want 10", got.GetValue())
	}
}
