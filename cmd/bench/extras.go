package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/messages"
	"github.com/tallyhq/tally/node"
)

type extras struct {
	ReplayEvents  int     `json:"replay_events"`
	ReplayGroups  int     `json:"replay_groups"`
	ReplaySeconds float64 `json:"replay_seconds"`
	ReplayPerS    float64 `json:"replay_events_per_s"`
	// The same journal replayed by tally-node journal replay, a process
	// on the stopped node's data directory.
	ToolReplayPerS   float64     `json:"tool_replay_events_per_s"`
	ActivationGroups int         `json:"activation_groups"`
	ActivationP50ms  float64     `json:"activation_p50_ms"`
	ActivationP99ms  float64     `json:"activation_p99_ms"`
	Memory           []memoryRow `json:"memory"`
	Notes            []string    `json:"notes,omitempty"`
}

type memoryRow struct {
	Groups   int     `json:"groups"`
	RSS      int64   `json:"rss_bytes"`
	PerGroup float64 `json:"bytes_per_group"`
}

func (b *bench) extras() extras {
	var e extras
	if err := b.replay(&e); err != nil {
		e.Notes = append(e.Notes, "replay skipped: "+err.Error())
	}
	if err := b.activation(&e); err != nil {
		e.Notes = append(e.Notes, "activation skipped: "+err.Error())
	}
	if err := b.memory(&e); err != nil {
		e.Notes = append(e.Notes, "memory skipped: "+err.Error())
	}
	return e
}

// replay writes events straight into a node's journal, then times a full
// replay with actors.Rebuild, as a recovery tool would run it. Only the
// node's own account reaches the journal, so the node runs in this process.
func (b *bench) replay(e *extras) error {
	const groups = 10_000
	n := b.o.replayEvents
	cfg := node.DefaultConfig()
	cfg.DataDir, cfg.Listen, cfg.Logger = filepath.Join(b.dir("replay"), "data"), "127.0.0.1:0", slog.New(slog.DiscardHandler)
	tn, err := node.Start(context.Background(), cfg)
	if err != nil {
		return err
	}
	defer tn.Stop(context.Background())
	nc, err := tn.Connect("bench")
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		return err
	}
	ctx := context.Background()
	j, err := journal.Open(ctx, js, journal.DefaultConfig())
	if err != nil {
		return err
	}
	b.logf("replay: writing %d events over %d groups ...", n, groups)
	// A group's previous event was published groups events before, so
	// its acknowledgement, which names its stream sequence, is in (at most
	// 4,096 are pending): the node's health probe shares the stream, so
	// sequences are not the events' order.
	last := make([]jetstream.PubAckFuture, groups)
	for i := range n {
		g := i % groups
		v := int64(i/groups + 1)
		var prev uint64
		if f := last[g]; f != nil {
			select {
			case ack := <-f.Ok():
				prev = ack.Sequence
			case err := <-f.Err():
				return fmt.Errorf("replay event of r%d: %w", g, err)
			}
		}
		ev := &messages.Event{
			PrevSeq: prev,
			Changes: []*messages.Change{{Seq: uint64(v), Op: messages.Op_OP_INCREASE, Key: "n", Amount: 1, Value: v}},
			State:   &messages.GroupState{Counters: map[string]int64{"n": v}, Version: uint64(v)},
		}
		data, err := proto.Marshal(ev)
		if err != nil {
			return err
		}
		if last[g], err = js.PublishAsync(j.Subject(fmt.Sprintf("r%d", g)), data); err != nil {
			return err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		return fmt.Errorf("writing replay events timed out")
	}
	b.logf("replay: replaying ...")
	start := time.Now()
	states, err := actors.Rebuild(ctx, j)
	if err != nil {
		return err
	}
	d := time.Since(start)
	if len(states) != groups || states["r0"].GetCounters()["n"] != int64(n/groups) {
		return fmt.Errorf("replay rebuilt %d groups, r0 n=%d", len(states), states["r0"].GetCounters()["n"])
	}
	e.ReplayEvents, e.ReplayGroups, e.ReplaySeconds, e.ReplayPerS = n, groups, d.Seconds(), float64(n)/d.Seconds()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := tn.Stop(sctx); err != nil {
		return err
	}
	b.logf("replay: tally-node journal replay ...")
	out, err := exec.Command(b.tallyBin, "journal", "replay", "--json", "--data", cfg.DataDir).Output()
	if err != nil {
		return fmt.Errorf("tally-node journal replay: %w", err)
	}
	var tool struct {
		Events       int     `json:"events"`
		EventsPerSec float64 `json:"eventsPerSecond"`
	}
	if err := json.Unmarshal(out, &tool); err != nil || tool.Events != n {
		return fmt.Errorf("tally-node journal replay said %s (%v), want %d events", out, err, n)
	}
	e.ToolReplayPerS = tool.EventsPerSec
	return nil
}

// activation measures the first get of groups that exist only in the
// journal, one at a time, after a restart.
func (b *bench) activation(e *extras) error {
	n := max(b.o.coldGroups/5, 1000)
	data := filepath.Join(b.dir("activation"), "data")
	node, err := startTally(b.tallyBin, data, "interval", false)
	if err != nil {
		return err
	}
	c, err := newTallyClient(node.url, b.o.workers)
	if err != nil {
		node.stop()
		return err
	}
	b.logf("activation: writing %d groups ...", n)
	err = c.fill("a-", n, 5)
	c.close()
	node.stop()
	if err != nil {
		return err
	}
	if node, err = startTally(b.tallyBin, data, "interval", false); err != nil {
		return err
	}
	defer node.stop()
	if c, err = newTallyClient(node.url, 1); err != nil {
		return err
	}
	defer c.close()
	b.logf("activation: first gets, one at a time ...")
	r := runN(1, uint64(n), node.pid(), c.coldGets("a-", n))
	if r.Failed > 0 {
		return fmt.Errorf("%d gets failed: %s", r.Failed, r.FirstErr)
	}
	e.ActivationGroups, e.ActivationP50ms, e.ActivationP99ms = n, r.P50ms, r.P99ms
	return nil
}

// memory activates groups of 5 counters and reads the node's resident set.
func (b *bench) memory(e *extras) error {
	node, err := startTally(b.tallyBin, filepath.Join(b.dir("memory"), "data"), "interval", b.o.profile)
	if err != nil {
		return err
	}
	defer node.stop()
	c, err := newTallyClient(node.url, b.o.workers)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.fill("m-", 1, 5); err != nil { // load code paths before the baseline
		return err
	}
	base, _ := memory(node.pid())
	done := 1
	for _, n := range b.o.memGroups {
		b.logf("memory: activating %d groups ...", n)
		if err := c.fillRange("m-", done, n, 5); err != nil {
			return err
		}
		done = n
		rss, _ := memory(node.pid())
		e.Memory = append(e.Memory, memoryRow{Groups: n, RSS: rss, PerGroup: float64(rss-base) / float64(n)})
		b.heapProfile(node, fmt.Sprintf("tally-memory-%d", n))
	}
	return nil
}
