package journal

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/messages"
)

// Journal appends and reads group events. It is safe for concurrent use.
type Journal struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	cfg    Config
	prefix string // SubjectPrefix + "."
	acks   *acks
	probed atomic.Uint64 // the stream sequence of this journal's last probe
}

// Open creates the journal's stream, or updates it to cfg, and returns the
// journal.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Journal, error) {
	if js == nil {
		return nil, errNoJetStream
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	stream, err := EnsureStream(ctx, js, jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "tally journal: one subject per group, each event with the group's whole state",
		// Probe writes go to the journal's own store, so that they fail
		// whenever appends would; each writer deletes its last one.
		Subjects:  []string{cfg.SubjectPrefix + ".>", probeSubject(cfg)},
		Storage:   cfg.Storage,
		Replicas:  cfg.Replicas,
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardNew,
		// Any replica answers a direct get, also one that lags behind the
		// leader: a replicated journal is read through its leader, so that
		// a group's new owner never loads an old state.
		AllowDirect: cfg.Replicas == 1,
		// The per-subject limit drops a group's oldest event whatever the
		// stream's discard policy.
		MaxMsgsPerSubject: int64(cfg.KeepPerGroup), // 0: no limit
		// Appends carry message IDs only when they may be resent.
		Duplicates: duplicates(cfg),
	})
	if err != nil {
		return nil, fmt.Errorf("journal: open stream %s: %w", cfg.Stream, err)
	}
	if err := awaitGet(ctx, stream, cfg.SubjectPrefix+"._probe"); err != nil {
		return nil, fmt.Errorf("journal: stream %s: %w", cfg.Stream, err)
	}
	// Earlier versions probed a stream of its own, which could take
	// writes while the journal's store took none.
	if err := js.DeleteStream(ctx, cfg.Stream+"_PROBE"); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("journal: delete stream %s_PROBE: %w", cfg.Stream, err)
	}
	acks, err := startAcks(js.Conn(), cfg.AckTimeout, cfg.Resend, cfg.Syncer)
	if err != nil {
		return nil, err
	}
	return &Journal{js: js, stream: stream, cfg: cfg, prefix: cfg.SubjectPrefix + ".", acks: acks}, nil
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

// Stored reports when the journal last acknowledged an append of this
// process, or a probe (zero when neither happened).
func (j *Journal) Stored() time.Time {
	if n := j.acks.lastStored.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// probeSubject is the subject of every writer's probes, which is no
// group's.
func probeSubject(cfg Config) string { return cfg.SubjectPrefix + "-probe" }

// Probe writes a message to the journal's stream, as an append would, and
// waits for its acknowledgement: it tells whether the journal would take
// a write now. It then deletes its previous probe, so that the journal
// keeps one probe per writer, and one of each writer that stopped while
// it probed.
func (j *Journal) Probe(ctx context.Context) error {
	ack, err := j.js.Publish(ctx, probeSubject(j.cfg), nil)
	if err != nil {
		return fmt.Errorf("journal: probe write: %w", err)
	}
	j.acks.lastStored.Store(time.Now().UnixNano())
	if prev := j.probed.Swap(ack.Sequence); prev != 0 {
		if err := j.stream.DeleteMsg(ctx, prev); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("journal: delete the last probe: %w", err)
		}
	}
	return nil
}

// Subject is the subject of group's events.
func (j *Journal) Subject(group string) string { return j.prefix + group }

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
	ack, err := j.js.Publish(ctx, subj, data, jetstream.WithExpectLastSequencePerSubject(expected))
	if err != nil {
		if WrongLastSequence(err) {
			return 0, fmt.Errorf("append %s after %d: %w", subj, expected, ErrConflict)
		}
		return 0, fmt.Errorf("journal: append %s: %w", subj, err)
	}
	return ack.Sequence, nil
}

// Last returns the group's last event and its stream sequence, or a nil event
// and 0 when the group has none.
func (j *Journal) Last(ctx context.Context, group string) (*messages.Event, uint64, error) {
	msg, err := j.stream.GetLastMsgForSubject(ctx, j.Subject(group))
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

// At returns the group's event at stream sequence seq.
func (j *Journal) At(ctx context.Context, group string, seq uint64) (*messages.Event, error) {
	msg, err := j.stream.GetMsg(ctx, seq)
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
func (j *Journal) Group(subject string) (string, bool) {
	if len(subject) <= len(j.prefix) || subject[:len(j.prefix)] != j.prefix {
		return "", false
	}
	return subject[len(j.prefix):], true
}

func (j *Journal) String() string {
	return j.cfg.Stream + " (" + j.prefix + "<group>, R" + strconv.Itoa(j.cfg.Replicas) + ")"
}

// awaitGet waits until the stream answers gets: the servers of a
// replicated stream start serving them a moment after it is created (or
// after its leader changed), and until then a get finds no responders.
func awaitGet(ctx context.Context, stream jetstream.Stream, subject string) error {
	for {
		_, err := stream.GetLastMsgForSubject(ctx, subject)
		if err == nil || errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if !errors.Is(err, nats.ErrNoResponders) {
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
