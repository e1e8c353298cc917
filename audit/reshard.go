package audit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/messages"
)

// ErrReshardDiffers means that after a reshard's copy a group's events or
// state in the shard streams are not those of the journal it copied.
var ErrReshardDiffers = errors.New("audit: the copy differs from the journal")

// ReshardReport is what Reshard did.
type ReshardReport struct {
	Groups int `json:"groups"` // in the journal
	Events int `json:"events"` // in the journal
	Copied int `json:"copied"` // events appended by this run
	// Skipped are the events an earlier run that stopped had copied.
	Skipped int `json:"skipped"`
}

// BeginReshard is journal.BeginReshard after a check of every group's
// chain (see Verify) of a journal of one stream not sealed yet: a sealed
// stream's events can no longer be removed (see Repair), so a journal with
// a bad event is refused, and left as it is, until it is repaired.
func BeginReshard(ctx context.Context, js jetstream.JetStream, cfg journal.Config, shards int) (*journal.Reshard, error) {
	if j, err := journal.Bind(ctx, js, cfg); err == nil {
		defer j.Close()
		if j.Layout().Shards == 1 {
			r, err := Verify(ctx, j, "")
			if err != nil {
				return nil, err
			}
			if len(r.Bad) > 0 {
				return nil, fmt.Errorf("%w: %d in %s; repair them first: a reshard seals the stream, whose events then cannot be removed", ErrBadEvent, len(r.Bad), j)
			}
		}
	}
	return journal.BeginReshard(ctx, js, cfg, shards)
}

// Reshard copies every group's events from r.From to r.To, each group's
// in order with fenced appends, renumbered as Import renumbers them
// (request IDs, users and times kept), one writer per shard stream. It
// reads r.From once, in commit order, so each shard gets its groups'
// events in their commit order. It takes up a copy that stopped: the
// events a group has in r.To are its first ones, which it skips, and it
// appends after them; no event is copied twice. Then it checks the copy
// (see checkCopy). progress, when not nil, is called after each event
// copied or skipped with how many were so far, one call at a time.
func Reshard(ctx context.Context, r *journal.Reshard, progress func(done int)) (ReshardReport, error) {
	var rep ReshardReport
	want, err := r.From.GroupEvents(ctx)
	if err != nil {
		return rep, err
	}
	done, err := r.To.GroupEvents(ctx)
	if err != nil {
		return rep, err
	}
	rep.Groups = len(want)
	for _, n := range want {
		rep.Events += int(n)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c := startCopier(ctx, cancel, r.To, done, progress)
	err = r.From.Replay(ctx, func(group string, seq uint64, ev *messages.Event) error {
		return c.send(ctx, group, seq, ev)
	})
	rep.Copied, rep.Skipped, err = c.wait(ctx, cancel, err)
	if err != nil {
		return rep, fmt.Errorf("reshard: %w", err)
	}
	if err := checkCopy(ctx, r, want); err != nil {
		return rep, fmt.Errorf("reshard: %w", err)
	}
	return rep, nil
}

// copyEvent is an event on its way to its shard's writer.
type copyEvent struct {
	group string
	seq   uint64
	ev    *messages.Event
}

// copier is a writer per shard of the journal copied to. A group is
// written by its shard's writer only, which keeps the group's
// renumbering.
type copier struct {
	to       *journal.Journal
	work     []chan copyEvent
	wg       sync.WaitGroup
	copied   atomic.Int64
	skipped  atomic.Int64
	mu       sync.Mutex // held while progress runs
	progress func(done int)
}

// startCopier starts the writers of to's shards; the first that fails
// cancels ctx. done has how many events each group has in to already.
func startCopier(ctx context.Context, cancel context.CancelCauseFunc, to *journal.Journal, done map[string]uint64, progress func(int)) *copier {
	c := &copier{to: to, work: make([]chan copyEvent, to.Layout().Shards), progress: progress}
	skip := make([]map[string]uint64, len(c.work))
	for s := range skip {
		skip[s] = map[string]uint64{}
	}
	for g, n := range done {
		skip[to.Layout().ShardOf(g)][g] = n
	}
	for s := range c.work {
		c.work[s] = make(chan copyEvent, 256)
		c.wg.Go(func() {
			if err := c.write(ctx, c.work[s], skip[s]); err != nil {
				cancel(err)
			}
		})
	}
	return c
}

// send hands group's event at seq to its shard's writer.
func (c *copier) send(ctx context.Context, group string, seq uint64, ev *messages.Event) error {
	select {
	case c.work[c.to.Layout().ShardOf(group)] <- copyEvent{group, seq, ev}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// wait stops the writers after the events sent, or at once after the
// reading's error failed, and returns what they did and the first error.
func (c *copier) wait(ctx context.Context, cancel context.CancelCauseFunc, failed error) (copied, skipped int, err error) {
	if failed != nil {
		cancel(failed)
	}
	for _, w := range c.work {
		close(w)
	}
	c.wg.Wait()
	return int(c.copied.Load()), int(c.skipped.Load()), context.Cause(ctx)
}

// write appends one shard's events. skip has the number of events each
// of its groups has there already: their first ones, which it skips.
func (c *copier) write(ctx context.Context, work <-chan copyEvent, skip map[string]uint64) error {
	rn := newRenumbering()
	for e := range work {
		if n, ok := skip[e.group]; ok {
			if err := c.skip(ctx, rn, skip, e, n); err != nil {
				return err
			}
		} else if _, err := rn.append(ctx, c.to, e.group, e.seq, e.ev); err != nil {
			return fmt.Errorf("copy group %s: %w", e.group, err)
		} else {
			c.copied.Add(1)
		}
		c.report()
	}
	return nil
}

// report calls progress with the events copied and skipped so far.
func (c *copier) report() {
	if c.progress == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.progress(int(c.copied.Load() + c.skipped.Load()))
}

// skip passes over an event copied before, the group's n-th from the last
// copied; at the last, it takes up the group after its copy.
func (c *copier) skip(ctx context.Context, rn *renumbering, skip map[string]uint64, e copyEvent, n uint64) error {
	c.skipped.Add(1)
	if n > 1 {
		skip[e.group] = n - 1
		return nil
	}
	delete(skip, e.group)
	last, seq, err := c.to.Last(ctx, e.group)
	if err != nil {
		return err
	}
	if !actors.SameState(last.GetState(), e.ev.GetState()) {
		return fmt.Errorf("%w: group %s's last event in %s, at %d, is not a copy of its event at %d", ErrReshardDiffers, e.group, c.to, seq, e.seq)
	}
	rn.resume(e.group, e.seq, e.ev, seq, last)
	return nil
}

// checkCopy checks that r.To holds what r.From holds: each group's events,
// as many as want has, which follow one another by the journal's rule,
// and the state after them (actors.Rebuild of both).
func checkCopy(ctx context.Context, r *journal.Reshard, want map[string]uint64) error {
	from, err := actors.Rebuild(ctx, r.From)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", r.From, err)
	}
	to, err := actors.Rebuild(ctx, r.To)
	if err != nil {
		return fmt.Errorf("%w: rebuild %s: %w", ErrReshardDiffers, r.To, err)
	}
	got, err := r.To.GroupEvents(ctx)
	if err != nil {
		return err
	}
	var diffs []string
	for _, g := range slices.Sorted(maps.Keys(want)) {
		switch {
		case got[g] != want[g]:
			diffs = append(diffs, fmt.Sprintf("group %s has %d events, not %d", g, got[g], want[g]))
		case !actors.SameState(to[g], from[g]):
			diffs = append(diffs, fmt.Sprintf("group %s is at version %d, not %d, or its counters or members differ", g, to[g].GetVersion(), from[g].GetVersion()))
		}
	}
	for g := range got {
		if _, ok := want[g]; !ok {
			diffs = append(diffs, fmt.Sprintf("group %s is not in the journal", g))
		}
	}
	if len(diffs) > 0 {
		more := ""
		if len(diffs) > 5 {
			more = fmt.Sprintf(" (and %d more)", len(diffs)-5)
			diffs = diffs[:5]
		}
		return fmt.Errorf("%w: %s%s", ErrReshardDiffers, strings.Join(diffs, "; "), more)
	}
	return nil
}
