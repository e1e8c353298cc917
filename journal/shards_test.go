package journal_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

// TestShardedJournal runs the suite on three shard streams, R3 on three
// clustered servers.
func TestShardedJournal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	servers := journaltest.StartCluster(t, 3)
	js := journaltest.JetStream(t, journaltest.Connect(t, servers[2]))
	cfg := journal.DefaultConfig()
	cfg.Replicas, cfg.Shards, cfg.Resend, cfg.AckTimeout = 3, 3, 500*time.Millisecond, 2*time.Second
	journaltest.Run(t, opener(js, cfg))
}

// TestShardedJournalOnOneServer runs the suite on three R1 shard streams,
// and checks their names, subjects and metadata.
func TestShardedJournalOnOneServer(t *testing.T) {
	js := journaltest.JetStream(t, journaltest.Connect(t, journaltest.StartServer(t)))
	cfg := journal.DefaultConfig()
	cfg.Shards = 3
	journaltest.Run(t, opener(js, cfg))

	ctx := context.Background()
	j, err := journal.Open(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := j.String(), "TALLY_JOURNAL_0..2 (tally.journal.<shard>.<group>, 3 shards, R1)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for s := range 3 {
		st, err := js.Stream(ctx, fmt.Sprintf("TALLY_JOURNAL_%d", s))
		if err != nil {
			t.Fatal(err)
		}
		c := st.CachedInfo().Config
		want := []string{fmt.Sprintf("tally.journal.%d.>", s), fmt.Sprintf("tally.journal-probe.%d", s)}
		if fmt.Sprint(c.Subjects) != fmt.Sprint(want) || c.Metadata["tally_shards"] != "3" || c.Metadata["tally_shard"] != strconv.Itoa(s) || c.Metadata["tally_partitions"] != "64" {
			t.Errorf("stream %s: subjects %v, metadata %v; want subjects %v, 3 shards, shard %d, 64 partitions", c.Name, c.Subjects, c.Metadata, want, s)
		}
	}
	if err := j.Probe(ctx); err != nil {
		t.Errorf("Probe() = %v", err)
	}
	if _, err := j.Append(ctx, "bob", 0, &messages.Event{}); err != nil {
		t.Fatal(err)
	}
	if n, err := j.Events(ctx); err != nil || n != 4 { // three probes and bob's event
		t.Errorf("Events() = %d, %v; want 4", n, err)
	}
}

// TestFencingAcrossStepDown: a group's appends stay fenced when its
// stream's leader moves to another server.
func TestFencingAcrossStepDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	servers := journaltest.StartCluster(t, 3)
	nc := journaltest.Connect(t, servers[0])
	js := journaltest.JetStream(t, nc)
	cfg := journal.DefaultConfig()
	cfg.Replicas, cfg.Shards = 3, 3
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	j, err := journal.Open(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const group = "bob"
	stream := j.Layout().StreamOf(j.Layout().ShardOf(group))
	first, err := j.Append(ctx, group, 0, &messages.Event{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		leader, err := journaltest.LeaderOf(ctx, js, stream)
		if err != nil {
			t.Fatal(err)
		}
		next := servers[0].Name()
		for _, s := range servers {
			if s.Name() != leader && s.Name() != next && (next == leader || i == 1) {
				next = s.Name()
			}
		}
		journaltest.StepDown(t, nc, js, stream, next)
		if _, err := j.Append(ctx, group, 0, &messages.Event{}); !errors.Is(err, journal.ErrConflict) {
			t.Errorf("move %d: Append(%s, 0) after a step-down = %v, want ErrConflict", i, group, err)
		}
		seq, err := journaltest.AppendAsync(j, group, first, &messages.Event{PrevSeq: first})
		if err != nil {
			t.Fatalf("move %d: AppendAsync(%s, %d) after a step-down = %v", i, group, first, err)
		}
		if _, err := j.Append(ctx, group, first, &messages.Event{PrevSeq: first}); !errors.Is(err, journal.ErrConflict) {
			t.Errorf("move %d: Append(%s, %d) again = %v, want ErrConflict", i, group, first, err)
		}
		first = seq
	}
	// A replicated stream may refuse a stale append with 10164 too.
	if !journal.WrongLastSequence(&jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant}) {
		t.Error("WrongLastSequence(10164) = false")
	}
}

// TestDiscoverRefusesMixedLayouts: the layout is read from the streams,
// whatever the configuration asks for, and streams that make no one
// layout are refused.
func TestDiscoverRefusesMixedLayouts(t *testing.T) {
	js := journaltest.JetStream(t, journaltest.Connect(t, journaltest.StartServer(t)))
	ctx := context.Background()
	config := func(name string, shards int) journal.Config {
		cfg := journal.DefaultConfig()
		cfg.Stream, cfg.SubjectPrefix, cfg.Shards = name, name+".journal", shards
		return cfg
	}
	// shardStream makes a stream that looks like a shard by name and
	// metadata, on subjects of its own.
	shardStream := func(t *testing.T, cfg journal.Config, s int, md map[string]string) {
		t.Helper()
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: fmt.Sprintf("%s_%d", cfg.Stream, s), Subjects: []string{fmt.Sprintf("%s.other.%d", cfg.Stream, s)}, Metadata: md})
		if err != nil {
			t.Fatal(err)
		}
	}
	md := func(shards, s int) map[string]string {
		return map[string]string{"tally_shards": strconv.Itoa(shards), "tally_shard": strconv.Itoa(s), "tally_partitions": "64"}
	}
	t.Run("no journal", func(t *testing.T) {
		if _, err := journal.Discover(ctx, js, config("NONE", 1)); !errors.Is(err, journal.ErrNoJournal) {
			t.Errorf("Discover() = %v, want ErrNoJournal", err)
		}
	})
	t.Run("the streams decide", func(t *testing.T) {
		for _, tt := range []struct{ made, asked int }{{1, 3}, {3, 1}, {3, 5}} {
			cfg := config(fmt.Sprintf("KEEP%d%d", tt.made, tt.asked), tt.made)
			if _, err := journal.Open(ctx, js, cfg); err != nil {
				t.Fatal(err)
			}
			cfg.Shards = tt.asked
			j, err := journal.Open(ctx, js, cfg)
			if err != nil {
				t.Fatalf("Open() with %d shards asked of a journal of %d = %v", tt.asked, tt.made, err)
			}
			if got := j.Layout().Shards; got != tt.made {
				t.Errorf("Open() with %d shards asked of a journal of %d: %d shards", tt.asked, tt.made, got)
			}
			if l, err := journal.Discover(ctx, js, cfg); err != nil || l.Shards != tt.made {
				t.Errorf("Discover() = %+v, %v; want %d shards", l, err, tt.made)
			}
		}
	})
	tests := []struct {
		name string
		make func(t *testing.T, cfg journal.Config)
	}{
		{"one stream next to shards", func(t *testing.T, cfg journal.Config) {
			cfg.Shards = 1
			if _, err := journal.Open(ctx, js, cfg); err != nil {
				t.Fatal(err)
			}
			shardStream(t, cfg, 0, md(3, 0))
		}},
		{"shards of different counts", func(t *testing.T, cfg journal.Config) {
			shardStream(t, cfg, 0, md(2, 0))
			shardStream(t, cfg, 1, md(3, 1))
		}},
		{"a shard missing", func(t *testing.T, cfg journal.Config) {
			shardStream(t, cfg, 0, md(3, 0))
			shardStream(t, cfg, 2, md(3, 2))
		}},
		{"a shard without metadata", func(t *testing.T, cfg journal.Config) {
			shardStream(t, cfg, 0, md(2, 0))
			shardStream(t, cfg, 1, nil)
		}},
		{"a shard named for another", func(t *testing.T, cfg journal.Config) {
			shardStream(t, cfg, 0, md(2, 0))
			shardStream(t, cfg, 1, md(2, 0))
		}},
		{"an unfinished reshard", func(t *testing.T, cfg journal.Config) {
			shardStream(t, cfg, 0, md(2, 0))
			m := md(2, 1)
			m["tally_reshard"] = "copying"
			shardStream(t, cfg, 1, m)
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config(fmt.Sprintf("MIX%d", i), 3)
			tt.make(t, cfg)
			if _, err := journal.Discover(ctx, js, cfg); !errors.Is(err, journal.ErrMixedLayout) {
				t.Errorf("Discover() = %v, want ErrMixedLayout", err)
			}
			if _, err := journal.Bind(ctx, js, cfg); !errors.Is(err, journal.ErrMixedLayout) {
				t.Errorf("Bind() = %v, want ErrMixedLayout", err)
			}
		})
	}
	t.Run("Open refuses a mix", func(t *testing.T) {
		cfg := config("MIXOPEN", 1)
		if _, err := journal.Open(ctx, js, cfg); err != nil {
			t.Fatal(err)
		}
		shardStream(t, cfg, 0, md(3, 0))
		if _, err := journal.Open(ctx, js, cfg); !errors.Is(err, journal.ErrMixedLayout) {
			t.Errorf("Open() = %v, want ErrMixedLayout", err)
		}
	})
}
