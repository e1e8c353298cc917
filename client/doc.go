// Package client is the Go SDK of tally, shaped like Tencent Cloud Chat's
// Web SDK: SetGroupCounters, IncreaseGroupCounter, DecreaseGroupCounter,
// GetGroupCounters and OnGroupCounterUpdated.
//
// A Client acts as one user on the user subjects, which are rate limited per
// user. An Admin acts for a trusted back end on the admin subjects, which
// are not limited and can also delete counters.
//
// Every write carries a request ID, the caller's or a generated one, so a
// write that failed with ErrInternal (the outcome is unknown) is retried
// with the same ID and applied at most once.
//
// A call that the NATS server's permissions refuse, because the connection
// may not publish on the call's subject or may not subscribe to its own
// replies (_INBOX_<user>.> for a Client, _INBOX.> or the connection's own
// inbox prefix for an Admin), fails as soon as the server reports it, without retries, with an
// error that names the subject and wraps nats.ErrPermissionViolation. New
// and NewAdmin chain a handler in front of the connection's error handler
// to learn of it, and call the handler that was there for every error; an
// error handler set with nats.Conn.SetErrorHandler after them replaces the
// chain, and refused calls then wait for their replies until they time
// out.
package client
