package client

import (
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
)

// The server answers a publish or a subscription that its permissions deny
// with an error line instead of a reply, and nats.go reports it
// asynchronously, as the connection's last error and to its error handler,
// wrapping nats.ErrPermissionViolation. The error names the refused action
// and subject, quoted: Publish to "tally.v1.user.eve.increase".
//
// A Client or an Admin chains a handler of its own in front of the
// connection's when it is made, and that handler fails the client's calls
// waiting on what a violation names. Every client of a connection adds one
// link, and each link fails only its own client's calls. A handler the
// application sets after the client was made replaces the chain: calls
// refused then wait for their replies and time out, as calls of a client
// without the chain would.

// handlersMu serializes reading and replacing connections' error handlers,
// so that clients made at once on one connection each keep the other's.
var handlersMu sync.Mutex

// onViolation chains fn in front of nc's error handler: fn gets each
// permissions violation, then the handler that was there gets every error.
func onViolation(nc *nats.Conn, fn func(violation error)) {
	handlersMu.Lock()
	defer handlersMu.Unlock()
	next := nc.ErrorHandler()
	nc.SetErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			fn(err)
		}
		if next != nil {
			next(nc, sub, err)
		}
	})
}

// refused returns the permissions violation that the server reported on nc
// for one of actions since the caller read before, nc's last error, or nil.
// A flush made after a subscription comes back only after the server
// processed it, so by then the violation, if any, is the last error, unless
// another error of the connection overwrote it; the chained handler gets
// that one.
func refused(nc *nats.Conn, before error, actions ...string) error {
	err := nc.LastError()
	// Checked before the comparison: a violation is a pointer, so err ==
	// before compares identities and never panics.
	if err == nil || !errors.Is(err, nats.ErrPermissionViolation) || err == before {
		return nil
	}
	if names(err.Error(), actions...) {
		return err
	}
	return nil
}

// names reports whether the violation's text names one of actions.
func names(violation string, actions ...string) bool {
	for _, a := range actions {
		if strings.Contains(violation, a) {
			return true
		}
	}
	return false
}

// publishTo and the others are the actions as nats-server names them in its
// violations.
func publishTo(subject string) string { return "Publish to " + strconv.Quote(subject) }

func publishWithReply(reply string) string { return "Publish with Reply of " + strconv.Quote(reply) }

func subscriptionTo(subject string) string { return "Subscription to " + strconv.Quote(subject) }
