package journal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/messages"
)

// replayBatch is how many events a replay asks the server for at once; large
// batches roughly double the replay rate over the default.
const replayBatch = 5000

// Replay calls fn for every event stored when it starts, each group's in
// commit order (a journal of several shards replays one stream after the
// other, and seq is a sequence of the group's stream), and stops at the
// first error fn returns.
func (j *Journal) Replay(ctx context.Context, fn func(group string, seq uint64, ev *messages.Event) error) error {
	for _, sh := range j.shards {
		if err := j.replay(ctx, sh, jetstream.OrderedConsumerConfig{FilterSubjects: []string{sh.prefix + ">"}}, fn); err != nil {
			return err
		}
	}
	return nil
}

// ReplaySince is Replay of the events the server stored at or after since.
func (j *Journal) ReplaySince(ctx context.Context, since time.Time, fn func(group string, seq uint64, ev *messages.Event) error) error {
	for _, sh := range j.shards {
		err := j.replay(ctx, sh, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{sh.prefix + ">"},
			DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
			OptStartTime:   &since,
		}, fn)
		if err != nil {
			return err
		}
	}
	return nil
}

// replayStall is how long a read waits for its next event before it makes
// its consumer again.
const replayStall = time.Second

// errStalled means a read's consumer delivered nothing for a while.
var errStalled = errors.New("journal: the replay delivers nothing")

// ReplayGroup calls fn for the group's events stored at or after since, up
// to its event at stream sequence last, which must be stored. Like every
// read of the journal it goes on through a consumer's stall or a leader's
// change (see consume) until ctx ends.
func (j *Journal) ReplayGroup(ctx context.Context, group string, since time.Time, last uint64, fn func(seq uint64, ev *messages.Event) error) error {
	subject := j.Subject(group)
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	}
	err := j.consume(ctx, j.shardOf(group), cfg, last, func(s Stored) error {
		ev, err := decode(s.Data, subject, s.Seq)
		if err != nil {
			return err
		}
		return fn(s.Seq, ev)
	})
	if err != nil {
		return fmt.Errorf("journal: replay %s: %w", group, err)
	}
	return nil
}

func (j *Journal) replay(ctx context.Context, sh *shard, cfg jetstream.OrderedConsumerConfig, fn func(group string, seq uint64, ev *messages.Event) error) error {
	info, err := sh.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("journal: replay: stream info: %w", err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	if cfg.OptStartTime != nil && !info.State.LastTime.IsZero() && info.State.LastTime.Before(*cfg.OptStartTime) {
		return nil // nothing stored since
	}
	last, err := lastOf(ctx, sh, sh.prefix+">")
	if err != nil || last == 0 {
		return err
	}
	return j.consume(ctx, sh, cfg, last, func(s Stored) error {
		ev, err := decodeEvent(s.Data)
		if err != nil {
			return fmt.Errorf("event %d on %s: %w: %w", s.Seq, j.Subject(s.Group), ErrCorrupt, err)
		}
		return fn(s.Group, s.Seq, ev)
	})
}

// consume calls fn for each message an ordered consumer of cfg delivers,
// up to stream sequence last, the last message of cfg's subjects. On a
// cluster a consumer's creation can go unanswered right after the stream
// changed leaders, and a consumer on a replica that is catching up can
// deliver nothing for a while (its count of what is pending can be short
// too): either is given up after replayStall and made again, from the
// message after the last one delivered, unless the subjects' last message
// is now before it (last was deleted since: a repair).
func (j *Journal) consume(ctx context.Context, sh *shard, cfg jetstream.OrderedConsumerConfig, last uint64, fn func(Stored) error) error {
	for {
		next, err := j.consumeOnce(ctx, sh, cfg, last, fn)
		if !errors.Is(err, errStalled) || ctx.Err() != nil {
			return err
		}
		if now, err := lastOf(ctx, sh, cfg.FilterSubjects[0]); err == nil && now < max(next, 1) {
			return nil
		} else if err == nil {
			last = min(last, now)
		}
		if next > 0 {
			cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartSequencePolicy, next, nil
		}
	}
}

// consumeOnce is one consumer's part of consume; on errStalled it returns
// the stream sequence to go on from (0: from where cfg starts).
func (j *Journal) consumeOnce(ctx context.Context, sh *shard, cfg jetstream.OrderedConsumerConfig, last uint64, fn func(Stored) error) (uint64, error) {
	// A read of a shard's whole journal asks for every message of its
	// stream and passes over the probes itself: the stream's subjects are
	// the journal's and the probe's, so the server reads a filter of the
	// journal's alone by walking, for each message it delivers, the
	// subjects of the message's block (10,000 groups: 25,000 events/s
	// rather than 200,000).
	whole := len(cfg.FilterSubjects) == 1 && cfg.FilterSubjects[0] == sh.prefix+">"
	if whole {
		cfg.FilterSubjects = nil
	}
	cctx, cancel := context.WithTimeout(ctx, replayStall)
	cons, err := sh.stream.OrderedConsumer(cctx, cfg)
	cancel()
	if err != nil {
		if ctx.Err() == nil && Unanswered(err) {
			return 0, errStalled
		}
		return 0, fmt.Errorf("journal: read: consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(replayBatch))
	if err != nil {
		return 0, fmt.Errorf("journal: read: %w", err)
	}
	defer it.Stop()
	// A watchdog rather than a timeout per message: a replay reads
	// hundreds of thousands per second, and a context each would cost a
	// sixth of the rate.
	wctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	// progress is the monotonic time of the last message (see mono): the
	// wall clock set back would keep a stalled replay waiting that much
	// longer, set forward would give up a replay that goes on.
	var progress atomic.Int64
	progress.Store(mono())
	var watch *time.Timer
	watch = time.AfterFunc(replayStall, func() {
		if idle := time.Duration(mono() - progress.Load()); idle >= replayStall {
			stop(errStalled)
		} else {
			watch.Reset(replayStall - idle)
		}
	})
	defer watch.Stop()
	var next uint64
	for {
		msg, err := it.Next(jetstream.NextContext(wctx))
		if err != nil {
			if ctx.Err() == nil && errors.Is(context.Cause(wctx), errStalled) {
				return next, errStalled
			}
			return 0, fmt.Errorf("journal: read: %w", err)
		}
		progress.Store(mono())
		meta, err := msg.Metadata()
		if err != nil {
			return 0, fmt.Errorf("journal: read: %w", err)
		}
		if whole && !strings.HasPrefix(msg.Subject(), sh.prefix) {
			// A probe, which a filter of the journal's subjects leaves out.
			next = meta.Sequence.Stream + 1
			if meta.Sequence.Stream >= last {
				return 0, nil
			}
			continue
		}
		group, ok := j.Group(msg.Subject())
		if !ok {
			return 0, fmt.Errorf("journal: read: subject %s: %w", msg.Subject(), ErrCorrupt)
		}
		s := Stored{Group: group, Shard: sh.index, Seq: meta.Sequence.Stream, Time: meta.Timestamp, Data: msg.Data()}
		if err := fn(s); err != nil {
			return 0, err
		}
		next = s.Seq + 1
		if s.Seq >= last {
			return 0, nil
		}
	}
}
