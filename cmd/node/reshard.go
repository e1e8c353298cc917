package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/tallyhq/tally/audit"
	"github.com/tallyhq/tally/cluster"
	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/journal"
)

// reshardSummary is what reshard prints.
type reshardSummary struct {
	audit.ReshardReport
	From         string  `json:"from"`
	To           string  `json:"to"`
	OldKept      bool    `json:"oldKept"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"eventsPerSecond"` // copied
}

// progressEvery is how often reshard says how far it got when it draws
// no progress bar.
const progressEvery = 5 * time.Second

// runReshard moves a journal of one stream to --shards shard streams.
func runReshard(ctx context.Context, js jetstream.JetStream, o *journalOptions, args []string, out *output) error {
	if o.shards < 2 || o.shards > journal.MaxShards {
		return usage("reshard: --shards %d: want 2..%d", o.shards, journal.MaxShards)
	}
	if err := refuseLiveMembers(ctx, js); err != nil {
		return err
	}
	if err := refuseServingNodes(ctx, js.Conn()); err != nil {
		return err
	}
	start := time.Now()
	r, err := audit.BeginReshard(ctx, js, journal.DefaultConfig(), o.shards)
	if errors.Is(err, audit.ErrBadEvent) {
		return fmt.Errorf("reshard: %w (tally-node journal verify lists them, repair GROUP removes a group's)", err)
	}
	if err != nil {
		return fmt.Errorf("reshard: %w", err)
	}
	defer r.Close()
	fmt.Fprintf(o.progressTo, "copying %s to %s\n", r.From, r.To)
	progress, finish, err := reshardProgress(ctx, r, o)
	if err != nil {
		return err
	}
	rep, err := audit.Reshard(ctx, r, progress)
	finish()
	if err != nil {
		return fmt.Errorf("%w (after %d events copied; run the same command again to go on: what is copied stays)", err, rep.Copied)
	}
	if err := r.Finish(ctx, o.keepOld); err != nil {
		return fmt.Errorf("reshard: every group is copied and checked; %w (run the same command again to finish)", err)
	}
	took := time.Since(start)
	s := reshardSummary{ReshardReport: rep, From: r.From.String(), To: r.To.String(), OldKept: o.keepOld, Seconds: took.Seconds()}
	if took > 0 {
		s.EventsPerSec = float64(rep.Copied) / took.Seconds()
	}
	if out.json {
		return out.row(s)
	}
	old := "deleted"
	if o.keepOld {
		old = "kept, sealed"
	}
	return out.text("resharded to %s: %d groups, %d events, %d copied now (%d before), in %v (%.0f events/s); %s %s",
		s.To, s.Groups, s.Events, s.Copied, s.Skipped, took.Round(time.Millisecond), s.EventsPerSec, journal.DefaultConfig().Stream, old)
}

// reshardProgress returns what shows a reshard's progress: a progress bar
// with o.progress, else a line every progressEvery.
func reshardProgress(ctx context.Context, r *journal.Reshard, o *journalOptions) (progress func(done int), finish func(), err error) {
	total, err := r.From.Events(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("reshard: %w", err)
	}
	if !o.progress {
		next := time.Now().Add(progressEvery)
		return func(done int) {
			if now := time.Now(); now.After(next) {
				next = now.Add(progressEvery)
				fmt.Fprintf(o.progressTo, "copied %d of %d events\n", done, total)
			}
		}, func() {}, nil
	}
	bar := eventsBar(total, "copying", o.progressTo)
	return func(done int) { bar.Set(done) }, func() { bar.Finish() }, nil
}

// errNodesRunning means a reshard found nodes running on the journal.
var errNodesRunning = errors.New("nodes are running")

// refuseLiveMembers refuses a reshard while the cluster's members bucket
// holds records: nodes running, or stopped within a record's lifetime.
func refuseLiveMembers(ctx context.Context, js jetstream.JetStream) error {
	bucket := cluster.DefaultConfig().MembersBucket
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reshard: members bucket %s: %w", bucket, err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("reshard: members bucket %s: %w", bucket, err)
	}
	var live []string
	for k := range keys.Keys() {
		live = append(live, k)
	}
	if len(live) == 0 {
		return nil
	}
	slices.Sort(live)
	return fmt.Errorf("reshard: %w: %s (their records in %s); stop every node first (a stopped node's record is gone within %v)",
		errNodesRunning, strings.Join(live, ", "), bucket, cluster.DefaultConfig().MemberTTL)
}

// refuseServingNodes refuses a reshard while a node answers the service
// discovery of the journal's account ($SRV.INFO.tally): a node outside a
// cluster keeps no member record.
func refuseServingNodes(ctx context.Context, nc *nats.Conn) error {
	subject := micro.APIPrefix + "." + micro.InfoVerb.String() + "." + gateway.DefaultConfig().Name
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, subject, nil)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil
	case err != nil:
		return fmt.Errorf("reshard: cannot tell whether nodes run: %s: %w", subject, err)
	}
	var info micro.Info
	if err := json.Unmarshal(m.Data, &info); err != nil {
		return fmt.Errorf("reshard: %w: a node answers %s (%w)", errNodesRunning, subject, err)
	}
	return fmt.Errorf("reshard: %w: node %s answers %s; stop every node first", errNodesRunning, info.ID, subject)
}
