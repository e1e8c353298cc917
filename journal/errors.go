package journal

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
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

// WrongLastSequence reports whether err is JetStream's refusal of a write
// whose expected last (subject) sequence is stale: 10071 on R1 streams,
// 10164 on replicated ones. A key-value bucket refuses a stale revision
// with the same errors.
func WrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// Unanswered reports whether a journal read timed out: no server answered
// in time (a replicated stream elects a new leader for a few seconds after
// its leader died, and meanwhile no server answers), so trying again may
// succeed. A stream that is gone is refused at once, not unanswered.
func Unanswered(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
}
