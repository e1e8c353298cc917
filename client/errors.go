package client

import "fmt"

// Error is a refusal from tally: the contract's code and tally's message.
// Match it with errors.Is against the sentinels below.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("tally: %d: %s", e.Code, e.Message)
}

// Is reports whether target is a sentinel with e's code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

var (
	// ErrRateLimited (2996): the user made 20 writes, or 20 gets, within
	// 5 seconds.
	ErrRateLimited = &Error{Code: 2996}
	// ErrInternal (10002): the journal was unavailable or the call timed
	// out; a write's outcome is unknown. The client retries these.
	ErrInternal = &Error{Code: 10002}
	// ErrInvalidParameter (10004): a malformed request, a bad key, value or
	// user ID, an empty or over-long counter list, an overflow, a 21st key.
	ErrInvalidParameter = &Error{Code: 10004}
	// ErrNotMember (10007): the user is not a member of a group that has
	// members; the call changed nothing.
	ErrNotMember = &Error{Code: 10007}
	// ErrNotAllowed is ErrNotMember's first name.
	ErrNotAllowed = ErrNotMember
	// ErrInvalidGroupID (10015): the group ID is empty, too long or has a
	// character outside its alphabet.
	ErrInvalidGroupID = &Error{Code: 10015}
)
