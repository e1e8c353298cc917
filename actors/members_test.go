package actors_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/actors/actorstest"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/membership"
	"github.com/tallyhq/tally/messages"
)

func addMembers(users ...string) *messages.Change {
	return &messages.Change{Op: messages.Op_OP_MEMBERS_ADD, Members: users}
}

func removeMembers(users ...string) *messages.Change {
	return &messages.Change{Op: messages.Op_OP_MEMBERS_REMOVE, Members: users}
}

func listAll(t testing.TB, n *actors.Node, group string, page uint32) []string {
	t.Helper()
	var all []string
	after := ""
	for {
		r, err := n.List(context.Background(), &messages.ListMembersRequest{GroupId: group, After: after, Limit: page})
		if err != nil {
			t.Fatalf("List(%s after %q) = %v", group, after, err)
		}
		all = append(all, r.GetUserIds()...)
		if r.GetNext() == "" {
			return all
		}
		after = r.GetNext()
	}
}

// hookCalls records the calls of Config.MembersChanged.
type hookCalls struct {
	mu    sync.Mutex
	calls [][]string
}

func (h *hookCalls) hook(_ context.Context, users []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, slices.Clone(users))
	return nil
}

func (h *hookCalls) got() [][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

func TestMembers(t *testing.T) {
	var hook hookCalls
	var index *membership.Index
	e := newEnv(t, func(c *actors.Config) { c.MembersChanged = hook.hook })
	ctx := context.Background()
	index, err := membership.Open(ctx, e.js, membership.Config{Replicas: 1, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	// A second node on the same journal, with the index, serves group g.
	n := startNode(t, e.journal, e.clock, e.pub, func(c *actors.Config) { c.MembersChanged, c.Index = hook.hook, index })

	// An open group: anyone calls it, its updates go to the open subject.
	change(t, n, "dave", "g", increase("k", 1))
	if r, err := n.Get(ctx, "dave", &messages.GetRequest{GroupId: "g"}); err != nil || r.GetMembers() {
		t.Fatalf("get of an open group = %v, %v; want no members flag", r, err)
	}

	if got := change(t, n, "", "g", addMembers("bob", "alice", "bob")); !slices.Equal(got.GetMembers(), []string{"alice", "bob"}) || got.GetSeq() != 2 {
		t.Errorf("add alice, bob, bob = %v, want seq 2 adding [alice bob]", got)
	}
	if got := change(t, n, "", "g", addMembers("bob", "carol")); !slices.Equal(got.GetMembers(), []string{"carol"}) {
		t.Errorf("add bob, carol added %q, want [carol]", got.GetMembers())
	}
	if got := change(t, n, "", "g", addMembers("carol")); len(got.GetMembers()) != 0 || got.GetSeq() != 0 {
		t.Errorf("add of a member = %v, want nothing added and no change", got)
	}
	ups := len(e.pub.updates())
	for name, cmd := range map[string]*messages.Change{
		"set": set(map[string]int64{"k": 5}), "increase": increase("k", 1), "decrease": decrease("k", 1),
	} {
		_, err := n.Change(ctx, "dave", "g", cmd)
		if !errors.Is(err, actors.ErrNotAllowed) || actors.Code(err) != messages.Code_CODE_NOT_ALLOWED || err.Error() != "not allowed: dave is not a member of group g" {
			t.Errorf("%s by a non-member = %v, want 10007", name, err)
		}
	}
	if _, err := n.Get(ctx, "dave", &messages.GetRequest{GroupId: "g"}); !errors.Is(err, actors.ErrNotAllowed) {
		t.Errorf("get by a non-member = %v, want ErrNotAllowed", err)
	}
	if got := len(e.pub.updates()); got != ups {
		t.Errorf("refused calls published %d updates", got-ups)
	}
	if got := change(t, n, "alice", "g", increase("k", 1)); got.GetValue() != 2 {
		t.Errorf("alice's increase = %v, want 2", got)
	}
	if r, err := n.Get(ctx, "alice", &messages.GetRequest{GroupId: "g"}); err != nil || !r.GetMembers() || r.GetCounters()["k"] != 2 {
		t.Errorf("alice's get = %v, %v; want k 2 and the members flag", r, err)
	}
	// Admins are never refused.
	change(t, n, "", "g", increase("k", 1))
	if subj := e.pub.subjects[len(e.pub.subjects)-1]; subj != "tally.v1.updates.g.members" {
		t.Errorf("updates of a group with members on %s", subj)
	}
	if got := listAll(t, n, "g", 2); !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Errorf("members = %q", got)
	}
	if groups, _ := index.GroupsOf(ctx, "carol"); !slices.Equal(groups, []string{"g"}) {
		t.Errorf("index: carol in %q, want [g]", groups)
	}

	if got := change(t, n, "", "g", removeMembers("alice", "bob", "carol", "zed")); !slices.Equal(got.GetMembers(), []string{"alice", "bob", "carol"}) {
		t.Errorf("remove of everyone removed %q", got.GetMembers())
	}
	if groups, _ := index.GroupsOf(ctx, "carol"); len(groups) != 0 {
		t.Errorf("index: carol still in %q", groups)
	}
	// No members left, and the group stays members-only.
	if _, err := n.Change(ctx, "alice", "g", increase("k", 1)); !errors.Is(err, actors.ErrNotAllowed) {
		t.Errorf("increase by a removed member = %v, want ErrNotAllowed", err)
	}
	if r, err := n.Get(ctx, "", &messages.GetRequest{GroupId: "g"}); err != nil || !r.GetMembers() {
		t.Errorf("get of a group whose members all left = %v, %v; want the members flag", r, err)
	}
	want := [][]string{{"alice", "bob"}, {"carol"}, {"alice", "bob", "carol"}}
	if diff := cmp.Diff(want, hook.got()); diff != "" {
		t.Errorf("MembersChanged calls (-want +got):\n%s", diff)
	}
	if _, err := n.Change(ctx, "alice", "g", addMembers("alice")); !errors.Is(err, actors.ErrNotAllowed) {
		t.Errorf("a user's members change = %v, want refused", err)
	}
}

// TestMembersAfterRestart: a group's members come back from the journal
// on a new node (a restart), from a snapshot after the actor stopped, and
// from a replay of the whole journal.
func TestMembersAfterRestart(t *testing.T) {
	e := newEnv(t, func(c *actors.Config) { c.ActorIdle, c.PassivateAfter = time.Millisecond, time.Hour })
	ctx := context.Background()
	var want []string
	for i := range 30 {
		var users []string
		for j := range 100 {
			users = append(users, fmt.Sprintf("u%04d", i*100+j))
		}
		change(t, e.node, "", "big", addMembers(users...))
		change(t, e.node, "", "big", increase("k", 1)) // events between the members changes
		want = append(want, users...)
	}
	change(t, e.node, "", "big", removeMembers("u0000", "u2999", "nobody"))
	want = want[1 : len(want)-1]
	change(t, e.node, "", "open", increase("k", 1))

	if got := listAll(t, e.node, "big", 1000); !slices.Equal(got, want) {
		t.Fatalf("live: %d members, want %d", len(got), len(want))
	}
	again := startNode(t, e.journal, e.clock, e.pub, nil)
	if got := listAll(t, again, "big", 1000); !slices.Equal(got, want) {
		t.Errorf("after a restart: %d members, want %d", len(got), len(want))
	}
	if _, err := again.Change(ctx, "u0000", "big", increase("k", 1)); !errors.Is(err, actors.ErrNotAllowed) {
		t.Errorf("removed member after a restart: %v", err)
	}
	change(t, again, "u1234", "big", increase("k", 1))
	_, members, err := actors.RebuildMembers(ctx, e.journal)
	if err != nil {
		t.Fatal(err)
	}
	if got := members["big"].All(); !slices.Equal(got, want) {
		t.Errorf("replay: %d members, want %d", len(got), len(want))
	}
	if members["open"].Len() != 0 {
		t.Errorf("replay: open group has %d members", members["open"].Len())
	}
}

// TestMembersRetries: an add and a remove retried with their request IDs
// get their first replies and change nothing, also after a restart; the
// index is written again and the hook told again; another request under
// the same ID is refused.
func TestMembersRetries(t *testing.T) {
	var hook hookCalls
	e := newEnv(t, func(c *actors.Config) { c.MembersChanged = hook.hook })
	ctx := context.Background()
	add := addMembers("alice", "bob")
	add.RequestId = "a1"
	first := change(t, e.node, "", "g", add)
	remove := removeMembers("bob")
	remove.RequestId = "r1"
	firstRemove := change(t, e.node, "", "g", remove)
	again := startNode(t, e.journal, e.clock, e.pub, func(c *actors.Config) { c.MembersChanged = hook.hook })
	if _, err := again.Recover(ctx, e.journal); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*actors.Node{e.node, again} {
		retry := addMembers("bob", "alice")
		retry.RequestId = "a1"
		if got := change(t, n, "", "g", retry); !cmp.Equal(got, first, protocmp.Transform(), protocmp.IgnoreFields(&messages.Change{}, "request_hash")) {
			t.Errorf("retried add = %v, want %v", got, first)
		}
		retry = removeMembers("bob")
		retry.RequestId = "r1"
		if got := change(t, n, "", "g", retry); !cmp.Equal(got, firstRemove, protocmp.Transform(), protocmp.IgnoreFields(&messages.Change{}, "request_hash")) {
			t.Errorf("retried remove = %v, want %v", got, firstRemove)
		}
		other := addMembers("carol")
		other.RequestId = "a1"
		if _, err := n.Change(ctx, "", "g", other); !errors.Is(err, actors.ErrInvalidParameter) {
			t.Errorf("another add under a1 = %v, want ErrInvalidParameter", err)
		}
	}
	if got := listAll(t, again, "g", 10); !slices.Equal(got, []string{"alice"}) {
		t.Errorf("members = %q, want [alice]", got)
	}
	want := [][]string{{"alice", "bob"}, {"bob"}, {"alice", "bob"}, {"bob"}, {"alice", "bob"}, {"bob"}}
	if diff := cmp.Diff(want, hook.got()); diff != "" {
		t.Errorf("MembersChanged calls (-want +got):\n%s", diff)
	}
}

// TestMembersRetryIndex: a retried add indexes only the users who are
// members now, and a retried remove unindexes only those who are not: bob
// removed after an add is not granted the group's updates again by the
// add's retry, nor is bob added back ungranted by the remove's retry.
func TestMembersRetryIndex(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	index, err := membership.Open(ctx, e.js, membership.Config{Replicas: 1, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, e.journal, e.clock, e.pub, func(c *actors.Config) { c.Index = index })
	indexed := func(when string, want []string) {
		t.Helper()
		if got, err := index.GroupsOf(ctx, "bob"); err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: bob's groups %q, %v; want %q", when, got, err, want)
		}
	}
	add, remove := addMembers("bob"), removeMembers("bob")
	add.RequestId, remove.RequestId = "a1", "r1"
	change(t, n, "", "g", add)
	change(t, n, "", "g", remove)
	change(t, n, "", "g", add)
	indexed("after the add's retry", nil)
	add2 := addMembers("bob")
	add2.RequestId = "a2"
	change(t, n, "", "g", add2)
	change(t, n, "", "g", remove)
	indexed("after the remove's retry", []string{"g"})
}

// TestMembersHookFails: when the users whose membership changed cannot be
// told (their connections closed), the change is answered ErrUnavailable,
// and its retry tells them.
func TestMembersHookFails(t *testing.T) {
	var calls atomic.Int32
	e := newEnv(t, func(c *actors.Config) {
		c.MembersChanged = func(context.Context, []string) error {
			if calls.Add(1) == 1 {
				return errors.New("no disconnect")
			}
			return nil
		}
	})
	add := addMembers("bob")
	add.RequestId = "a1"
	if _, err := e.node.Change(context.Background(), "", "g", add); !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("add whose users could not be told = %v, want ErrUnavailable", err)
	}
	change(t, e.node, "", "g", add)
	if got := calls.Load(); got != 2 {
		t.Errorf("hook called %d times, want 2 (the change, its retry)", got)
	}
}

func TestMembersValidation(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprint("u", i)
	}
	for name, cmd := range map[string]*messages.Change{
		"no users":  addMembers(),
		"101 users": addMembers(many...),
		"dot":       addMembers("a.b"),
		"space":     removeMembers("a b"),
		"star":      addMembers("*"),
		"33 bytes":  addMembers("123456789012345678901234567890123"),
		"empty":     addMembers(""),
	} {
		if _, err := e.node.Change(ctx, "", "g", cmd); !errors.Is(err, actors.ErrInvalidParameter) {
			t.Errorf("%s: %v, want ErrInvalidParameter", name, err)
		}
	}
	for name, req := range map[string]*messages.ListMembersRequest{
		"limit 1001": {GroupId: "g", Limit: 1001},
		"bad after":  {GroupId: "g", After: "a.b"},
	} {
		if _, err := e.node.List(ctx, req); !errors.Is(err, actors.ErrInvalidParameter) {
			t.Errorf("%s: %v, want ErrInvalidParameter", name, err)
		}
	}
	if _, err := e.node.List(ctx, &messages.ListMembersRequest{GroupId: "g.h"}); !errors.Is(err, actors.ErrInvalidGroupID) {
		t.Errorf("list of a bad group = %v", err)
	}
	if r := get(t, e.node, "g"); len(r) != 0 {
		t.Errorf("refused calls changed g: %v", r)
	}
}

// TestMembersAtScale: a group of 100,000 members, added 100 a call as the
// admin API allows, checked in a call, listed in pages and reloaded from
// the journal; and a user in 1,000 groups, whom the index gives all of.
func TestMembersAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("adds 100,000 members")
	}
	ctx := context.Background()
	e := newEnv(t, nil)
	index, err := membership.Open(ctx, e.js, membership.Config{Replicas: 1, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, e.journal, e.clock, e.pub, func(c *actors.Config) { c.Index = index })
	start := time.Now()
	for i := 0; i < 100_000; i += 100 {
		users := make([]string, 100)
		for j := range users {
			users[j] = fmt.Sprintf("user-%06d", i+j)
		}
		if got := change(t, n, "", "big", addMembers(users...)); len(got.GetMembers()) != 100 {
			t.Fatalf("add of 100 new members added %d", len(got.GetMembers()))
		}
	}
	t.Logf("100,000 members added in 1,000 calls in %v", time.Since(start))
	change(t, n, "user-054321", "big", increase("k", 1))
	if _, err := n.Change(ctx, "user-100000", "big", increase("k", 1)); !errors.Is(err, actors.ErrNotAllowed) {
		t.Errorf("a non-member of 100,000 = %v", err)
	}
	page, err := n.List(ctx, &messages.ListMembersRequest{GroupId: "big", After: "user-099990", Limit: 1000})
	if err != nil || len(page.GetUserIds()) != 9 || page.GetUserIds()[0] != "user-099991" || page.GetNext() != "" {
		t.Errorf("last page = %v, %v", page, err)
	}
	again := startNode(t, e.journal, e.clock, e.pub, nil)
	start = time.Now()
	change(t, again, "user-099999", "big", increase("k", 1))
	t.Logf("a group of 100,000 members loaded from the journal in %v", time.Since(start))
	if got := listAll(t, again, "big", 1000); len(got) != 100_000 {
		t.Errorf("reloaded: %d members", len(got))
	}

	for i := range 1000 {
		change(t, n, "", fmt.Sprintf("room-%d", i), addMembers("alice", "bob"))
	}
	start = time.Now()
	groups, err := index.GroupsOf(ctx, "alice")
	t.Logf("GroupsOf a user in 1,000 groups: %v", time.Since(start))
	if err != nil || len(groups) != 1000 {
		t.Errorf("GroupsOf(alice) = %d groups, %v; want 1000", len(groups), err)
	}
	if groups, _ := index.GroupsOf(ctx, "user-000007"); !slices.Equal(groups, []string{"big"}) {
		t.Errorf("GroupsOf(user-000007) = %q, want [big]", groups)
	}
}

// TestMembersNotKept: a group whose first members change the journal's
// per-group limit dropped is not served, rather than served without its
// members (which would open it to everyone).
func TestMembersNotKept(t *testing.T) {
	js := journaltest.JetStream(t, journaltest.Connect(t, journaltest.StartServer(t)))
	cfg := journal.DefaultConfig()
	cfg.KeepPerGroup = 3
	j, err := journal.Open(context.Background(), js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	clock := actorstest.NewFakeClock()
	n := startNode(t, j, clock, &recorder{}, nil)
	change(t, n, "", "g", addMembers("alice"))
	for range 3 {
		change(t, n, "alice", "g", increase("k", 1))
	}
	again := startNode(t, j, clock, &recorder{}, nil)
	_, err = again.Change(context.Background(), "mallory", "g", increase("k", 1))
	if !errors.Is(err, actors.ErrUnavailable) || !strings.Contains(err.Error(), "members are not known") {
		t.Errorf("a call on a group whose members change was dropped = %v, want ErrUnavailable naming the members", err)
	}
}
