package journal

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/messages"
)

// Journal appends and reads group events. It is safe for concurrent use.
type Journal struct {
	js     jetstream.JetStream
	cfg    Config
	layout Layout
	shards []*shard
	acks   *acks
}

// shard is one stream of the journal.
type shard struct {
	index  int
	name   string // its stream's
	stream jetstream.Stream
	prefix string        // its groups' subjects' prefix, ending in a dot
	probe  string        // its probe subject
	probed atomic.Uint64 // the stream sequence of this journal's last probe
}

// Open creates the journal's streams, or updates them to cfg, and returns
// the journal. An existing journal keeps its layout (see Discover); a new
// one gets cfg.Shards streams. When several writers create a journal at
// once, the first stream made decides the layout for all of them.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Journal, error) {
	if js == nil {
		return nil, errNoJetStream
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	layout, err := openLayout(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	streams, err := ensureStreams(ctx, js, layout, func(s int) jetstream.StreamConfig { return streamConfig(cfg, layout, s) })
	if err != nil {
		return nil, err
	}
	// Earlier versions probed a stream of its own, which could take
	// writes while the journal's store took none.
	if err := js.DeleteStream(ctx, cfg.Stream+"_PROBE"); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("journal: delete stream %s_PROBE: %w", cfg.Stream, err)
	}
	return newJournal(js, cfg, layout, streams)
}

// ensureStreams creates or updates the streams of layout's shards to
// configOf's, at once, and waits until each answers gets.
func ensureStreams(ctx context.Context, js jetstream.JetStream, layout Layout, configOf func(s int) jetstream.StreamConfig) ([]jetstream.Stream, error) {
	streams := make([]jetstream.Stream, layout.Shards)
	errs := make([]error, layout.Shards)
	var wg sync.WaitGroup
	for s := range layout.Shards {
		wg.Go(func() {
			name := layout.StreamOf(s)
			stream, err := EnsureStream(ctx, js, configOf(s))
			if err != nil {
				errs[s] = fmt.Errorf("journal: open stream %s: %w", name, err)
				return
			}
			if err := awaitGet(ctx, stream, layout.prefixOf(s)+"_probe"); err != nil {
				errs[s] = fmt.Errorf("journal: stream %s: %w", name, err)
				return
			}
			streams[s] = stream
		})
	}
	wg.Wait()
	return streams, errors.Join(errs...)
}

// openLayout returns the layout of the journal in js, and when there is
// none makes its first stream, which decides it.
func openLayout(ctx context.Context, js jetstream.JetStream, cfg Config) (Layout, error) {
	found, _, err := discover(ctx, js, cfg)
	if err != nil || found.Shards > 0 {
		return found, err
	}
	want := cfg.layout(cfg.Shards)
	_, err = js.CreateStream(ctx, streamConfig(cfg, want, 0))
	if err == nil {
		return want, nil
	}
	// Another writer made the journal meanwhile, maybe with another
	// number of shards: then its streams decide.
	if again, _, derr := discover(ctx, js, cfg); derr == nil && again.Shards > 0 {
		return again, nil
	}
	return Layout{}, fmt.Errorf("journal: create stream %s: %w", want.StreamOf(0), err)
}

// streamConfig is the configuration of shard s's stream.
func streamConfig(cfg Config, l Layout, s int) jetstream.StreamConfig {
	sc := jetstream.StreamConfig{
		Name:        l.StreamOf(s),
		Description: "tally journal: one subject per group, each event with the group's whole state",
		// Probe writes go to the journal's own store, so that they fail
		// whenever appends would; each writer deletes its last one.
		Subjects:  []string{l.prefixOf(s) + ">", l.probeSubject(s)},
		Storage:   cfg.Storage,
		Replicas:  cfg.Replicas,
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardNew,
		// Any replica answers a direct get, also one that lags behind the
		// leader: a replicated journal is read through its leader, so that
		// a group's new owner never loads an old state (and confirms what
		// it read: a leader cut off from the others reads from its own
		// store until it notices; see Confirm).
		AllowDirect: cfg.Replicas == 1,
		// The per-subject limit drops a group's oldest event whatever the
		// stream's discard policy.
		MaxMsgsPerSubject: int64(cfg.KeepPerGroup), // 0: no limit
		// Appends carry message IDs only when they may be resent.
		Duplicates: duplicates(cfg),
	}
	if l.Shards > 1 {
		// One stream's metadata tells the whole layout (see Discover).
		sc.Metadata = map[string]string{
			metaShards:     strconv.Itoa(l.Shards),
			metaShard:      strconv.Itoa(s),
			metaPartitions: strconv.Itoa(Partitions),
		}
	}
	return sc
}

// newJournal returns the journal of layout's streams.
func newJournal(js jetstream.JetStream, cfg Config, layout Layout, streams []jetstream.Stream) (*Journal, error) {
	acks, err := startAcks(js.Conn(), cfg.AckTimeout, cfg.Resend, cfg.Syncer, cfg.clock())
	if err != nil {
		return nil, err
	}
	j := &Journal{js: js, cfg: cfg, layout: layout, acks: acks}
	for s, stream := range streams {
		j.shards = append(j.shards, &shard{index: s, name: layout.StreamOf(s), stream: stream, prefix: layout.prefixOf(s), probe: layout.probeSubject(s)})
	}
	return j, nil
}

// Layout returns how the journal's groups spread over its streams.
func (j *Journal) Layout() Layout { return j.layout }

// shardOf returns the shard that holds group.
func (j *Journal) shardOf(group string) *shard {
	if len(j.shards) == 1 {
		return j.shards[0]
	}
	return j.shards[j.layout.ShardOf(group)]
}

// duplicates is the stream's duplicate window: long enough for every
// resend of an append, and no longer, since the stream keeps every message
// ID of the window.
func duplicates(cfg Config) time.Duration {
	if cfg.Resend > 0 {
		return 2 * cfg.AckTimeout
	}
	return 0 // the server's default
}

// SinceStored reports how long ago, on the journal's monotonic clock, it
// last acknowledged an append of this process or a probe, and false when
// neither happened. A wall clock set back or forward does not change it.
func (j *Journal) SinceStored() (time.Duration, bool) {
	n := j.acks.lastStored.Load()
	if n == 0 {
		return 0, false
	}
	return time.Duration(j.acks.clock.Mono() - n), true
}

// Probe writes a message to each of the journal's streams, as an append
// would, and waits for their acknowledgements: it tells whether the
// journal would take a write now, and names the streams that would not.
// It then deletes its previous probes, so that the journal keeps one probe
// per writer, and one of each writer that stopped while it probed.
func (j *Journal) Probe(ctx context.Context) error {
	if len(j.shards) == 1 {
		return j.probe(ctx, j.shards[0])
	}
	errs := make([]error, len(j.shards))
	var wg sync.WaitGroup
	for i, sh := range j.shards {
		wg.Go(func() { errs[i] = j.probe(ctx, sh) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (j *Journal) probe(ctx context.Context, sh *shard) error {
	ack, err := j.js.Publish(ctx, sh.probe, nil)
	if err != nil {
		return fmt.Errorf("journal: probe write to %s: %w", sh.name, err)
	}
	j.acks.stored()
	if prev := sh.probed.Swap(ack.Sequence); prev != 0 {
		if err := sh.stream.DeleteMsg(ctx, prev); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("journal: delete the last probe of %s: %w", sh.name, err)
		}
	}
	return nil
}

// Subject is the subject of group's events.
func (j *Journal) Subject(group string) string { return j.shardOf(group).prefix + group }

// Append stores ev as the group's next event if the group's last event is at
// stream sequence expected (0: the group has none) and returns the new
// event's sequence. A stale expected sequence gives ErrConflict and stores
// nothing.
func (j *Journal) Append(ctx context.Context, group string, expected uint64, ev *messages.Event) (uint64, error) {
	data, err := encodeEvent(ev)
	if err != nil {
		return 0, fmt.Errorf("journal: encode event of %s: %w", group, err)
	}
	subj := j.Subject(group)
	for tries := 1; ; tries++ {
		ack, err := j.js.Publish(ctx, subj, data, jetstream.WithExpectLastSequencePerSubject(expected))
		switch {
		case err == nil:
			return ack.Sequence, nil
		case !WrongLastSequence(err):
			return 0, fmt.Errorf("journal: append %s: %w", subj, err)
		case tries < 3 && inProcess(err) && j.unchanged(ctx, group, expected):
			// A replicated stream acknowledges an append before it has
			// finished with it, and meanwhile refuses the subject's next
			// fenced append (10164), which it did not store: a writer
			// that waited for the acknowledgement sends it again.
			continue
		}
		return 0, fmt.Errorf("append %s after %d: %w", subj, expected, ErrConflict)
	}
}

// inProcess reports JetStream's refusal of a fenced append while another
// append to its subject is being stored (10164), which may be this
// writer's previous one, already acknowledged.
func inProcess(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// unchanged reports whether group's last event is still at stream
// sequence expected, read through the stream's leader.
func (j *Journal) unchanged(ctx context.Context, group string, expected uint64) bool {
	_, last, err := j.Last(ctx, group)
	return err == nil && last == expected
}

// Last returns the group's last event and its stream sequence, or a nil event
// and 0 when the group has none.
func (j *Journal) Last(ctx context.Context, group string) (*messages.Event, uint64, error) {
	msg, err := j.shardOf(group).stream.GetLastMsgForSubject(ctx, j.Subject(group))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("journal: last event of %s: %w", group, err)
	}
	ev, err := decode(msg.Data, msg.Subject, msg.Sequence)
	if err != nil {
		return nil, 0, err
	}
	return ev, msg.Sequence, nil
}

// Confirm checks through a write that group's last event is at stream
// sequence seq (0: the group has none), as Last said: Last is answered by
// whichever server believes that it leads the group's stream, also one
// cut off from the others, which goes on believing so for seconds after
// they elected another leader and stored more of the group's events. A
// write is acknowledged only once a quorum of the stream's replicas stored
// it: Confirm writes a probe that the stream takes only while the group's
// last event is at seq, and fails with ErrConflict when it is elsewhere.
// It then deletes this journal's previous probe, as Probe does, without
// waiting for it: the delete is another write through a quorum, which the
// load being confirmed need not wait for.
func (j *Journal) Confirm(ctx context.Context, group string, seq uint64) error {
	sh := j.shardOf(group)
	ack, err := j.js.Publish(ctx, sh.probe, nil, jetstream.WithExpectLastSequenceForSubject(seq, j.Subject(group)))
	switch {
	case WrongLastSequence(err):
		return fmt.Errorf("confirm %s at %d: %w", group, seq, ErrConflict)
	case err != nil:
		return fmt.Errorf("journal: confirm the last event of %s: %w", group, err)
	}
	if prev := sh.probed.Swap(ack.Sequence); prev != 0 {
		// A probe that cannot be deleted stays; the confirmation stands.
		go func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), confirmDeleteTimeout)
			defer cancel()
			_ = sh.stream.DeleteMsg(dctx, prev)
		}()
	}
	return nil
}

// confirmDeleteTimeout bounds the delete of a confirmation's previous
// probe.
const confirmDeleteTimeout = 5 * time.Second

// At returns the group's event at stream sequence seq.
func (j *Journal) At(ctx context.Context, group string, seq uint64) (*messages.Event, error) {
	msg, err := j.shardOf(group).stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("event %d of %s: %w", seq, group, ErrRemoved)
	}
	if err != nil {
		return nil, fmt.Errorf("journal: event %d of %s: %w", seq, group, err)
	}
	if msg.Subject != j.Subject(group) {
		return nil, fmt.Errorf("event %d is on %s, not %s: %w", seq, msg.Subject, j.Subject(group), ErrCorrupt)
	}
	return decode(msg.Data, msg.Subject, seq)
}

func decode(data []byte, subject string, seq uint64) (*messages.Event, error) {
	ev, err := decodeEvent(data)
	if err != nil {
		return nil, fmt.Errorf("event %d on %s: %w: %w", seq, subject, ErrCorrupt, err)
	}
	return ev, nil
}

// Group returns the group of a journal subject, and false for a subject
// outside the journal.
func (j *Journal) Group(subject string) (string, bool) { return j.layout.Group(subject) }

func (j *Journal) String() string {
	return j.layout.describe(", R" + strconv.Itoa(j.cfg.Replicas))
}

// awaitGet waits until the stream answers gets: the servers of a
// replicated stream start serving them a moment after it is created (or
// after its leader changed), and until then a get finds no responders, or
// right after the creation a server that does not know the stream yet.
func awaitGet(ctx context.Context, stream jetstream.Stream, subject string) error {
	for {
		_, err := stream.GetLastMsgForSubject(ctx, subject)
		if err == nil || errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("get: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gets not served yet: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// JetStream is the JetStream context of the journal's account, where the
// buckets derived from it live too (the membership index).
func (j *Journal) JetStream() jetstream.JetStream { return j.js }
