package journal

import (
	"context"
	"slices"

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
		got.AllowMsgTTL == want.AllowMsgTTL && got.SubjectDeleteMarkerTTL == want.SubjectDeleteMarkerTTL
}
