package node

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/actors/actorstest"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
)

// checkedNode is a node of only its journal, on a clock of the test's, and
// its health, which the test checks by calling check itself: nothing runs
// in the background.
func checkedNode(t *testing.T, cfg Config, logger *slog.Logger) (*Node, *server.Server, jetstream.Stream, *actorstest.FakeClock) {
	t.Helper()
	ns := journaltest.StartServer(t)
	js := journaltest.JetStream(t, journaltest.Connect(t, ns))
	clock := actorstest.NewFakeClock()
	jcfg := journal.DefaultConfig()
	jcfg.Clock = clock
	j, err := journal.Open(context.Background(), js, jcfg)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(context.Background(), j.Layout().StreamOf(0))
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{cfg: cfg, log: logger, health: health{failed: make(chan struct{})}, journal: j}
	n.health.ready.Store(true) // as watch starts
	return n, ns, stream, clock
}

func lastSeq(t *testing.T, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// TestReadinessIgnoresWallClockSteps steps the wall clock forward and back
// an hour. A node whose journal took a write within readyFor stays ready
// without a probe; one whose journal then stops taking writes becomes
// unready once readyFor has passed, not an hour later.
func TestReadinessIgnoresWallClockSteps(t *testing.T) {
	n, _, stream, clock := checkedNode(t, DefaultConfig(), slog.New(slog.DiscardHandler))
	ctx := context.Background()
	n.check(ctx) // nothing stored yet: a probe
	if ok, why := n.Ready(); !ok {
		t.Fatalf("not ready after a probe: %s", why)
	}
	probed := lastSeq(t, stream)

	clock.SetWall(time.Hour)
	n.check(ctx)
	if ok, why := n.Ready(); !ok {
		t.Errorf("not ready right after a probe, the wall clock set forward an hour: %s", why)
	}
	if seq := lastSeq(t, stream); seq != probed {
		t.Errorf("the node probed again (stream sequence %d, then %d) right after a probe, the wall clock set forward an hour", probed, seq)
	}

	// The journal stops taking writes.
	if err := n.journal.JetStream().DeleteStream(ctx, stream.CachedInfo().Config.Name); err != nil {
		t.Fatal(err)
	}
	clock.SetWall(-2 * time.Hour)
	clock.Advance(readyFor)
	n.check(ctx)
	if ok, _ := n.Ready(); ok {
		t.Errorf("ready readyFor after the journal's last write, which it no longer takes, the wall clock set back an hour")
	}
}

// records keeps the records a logger handles.
type records struct {
	mu   sync.Mutex
	errs []string // the messages of the error records
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *records) WithGroup(string) slog.Handler            { return r }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelError {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.errs = append(r.errs, rec.Message)
	}
	return nil
}

// TestJetStreamDisabledWithoutExit disables JetStream on the node's
// embedded server, as nats-server does after a write fails for want of
// space, with --exit-unready-after 0: the node does not stop, it stays
// unready saying why, and it logs so at error level once.
func TestJetStreamDisabledWithoutExit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ExitUnreadyAfter = 0
	log := &records{}
	n, ns, _, _ := checkedNode(t, cfg, slog.New(log))
	n.ns = ns
	ctx := context.Background()
	n.check(ctx)
	if ok, why := n.Ready(); !ok {
		t.Fatalf("not ready before JetStream was disabled: %s", why)
	}
	if err := ns.ShutdownJetStream(); err != nil {
		t.Fatal(err)
	}
	n.check(ctx)
	n.check(ctx)
	select {
	case <-n.Done():
		t.Fatalf("the node stopped with --exit-unready-after 0: %v", n.Err())
	default:
	}
	if ok, why := n.Ready(); ok || why != ErrStorage.Error() {
		t.Errorf("Ready after JetStream was disabled = %v, %q; want false, %q", ok, why, ErrStorage)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.errs) != 1 {
		t.Errorf("error records = %q, want one", log.errs)
	}
}
