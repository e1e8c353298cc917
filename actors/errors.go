package actors

import (
	"errors"

	"github.com/tallyhq/tally/messages"
)

var (
	// ErrInvalidParameter: malformed payload, bad key or user ID, empty or
	// over-long counters, negative or overflowing value, a 21st key.
	ErrInvalidParameter = errors.New("invalid parameter")
	// ErrInvalidGroupID: the group ID is missing or outside its alphabet or
	// length.
	ErrInvalidGroupID = errors.New("invalid group ID")
	// ErrRateLimited: the user made 20 calls of the kind within the window.
	ErrRateLimited = errors.New("rate limit exceeded")
	// ErrNotAllowed is reserved for membership checks.
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

// replyError is err as the message a grain answers with.
func replyError(err error) *messages.Error {
	return &messages.Error{Code: int32(Code(err)), Message: err.Error()}
}

// codedError is an error that crossed the cluster as a *messages.Error: it
// keeps the grain's message and matches the sentinel of its code.
type codedError struct {
	msg  string
	code messages.Code
}

func (e *codedError) Error() string { return e.msg }

func (e *codedError) Is(target error) bool {
	for _, c := range codes {
		if c.err == target {
			return c.code == e.code
		}
	}
	return false
}

func fromReply(e *messages.Error) error {
	return &codedError{msg: e.GetMessage(), code: messages.Code(e.GetCode())}
}
