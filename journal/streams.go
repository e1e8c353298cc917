package journal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureStream creates or updates a stream to want, unless it has want's
// settings already: on a cluster every update is a proposal to the meta
// leader, which a busy cluster may not answer in time, and a node that
// restarts needs none. The journal's streams and the cluster's buckets
// are made with it.
func EnsureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) (jetstream.Stream, error) {
	if stream, err := js.Stream(ctx, want.Name); err == nil && sameStream(stream.CachedInfo().Config, want) {
		return stream, nil
	}
	return js.CreateOrUpdateStream(ctx, want)
}

// sameStream reports whether a stream has the settings tally relies on:
// those of want, with the server's default duplicate window when want sets
// none, and at least want's metadata (the server adds its own).
func sameStream(got, want jetstream.StreamConfig) bool {
	for k, v := range want.Metadata {
		if got.Metadata[k] != v {
			return false
		}
	}
	return got.Description == want.Description && slices.Equal(got.Subjects, want.Subjects) &&
		got.Storage == want.Storage && got.Replicas == want.Replicas &&
		got.Retention == want.Retention && got.Discard == want.Discard &&
		got.AllowDirect == want.AllowDirect && got.MaxMsgsPerSubject == want.MaxMsgsPerSubject &&
		got.MaxAge == want.MaxAge && (want.Duplicates == 0 || got.Duplicates == want.Duplicates) &&
		got.AllowRollup == want.AllowRollup && got.DenyDelete == want.DenyDelete &&
		got.AllowMsgTTL == want.AllowMsgTTL && got.SubjectDeleteMarkerTTL == want.SubjectDeleteMarkerTTL &&
		got.Sealed == want.Sealed
}

// The metadata of a shard stream: how many shards the journal has, which
// one the stream is, how many partitions the shards divide.
const (
	metaShards     = "tally_shards"
	metaShard      = "tally_shard"
	metaPartitions = "tally_partitions"
	// metaReshard marks a stream that a copy into a new layout is still
	// filling ("copying"); "done" once it holds every group.
	metaReshard = "tally_reshard"
)

// ErrMixedLayout means the journal's streams make no one layout: a single
// stream next to shard streams, shards of different counts, a missing or
// unfinished shard.
var ErrMixedLayout = errors.New("journal: the streams do not make one journal layout")

// Discover reads the layout of cfg's journal from its streams: the single
// stream cfg.Stream, or shard streams cfg.Stream_<s> whose metadata all
// tell the same number of shards. It returns ErrNoJournal when there is no
// journal and ErrMixedLayout when the streams make no one layout. A
// sealed single stream next to complete shard streams is an old copy, and
// ignored.
func Discover(ctx context.Context, js jetstream.JetStream, cfg Config) (Layout, error) {
	l, found, err := discover(ctx, js, cfg)
	if err != nil {
		return Layout{}, err
	}
	if l.Shards == 0 {
		return Layout{}, fmt.Errorf("%w %s", ErrNoJournal, cfg.Stream)
	}
	if len(found) != l.Shards {
		return Layout{}, fmt.Errorf("%w: %d of %d shard streams of %s", ErrMixedLayout, len(found), l.Shards, cfg.Stream)
	}
	return l, nil
}

// discover is Discover that also takes a journal whose shard streams are
// not all made yet (it returns the ones found): Open makes the others.
// Without a journal, the layout has no shards.
func discover(ctx context.Context, js jetstream.JetStream, cfg Config) (Layout, map[int]bool, error) {
	single, shards, err := listStreams(ctx, js, cfg)
	if err != nil {
		return Layout{}, nil, err
	}
	switch {
	case single != nil && len(shards) == 0:
		if single.Config.Sealed {
			return Layout{}, nil, fmt.Errorf("%w: %s is sealed and there are no shard streams: an unfinished reshard", ErrMixedLayout, cfg.Stream)
		}
		return cfg.layout(1), map[int]bool{0: true}, nil
	case single != nil && !single.Config.Sealed:
		return Layout{}, nil, fmt.Errorf("%w: %s next to %d shard streams", ErrMixedLayout, cfg.Stream, len(shards))
	case len(shards) == 0:
		return Layout{}, nil, nil
	}
	n, found := 0, map[int]bool{}
	for _, info := range shards {
		s, err := shardOfStream(info)
		if err != nil {
			return Layout{}, nil, err
		}
		count, _ := strconv.Atoi(info.Config.Metadata[metaShards])
		if n != 0 && count != n {
			return Layout{}, nil, fmt.Errorf("%w: %s is one of %d shards, another stream one of %d", ErrMixedLayout, info.Config.Name, count, n)
		}
		n, found[s] = count, true
	}
	return cfg.layout(n), found, nil
}

// listStreams returns the journal's single stream cfg.Stream (nil when
// there is none) and the streams named as its shards, cfg.Stream_<s>.
func listStreams(ctx context.Context, js jetstream.JetStream, cfg Config) (single *jetstream.StreamInfo, shards []*jetstream.StreamInfo, err error) {
	list := js.ListStreams(ctx)
	for info := range list.Info() {
		name := info.Config.Name
		if name == cfg.Stream {
			single = info
		} else if rest, ok := strings.CutPrefix(name, cfg.Stream+"_"); ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
			shards = append(shards, info)
		}
	}
	if err := list.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return nil, nil, fmt.Errorf("journal: list streams: %w", err)
	}
	return single, shards, nil
}

// shardOfStream checks a shard stream's metadata against its name and
// returns its shard.
func shardOfStream(info *jetstream.StreamInfo) (int, error) {
	md, name := info.Config.Metadata, info.Config.Name
	count, err1 := strconv.Atoi(md[metaShards])
	s, err2 := strconv.Atoi(md[metaShard])
	switch {
	case err1 != nil || err2 != nil || count < 2 || count > MaxShards || s < 0 || s >= count ||
		!strings.HasSuffix(name, "_"+strconv.Itoa(s)) || md[metaPartitions] != strconv.Itoa(Partitions):
		return 0, fmt.Errorf("%w: stream %s has no valid shard metadata (%s %q, %s %q, %s %q)", ErrMixedLayout, name,
			metaShards, md[metaShards], metaShard, md[metaShard], metaPartitions, md[metaPartitions])
	case md[metaReshard] == "copying":
		return 0, fmt.Errorf("%w: stream %s is still being filled by a reshard", ErrMixedLayout, name)
	}
	return s, nil
}
