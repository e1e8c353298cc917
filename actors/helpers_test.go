package actors_test

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/actors/actorstest"
	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

// recorder is a Publisher that keeps every update, and their subjects.
type recorder struct {
	mu       sync.Mutex
	ups      []*messages.Update
	subjects []string
}

func (r *recorder) Subject(group string, members bool) string {
	return contract.UpdatesSubject("tally.v1", group, members)
}

func (r *recorder) Wants(string) bool { return true }

func (r *recorder) Publish(subject string, ups []*messages.Update) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ups = append(r.ups, ups...)
	r.subjects = append(r.subjects, subject)
}

func (r *recorder) updates() []*messages.Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*messages.Update(nil), r.ups...)
}

// countingJournal counts the loads of each group on a real journal.
type countingJournal struct {
	*journal.Journal
	mu      sync.Mutex
	loads   map[string]int
	appends atomic.Int64
}

func (c *countingJournal) Last(ctx context.Context, group string) (*messages.Event, uint64, error) {
	c.mu.Lock()
	c.loads[group]++
	c.mu.Unlock()
	return c.Journal.Last(ctx, group)
}

func (c *countingJournal) AppendAsync(group string, expected uint64, ev *messages.Event, done func(uint64, error)) {
	c.appends.Add(1)
	c.Journal.AppendAsync(group, expected, ev, done)
}

func (c *countingJournal) Loads(group string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loads[group]
}

type env struct {
	js      jetstream.JetStream
	journal *countingJournal
	clock   *actorstest.FakeClock
	pub     *recorder
	node    *actors.Node
}

// openJournal opens a journal of the default configuration on js.
func openJournal(t testing.TB, js jetstream.JetStream) *journal.Journal {
	t.Helper()
	j, err := journal.Open(context.Background(), js, journal.DefaultConfig())
	if err != nil {
		t.Fatalf("journal.Open: %v", err)
	}
	return j
}

// newEnv starts a NATS server, a journal on it and a node; modify adjusts
// the node's configuration.
func newEnv(t testing.TB, modify func(*actors.Config)) *env {
	t.Helper()
	js := journaltest.JetStream(t, journaltest.Connect(t, journaltest.StartServer(t)))
	j := openJournal(t, js)
	e := &env{js: js, journal: &countingJournal{Journal: j, loads: map[string]int{}}, clock: actorstest.NewFakeClock(), pub: &recorder{}}
	e.node = startNode(t, e.journal, e.clock, e.pub, modify)
	return e
}

func startNode(t testing.TB, j actors.Journal, clock actors.Clock, pub actors.Publisher, modify func(*actors.Config)) *actors.Node {
	t.Helper()
	cfg := actors.DefaultConfig()
	cfg.Journal, cfg.Clock, cfg.Publisher = j, clock, pub
	cfg.Logger = slog.New(slog.DiscardHandler)
	if modify != nil {
		modify(&cfg)
	}
	n, err := actors.Start(cfg)
	if err != nil {
		t.Fatalf("actors.Start: %v", err)
	}
	t.Cleanup(n.Stop)
	return n
}

func set(counters map[string]int64) *messages.Change {
	return &messages.Change{Op: messages.Op_OP_SET, Counters: counters}
}

func increase(key string, by int64) *messages.Change {
	return &messages.Change{Op: messages.Op_OP_INCREASE, Key: key, Amount: by}
}

func decrease(key string, by int64) *messages.Change {
	return &messages.Change{Op: messages.Op_OP_DECREASE, Key: key, Amount: by}
}

func get(t testing.TB, n *actors.Node, group string, keys ...string) map[string]int64 {
	t.Helper()
	r, err := n.Get(context.Background(), "", &messages.GetRequest{GroupId: group, KeyList: keys})
	if err != nil {
		t.Fatalf("Get(%s, %v) = %v", group, keys, err)
	}
	return r.GetCounters()
}

func change(t testing.TB, n *actors.Node, user, group string, c *messages.Change) *messages.Change {
	t.Helper()
	r, err := n.Change(context.Background(), user, group, c)
	if err != nil {
		t.Fatalf("Change(%s, %s, %v) = %v", user, group, c, err)
	}
	return r
}
