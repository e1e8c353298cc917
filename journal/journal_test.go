package journal_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

var streams atomic.Int64

// opener opens a fresh journal (its own stream and subjects) on js per test.
func opener(js jetstream.JetStream, cfg journal.Config) journaltest.Opener {
	return func(tb testing.TB) *journal.Journal {
		tb.Helper()
		n := streams.Add(1)
		cfg.Stream = fmt.Sprintf("TEST_%d", n)
		cfg.SubjectPrefix = fmt.Sprintf("test%d.journal", n)
		j, err := journal.Open(context.Background(), js, cfg)
		if err != nil {
			tb.Fatalf("Open: %v", err)
		}
		return j
	}
}

func TestFileJournal(t *testing.T) {
	js := journaltest.JetStream(t, journaltest.Connect(t, journaltest.StartServer(t)))
	journaltest.Run(t, opener(js, journal.DefaultConfig()))
}

func TestMemoryJournal(t *testing.T) {
	js := journaltest.JetStream(t, journaltest.Connect(t, journaltest.StartServer(t)))
	cfg := journal.DefaultConfig()
	cfg.Storage = jetstream.MemoryStorage
	journaltest.Run(t, opener(js, cfg))
}

// TestReplicatedJournal runs the suite on three clustered servers, where a
// stale append is refused with 10164 rather than 10071.
func TestReplicatedJournal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	servers := journaltest.StartCluster(t, 3)
	js := journaltest.JetStream(t, journaltest.Connect(t, servers[1]))
	cfg := journal.DefaultConfig()
	cfg.Replicas = 3
	journaltest.Run(t, opener(js, cfg))
}

// TestReplicatedJournalResending runs the suite on three clustered servers
// with appends resent after a millisecond without an acknowledgement: most
// are sent twice or more, and each must still be stored once, fenced.
func TestReplicatedJournalResending(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	servers := journaltest.StartCluster(t, 3)
	js := journaltest.JetStream(t, journaltest.Connect(t, servers[0]))
	cfg := journal.DefaultConfig()
	cfg.Replicas, cfg.Resend = 3, time.Millisecond
	journaltest.Run(t, opener(js, cfg))
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*journal.Config)
		ok     bool
	}{
		{"default", func(*journal.Config) {}, true},
		{"empty stream", func(c *journal.Config) { c.Stream = "" }, false},
		{"dotted stream", func(c *journal.Config) { c.Stream = "a.b" }, false},
		{"wildcard prefix", func(c *journal.Config) { c.SubjectPrefix = "a.*" }, false},
		{"no replicas", func(c *journal.Config) { c.Replicas = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := journal.DefaultConfig()
			tt.modify(&cfg)
			if err := cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestSyncedJournal runs the suite with appends synced to disk in batches.
func TestSyncedJournal(t *testing.T) {
	if !journal.HasSyncer {
		t.Skip("no syncfs(2) on this system")
	}
	dir := t.TempDir()
	js := journaltest.JetStream(t, journaltest.Connect(t, journaltest.StartServerIn(t, dir)))
	s, err := journal.NewSyncer(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	cfg := journal.DefaultConfig()
	cfg.Syncer = s
	journaltest.Run(t, opener(js, cfg))

	t.Run("ConcurrentAppendsShareSyncs", func(t *testing.T) {
		j := opener(js, cfg)(t)
		before := s.Syncs()
		const n = 500
		var wg sync.WaitGroup
		var failed atomic.Int64
		for i := range n {
			wg.Add(1)
			j.AppendAsync(fmt.Sprintf("g%d", i), 0, &messages.Event{}, func(seq uint64, err error) {
				defer wg.Done()
				if err != nil || seq == 0 {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		syncs := s.Syncs() - before
		if failed.Load() > 0 {
			t.Errorf("%d of %d appends failed", failed.Load(), n)
		}
		if syncs == 0 || syncs >= n {
			t.Errorf("%d appends made %d syncs, want at least 1 and fewer than %d", n, syncs, n)
		}
		t.Logf("%d appends, %d syncs", n, syncs)
	})

	// A callback runs its group's actor, which takes time: the next flush
	// must not wait for it.
	t.Run("SlowCallbackHoldsNoFlush", func(t *testing.T) {
		j := opener(js, cfg)(t)
		release := make(chan struct{})
		var once sync.Once
		free := func() { once.Do(func() { close(release) }) }
		defer free() // also when the test fails, so that the syncer can stop
		first := make(chan struct{})
		j.AppendAsync("slow1", 0, &messages.Event{}, func(uint64, error) {
			close(first)
			<-release
		})
		<-first // its flush is done, and its callback holds the goroutine
		before := s.Syncs()
		second := make(chan error, 1)
		j.AppendAsync("slow2", 0, &messages.Event{}, func(_ uint64, err error) { second <- err })
		journaltest.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
			if s.Syncs() == before {
				return errors.New("no flush while a callback runs")
			}
			return nil
		})
		free()
		if err := <-second; err != nil {
			t.Errorf("second append = %v", err)
		}
	})
}

// TestAppendTimesOut: an append whose acknowledgement never comes fails
// with ErrTimeout; one pending when the journal closes fails at once, and
// appends after Close fail with ErrClosed.
func TestAppendTimesOut(t *testing.T) {
	nc := journaltest.Connect(t, journaltest.StartServer(t))
	js := journaltest.JetStream(t, nc)
	cfg := journal.DefaultConfig()
	cfg.AckTimeout = 50 * time.Millisecond
	j, err := journal.Open(context.Background(), js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Without its stream, appends reach only this subscriber, which never
	// answers: no acknowledgement, and no "no responders" either.
	if err := js.DeleteStream(context.Background(), cfg.Stream); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe(cfg.SubjectPrefix+".>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	append := func() <-chan error {
		done := make(chan error, 1)
		j.AppendAsync("g", 0, &messages.Event{}, func(_ uint64, err error) { done <- err })
		return done
	}
	start := time.Now()
	if err := <-append(); !errors.Is(err, journal.ErrTimeout) {
		t.Fatalf("unacknowledged append = %v, want ErrTimeout", err)
	}
	if waited := time.Since(start); waited < cfg.AckTimeout {
		t.Errorf("timed out after %v, before the ack timeout %v", waited, cfg.AckTimeout)
	}

	cfg.AckTimeout = time.Hour
	j, err = journal.Open(context.Background(), js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(context.Background(), cfg.Stream); err != nil {
		t.Fatal(err)
	}
	pending := append()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-pending; !errors.Is(err, journal.ErrTimeout) {
		t.Errorf("append pending at Close = %v, want ErrTimeout", err)
	}
	if err := <-append(); !errors.Is(err, journal.ErrClosed) {
		t.Errorf("append after Close = %v, want ErrClosed", err)
	}
}
