package client

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/messages"
)

// Admin calls tally for a trusted back end on the admin subjects: the same
// operations as Client without the per-user rate limit, plus
// DeleteGroupCounters. Grant the admin subjects to back ends only.
type Admin struct {
	Client
}

// NewAdmin returns an admin client on nc. Its replies come under the
// connection's inbox prefix, _INBOX.> unless nc was given another, as
// nats.go's own requests' do, on a subscription of the admin's. Like New,
// it chains a handler in front of nc's error handler.
func NewAdmin(nc *nats.Conn, opts ...Option) (*Admin, error) {
	o, err := apply(opts)
	if err != nil {
		return nil, err
	}
	// nc.NewInbox is the prefix, a dot and a random token.
	prefix := nc.NewInbox()
	prefix = prefix[:strings.LastIndexByte(prefix, '.')]
	return &Admin{Client{nc: nc, opts: o, subject: o.prefix + ".admin.", inbox: newInbox(nc, prefix)}}, nil
}

// DeleteGroupCounters removes the listed counters of a group, or all of them
// when no keys are given. Deleting an absent key is not an error.
func (a *Admin) DeleteGroupCounters(ctx context.Context, groupID string, keys ...string) error {
	if err := check(groupID, keys...); err != nil {
		return err
	}
	id, err := requestID(nil)
	if err != nil {
		return err
	}
	req := &messages.DeleteRequest{GroupId: groupID, KeyList: keys, RequestId: id}
	return a.call(ctx, "delete", req, new(messages.DeleteReply))
}
