package client

import (
	"errors"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// refused returns the permissions violation that the server reported on nc
// for one of actions since the caller read before, nc's last error, or nil.
//
// The server answers a publish or a subscription that its permissions deny
// with an error line instead of a reply, and nats.go reports that
// asynchronously: as the connection's last error and to its error handler.
// A flush made after the publish or the subscription comes back only after
// the server processed it, so by then the violation, if any, is the last
// error. One overwritten by a later error of the connection before the
// flush returned is missed: the call then waits for its reply until it
// times out.
func refused(nc *nats.Conn, before error, actions ...string) error {
	err := nc.LastError()
	// Checked before the comparison: a violation is a pointer, so err ==
	// before compares identities and never panics.
	if err == nil || !errors.Is(err, nats.ErrPermissionViolation) || err == before {
		return nil
	}
	for _, a := range actions {
		if strings.Contains(err.Error(), a) {
			return err
		}
	}
	return nil
}

// publishTo and the others are the actions as nats-server names them in its
// violations.
func publishTo(subject string) string { return "Publish to " + strconv.Quote(subject) }

func publishWithReply(reply string) string { return "Publish with Reply of " + strconv.Quote(reply) }

func subscriptionTo(subject string) string { return "Subscription to " + strconv.Quote(subject) }
