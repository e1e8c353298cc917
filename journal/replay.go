package journal

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/messages"
)

// replayBatch is how many events a replay asks the server for at once; large
// batches roughly double the replay rate over the default.
const replayBatch = 5000

// Replay calls fn for every event stored when it starts, in commit order,
// and stops at the first error fn returns.
func (j *Journal) Replay(ctx context.Context, fn func(group string, seq uint64, ev *messages.Event) error) error {
	info, err := j.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("journal: replay: stream info: %w", err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil
	}
	cons, err := j.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{j.prefix + ">"},
	})
	if err != nil {
		return fmt.Errorf("journal: replay: consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(replayBatch))
	if err != nil {
		return fmt.Errorf("journal: replay: %w", err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("journal: replay: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("journal: replay: %w", err)
		}
		seq := meta.Sequence.Stream
		group, ok := j.Group(msg.Subject())
		if !ok {
			return fmt.Errorf("replay: subject %s: %w", msg.Subject(), ErrCorrupt)
		}
		ev, err := decode(msg.Data(), msg.Subject(), seq)
		if err != nil {
			return err
		}
		if err := fn(group, seq, ev); err != nil {
			return err
		}
		if seq >= last {
			return nil
		}
	}
}
