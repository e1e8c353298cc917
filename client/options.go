package client

import (
	"errors"
	"fmt"
	"time"
)

type options struct {
	prefix  string
	timeout time.Duration
	retries int
	backoff time.Duration
	endUser bool
}

func defaultOptions() options {
	return options{prefix: "tally.v1", timeout: 5 * time.Second, retries: 3, backoff: 50 * time.Millisecond}
}

// Option configures a Client or an Admin.
type Option func(*options) error

// AsEndUser says that the connection signed in with a user signature
// (MintUserSig): the updates of a members-only group then reach it on
// <prefix>.member-updates.<group>, which OnGroupCounterUpdated subscribes
// instead of the back ends' <prefix>.updates.<group>.members.
func AsEndUser() Option {
	return func(o *options) error {
		o.endUser = true
		return nil
	}
}

// WithTimeout bounds each attempt of a call whose context has no deadline
// (default 5 s).
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("client: timeout %v must be positive", d)
		}
		o.timeout = d
		return nil
	}
}

// WithRetries sets how often a call that failed with ErrInternal, a timeout
// or no responders is tried again (default 3). A call that finds nobody
// serving its subject (no responders) first waits for a node, trying again
// for as long as the timeout, before it counts a retry. A call refused by
// the server's permissions is not retried.
func WithRetries(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("client: retries %d must not be negative", n)
		}
		o.retries = n
		return nil
	}
}

// WithSubjectPrefix sets the contract's subject prefix (default tally.v1).
func WithSubjectPrefix(prefix string) Option {
	return func(o *options) error {
		if prefix == "" {
			return errors.New("client: empty subject prefix")
		}
		o.prefix = prefix
		return nil
	}
}

type writeOptions struct {
	requestID string
}

// WriteOption configures one write.
type WriteOption func(*writeOptions)

// WithRequestID makes a write idempotent under id (1..64 bytes) for the
// server's dedupe window: sent again, it changes nothing and gets the first
// reply. Without it the client generates an ID per call. A longer id makes
// the write fail with ErrInvalidParameter before it is sent.
func WithRequestID(id string) WriteOption {
	return func(o *writeOptions) { o.requestID = id }
}
