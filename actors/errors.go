package actors

import (
	"errors"

	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/messages"
)

var (
	// ErrInvalidParameter: malformed payload, bad key or user ID, empty or
	// over-long counters, negative or overflowing value, a 21st key.
	ErrInvalidParameter = contract.ErrInvalidParameter
	// ErrInvalidGroupID: the group ID is missing or outside its alphabet or
	// length.
	ErrInvalidGroupID = contract.ErrInvalidGroupID
	// ErrRateLimited: the user made 20 calls of the kind within the window.
	ErrRateLimited = errors.New("rate limit exceeded")
	// ErrNotAllowed: a user who is not a member called a group that has
	// had members, or a user asked for a members change.
	ErrNotAllowed = errors.New("not allowed")
	// ErrUnavailable: the journal or the actor did not answer in time; the
	// outcome of a write is unknown.
	ErrUnavailable = errors.New("service unavailable")
)

// codes is the one table from errors to the contract's codes. Anything not
// in it is an internal error (10002).
var codes = []struct {
	err  error
	code messages.Code
}{
	{ErrRateLimited, messages.Code_CODE_RATE_LIMITED},
	{ErrInvalidParameter, messages.Code_CODE_INVALID_PARAMETER},
	{ErrNotAllowed, messages.Code_CODE_NOT_ALLOWED},
	{ErrInvalidGroupID, messages.Code_CODE_INVALID_GROUP_ID},
	{ErrUnavailable, messages.Code_CODE_INTERNAL},
}

// Code returns the contract's code for err.
func Code(err error) messages.Code {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return messages.Code_CODE_INTERNAL
}
