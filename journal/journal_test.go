package journal_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

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
}
