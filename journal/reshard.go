package journal

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrSharded means a reshard found a journal of shard streams: only a
// journal of one stream is resharded.
var ErrSharded = errors.New("journal: the journal has shard streams already")

// The values of a shard stream's metaReshard.
const (
	reshardCopying = "copying"
	reshardDone    = "done"
)

// Reshard is the move of a journal of one stream to shard streams, which
// a copy of every group's events fills (package audit's Reshard). While it
// lasts neither journal opens (see Discover): the one stream is sealed and
// the shard streams are marked as being filled.
type Reshard struct {
	From *Journal // the one stream, sealed
	To   *Journal // the shard streams
	js   jetstream.JetStream
	cfg  Config // To's
}

// BeginReshard starts the move of cfg's journal of one stream to shards
// shard streams, or takes up one that stopped before it finished. One
// update of the stream narrows its subjects to cfg.SubjectPrefix.* (its
// groups', which the shards' subjects, one token longer, do not overlap)
// and seals it: from then on no writer appends to it, an earlier version's
// node included. The shard streams get the stream's storage, replicas and
// events kept per group, and the mark of a reshard still copying.
//
// It refuses a journal that has shard streams already (ErrSharded), none
// (ErrNoJournal), and a reshard begun with another number of shards.
func BeginReshard(ctx context.Context, js jetstream.JetStream, cfg Config, shards int) (*Reshard, error) {
	if js == nil {
		return nil, errNoJetStream
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if shards < 2 || shards > MaxShards {
		return nil, fmt.Errorf("journal: reshard to %d shards: want 2..%d", shards, MaxShards)
	}
	single, found, err := listStreams(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	if err := reshardable(ctx, js, cfg, shards, single, found); err != nil {
		return nil, err
	}
	sc := single.Config
	if !sc.Sealed {
		sc.Subjects, sc.Sealed = []string{cfg.SubjectPrefix + ".*"}, true
		if _, err := js.UpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("journal: seal %s: %w", sc.Name, err)
		}
	}
	old, err := js.Stream(ctx, sc.Name)
	if err != nil {
		return nil, fmt.Errorf("journal: stream %s: %w", sc.Name, err)
	}
	to := cfg
	to.Shards, to.Replicas, to.Storage = shards, sc.Replicas, sc.Storage
	to.KeepPerGroup = int(max(sc.MaxMsgsPerSubject, 0))
	r := &Reshard{js: js, cfg: to}
	streams, err := r.ensure(ctx, reshardCopying)
	if err != nil {
		return nil, err
	}
	if r.From, err = newJournal(js, cfg, cfg.layout(1), []jetstream.Stream{old}); err != nil {
		return nil, err
	}
	if r.To, err = newJournal(js, to, to.layout(shards), streams); err != nil {
		r.From.Close()
		return nil, err
	}
	return r, nil
}

// reshardable checks that the streams found are a journal of one stream,
// or one that a reshard to shards streams began with.
func reshardable(ctx context.Context, js jetstream.JetStream, cfg Config, shards int, single *jetstream.StreamInfo, found []*jetstream.StreamInfo) error {
	if single == nil {
		l, err := Discover(ctx, js, cfg)
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: %s", ErrSharded, l)
	}
	if len(found) == 0 {
		return nil
	}
	if !single.Config.Sealed {
		return fmt.Errorf("%w: %s next to %d shard streams", ErrMixedLayout, cfg.Stream, len(found))
	}
	copying := false
	for _, info := range found {
		md := info.Config.Metadata
		if n := md[metaShards]; n != strconv.Itoa(shards) {
			return fmt.Errorf("%w: stream %s is one of %q shards: a reshard to that many began; finish it with that number", ErrMixedLayout, info.Config.Name, n)
		}
		copying = copying || md[metaReshard] == reshardCopying
	}
	if !copying && len(found) == shards {
		return fmt.Errorf("%w: %s; %s, sealed, is the journal they were copied from, kept", ErrSharded, cfg.layout(shards), cfg.Stream)
	}
	return nil
}

// ensure creates the shard streams, or updates them, with mark as their
// metaReshard.
func (r *Reshard) ensure(ctx context.Context, mark string) ([]jetstream.Stream, error) {
	layout := r.cfg.layout(r.cfg.Shards)
	return ensureStreams(ctx, r.js, layout, func(s int) jetstream.StreamConfig {
		sc := streamConfig(r.cfg, layout, s)
		sc.Metadata[metaReshard] = mark
		return sc
	})
}

// Finish marks the shard streams as complete, after which nodes open
// them, and deletes the one stream unless keepOld. A kept one stays
// sealed, and nodes ignore it.
func (r *Reshard) Finish(ctx context.Context, keepOld bool) error {
	if _, err := r.ensure(ctx, reshardDone); err != nil {
		return err
	}
	if keepOld {
		return nil
	}
	if err := r.js.DeleteStream(ctx, r.From.layout.Stream); err != nil {
		return fmt.Errorf("journal: delete %s: %w", r.From.layout.Stream, err)
	}
	return nil
}

// Close closes both journals.
func (r *Reshard) Close() {
	r.From.Close()
	r.To.Close()
}

// BindKept opens cfg's one stream that a reshard kept, sealed, next to the
// shard streams it was copied to, as Bind opened it before: for the tools
// that read it. Nodes ignore it (see Discover).
func BindKept(ctx context.Context, js jetstream.JetStream, cfg Config) (*Journal, error) {
	if js == nil {
		return nil, errNoJetStream
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("%w %s (a reshard deletes it unless told to keep it)", ErrNoJournal, cfg.Stream)
	}
	if err != nil {
		return nil, fmt.Errorf("journal: stream %s: %w", cfg.Stream, err)
	}
	if !stream.CachedInfo().Config.Sealed {
		return nil, fmt.Errorf("journal: stream %s is not sealed: it is the journal, not a copy a reshard kept", cfg.Stream)
	}
	return newJournal(js, cfg, cfg.layout(1), []jetstream.Stream{stream})
}
