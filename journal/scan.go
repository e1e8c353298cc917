package journal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/messages"
)

// ErrNoJournal means the stream Bind looked for does not exist.
var ErrNoJournal = errors.New("journal: no journal stream")

// Bind opens an existing journal as it is, in the layout its streams have
// (see Discover), without creating a stream or changing its settings: for
// the tools that read, check or repair a journal.
func Bind(ctx context.Context, js jetstream.JetStream, cfg Config) (*Journal, error) {
	if js == nil {
		return nil, errNoJetStream
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	layout, err := Discover(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	streams := make([]jetstream.Stream, layout.Shards)
	for s := range streams {
		name := layout.StreamOf(s)
		streams[s], err = js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("%w %s", ErrNoJournal, name)
		}
		if err != nil {
			return nil, fmt.Errorf("journal: stream %s: %w", name, err)
		}
	}
	return newJournal(js, cfg, layout, streams)
}

// Stored is one message of the journal as the stream keeps it.
type Stored struct {
	Group string
	Shard int       // the shard whose stream holds it
	Seq   uint64    // stream sequence, in the shard's stream
	Time  time.Time // when the stream stored it
	Data  []byte
}

// Event decodes the stored message.
func (s Stored) Event() (*messages.Event, error) {
	return decodeEvent(s.Data)
}

// lastOf returns the stream sequence of the last message on the subjects
// of filter (a wildcard one too), read through the stream's leader, or 0
// when there is none: where a read of them ends. The stream's own last
// sequence may be a message of another subject (a probe's).
func lastOf(ctx context.Context, sh *shard, filter string) (uint64, error) {
	msg, err := sh.stream.GetLastMsgForSubject(ctx, filter)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("last message of %s: %w", filter, err)
	}
	return msg.Sequence, nil
}

// Scan calls fn for each message stored on the journal's subjects when it
// starts (one group's when group is not empty), from stream sequence from
// on, each stream's in commit order, one stream after the other,
// undecoded: a tool sees the events that do not decode too. It stops at
// the first error fn returns.
func (j *Journal) Scan(ctx context.Context, group string, from uint64, fn func(Stored) error) error {
	if group != "" {
		return j.scan(ctx, j.shardOf(group), group, from, fn)
	}
	for _, sh := range j.shards {
		if err := j.scan(ctx, sh, "", from, fn); err != nil {
			return err
		}
	}
	return nil
}

// scan is Scan of one shard.
func (j *Journal) scan(ctx context.Context, sh *shard, group string, from uint64, fn func(Stored) error) error {
	filter := sh.prefix + ">"
	if group != "" {
		filter = sh.prefix + group
	}
	last, err := lastOf(ctx, sh, filter)
	if err != nil {
		return fmt.Errorf("journal: scan: %w", err)
	}
	if last == 0 || from > last {
		return nil
	}
	if group != "" {
		// A group's first events are read one by one through the leader:
		// most histories are short, and a get needs no consumer, which on
		// a cluster can take a second to deliver.
		var done bool
		var err error
		if from, done, err = j.scanGets(ctx, sh, group, max(from, 1), last, fn); err != nil || done {
			return err
		}
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	return j.consume(ctx, sh, cfg, last, fn)
}

// scanGets is how many of a group's events Scan reads by gets before it
// reads on through a consumer.
const scanGets = 256

// scanGets reads group's events from stream sequence from on by gets, up
// to scanGets of them; done says whether it reached last, and next is
// where a consumer goes on.
func (j *Journal) scanGets(ctx context.Context, sh *shard, group string, from, last uint64, fn func(Stored) error) (next uint64, done bool, err error) {
	subject := sh.prefix + group
	for range scanGets {
		msg, err := sh.stream.GetMsg(ctx, from, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, true, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("journal: scan %s: %w", group, err)
		}
		if err := fn(Stored{Group: group, Shard: sh.index, Seq: msg.Sequence, Time: msg.Time, Data: msg.Data}); err != nil {
			return 0, false, err
		}
		if msg.Sequence >= last {
			return 0, true, nil
		}
		from = msg.Sequence + 1
	}
	return from, false, nil
}

// Remove deletes the stored message at stream sequence seq, which must be
// one of group's: the repair of a group whose last events are bad.
func (j *Journal) Remove(ctx context.Context, group string, seq uint64) error {
	stream := j.shardOf(group).stream
	msg, err := stream.GetMsg(ctx, seq)
	if err != nil {
		return fmt.Errorf("journal: remove %d: %w", seq, err)
	}
	if msg.Subject != j.Subject(group) {
		return fmt.Errorf("journal: remove %d: it is on %s, not %s", seq, msg.Subject, j.Subject(group))
	}
	if err := stream.DeleteMsg(ctx, seq); err != nil {
		return fmt.Errorf("journal: remove %d: %w", seq, err)
	}
	return nil
}

// Conn is the connection the journal reads and writes on: a tool that
// also calls the node's services uses it.
func (j *Journal) Conn() *nats.Conn { return j.js.Conn() }

// Events is how many messages the journal's streams hold: every group's
// events.
func (j *Journal) Events(ctx context.Context) (uint64, error) {
	var n uint64
	for _, sh := range j.shards {
		info, err := sh.stream.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("journal: stream %s info: %w", sh.name, err)
		}
		n += info.State.Msgs
	}
	return n, nil
}

// GroupEvents returns how many events each group has in the journal's
// streams, as the streams count them.
func (j *Journal) GroupEvents(ctx context.Context) (map[string]uint64, error) {
	counts := map[string]uint64{}
	for _, sh := range j.shards {
		info, err := sh.stream.Info(ctx, jetstream.WithSubjectFilter(sh.prefix+">"))
		if err != nil {
			return nil, fmt.Errorf("journal: stream %s info: %w", sh.name, err)
		}
		for subject, n := range info.State.Subjects {
			if group, ok := j.layout.Group(subject); ok {
				counts[group] += n
			}
		}
	}
	return counts, nil
}
