package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

// startCutServers starts a three-server NATS cluster whose routes all go
// through proxies, as startCutExternalCluster's do, and returns the index
// of the server that leads JetStream's meta group: cut off, it goes on
// believing that it leads (for 10 s), and with it the streams it leads
// answer reads, where a server that knows it has no meta leader refuses
// them (10008).
func startCutServers(t *testing.T) (servers []*server.Server, proxies [][]*proxy, meta int) {
	t.Helper()
	servers, proxies = startProxiedServers(t, 3)
	meta = -1
	journaltest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		for i, s := range servers {
			if s.JetStreamIsLeader() {
				meta = i
				return nil
			}
		}
		return errors.New("no server leads JetStream's meta group")
	})
	return servers, proxies, meta
}

// isolate cuts (or heals) every route between server k and the others.
func isolate(proxies [][]*proxy, k int, cut bool) {
	for i := range proxies {
		for j := range proxies[i] {
			if (i == k) != (j == k) {
				if cut {
					proxies[i][j].cut()
				} else {
					proxies[i][j].heal()
				}
			}
		}
	}
}

// TestDeposedStreamLeader cuts the server that leads a replicated
// journal's stream off from the two others, which elect another leader
// and store the next event of a group. The cut server goes on believing
// that it leads for seconds, and answers reads of the group's last event
// from what it had; the journal's Confirm, a write that only a quorum
// acknowledges, never confirms such a read, during the cut or after it
// heals, and confirms the new event once the cut healed. A group loaded
// through that server without the confirmation served cut-7 = 1 after
// the majority had acknowledged 2 (TestCutOffNode/external_NATS_cluster).
func TestDeposedStreamLeader(t *testing.T) {
	servers, proxies, k := startCutServers(t)
	ctx := context.Background()
	cfg := journal.DefaultConfig()
	cfg.Replicas, cfg.Shards = 3, 1
	open := func(s *server.Server) (*journal.Journal, *nats.Conn) {
		nc := journaltest.Connect(t, s)
		js := journaltest.JetStream(t, nc)
		var j *journal.Journal
		journaltest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
			octx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			var err error
			j, err = journal.Open(octx, js, cfg)
			return err
		})
		return j, nc
	}
	majority, nc := open(servers[(k+1)%3])
	cut, _ := open(servers[k])
	stream := majority.Layout().StreamOf(0)
	journaltest.StepDown(t, nc, journaltest.JetStream(t, nc), stream, servers[k].Name())
	event := func(prev uint64, v int64) *messages.Event {
		return &messages.Event{PrevSeq: prev, Changes: []*messages.Change{{Seq: uint64(v), Op: messages.Op_OP_SET, Counters: map[string]int64{"k": v}}},
			State: &messages.GroupState{Counters: map[string]int64{"k": v}, Version: uint64(v)}}
	}
	seq1, err := majority.Append(ctx, "g", 0, event(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	journaltest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if _, last, err := cut.Last(ctx, "g"); err != nil || last != seq1 {
			return fmt.Errorf("the cut server reads g at %d (%v), want %d", last, err, seq1)
		}
		return nil
	})

	isolate(proxies, k, true)
	cutAt := time.Now()
	// The majority elects a leader of its own and stores g's next event.
	var seq2 uint64
	journaltest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		seq, err := majority.Append(actx, "g", seq1, event(seq1, 2))
		if errors.Is(err, journal.ErrConflict) {
			// A try that timed out was stored after all.
			var ev *messages.Event
			if ev, seq, err = majority.Last(actx, "g"); err == nil && ev.GetState().GetCounters()["k"] != 2 {
				err = fmt.Errorf("g's last event is %v", ev)
			}
		}
		seq2 = seq
		return err
	})
	t.Logf("the majority stored g's second event %v after the cut", time.Since(cutAt).Round(time.Millisecond))

	// check reads g through the cut server and confirms what it read: a
	// confirmation must never stand behind an old read.
	stale := 0
	check := func(timeout time.Duration) error {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		_, last, err := cut.Last(cctx, "g")
		if err != nil {
			return err
		}
		if last != seq2 {
			stale++
		}
		if err := cut.Confirm(cctx, "g", last); err != nil {
			return err
		}
		if last != seq2 {
			t.Errorf("the cut server confirmed g's last event at %d, where the majority stored %d", last, seq2)
		}
		return nil
	}
	for range 3 {
		if err := check(time.Second); err == nil {
			t.Errorf("the cut server confirmed a read while cut off")
		}
	}
	t.Logf("while cut off, the cut server answered %d reads of 3 from its old store", stale)

	isolate(proxies, k, false)
	healedAt := time.Now()
	journaltest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error { return check(time.Second) })
	t.Logf("healed, the cut server confirmed g's last event after %v; %d reads in all came from its old store",
		time.Since(healedAt).Round(time.Millisecond), stale)
}
