package journal

import (
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

var (
	// ErrConflict means another writer appended to the group since the
	// expected sequence: reload the group and try again.
	ErrConflict = errors.New("journal: group changed since its last known sequence")

	// ErrCorrupt means a stored event could not be decoded or does not follow
	// the event before it.
	ErrCorrupt = errors.New("journal: corrupt event")

	// ErrRemoved means an event asked for by its sequence is no longer
	// stored: an operator removed it.
	ErrRemoved = errors.New("journal: event removed")
)

// isWrongLastSequence reports whether err is JetStream's refusal of an
// append whose expected last subject sequence is stale: 10071 on R1 streams,
// 10164 on replicated ones.
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}
