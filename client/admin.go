package client

import (
	"context"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/messages"
)

// Admin calls tally for a trusted back end on the admin subjects: the same
// operations as Client without the per-user rate limit, plus
// DeleteGroupCounters. Grant the admin subjects to back ends only.
type Admin struct {
	Client
}

// NewAdmin returns an admin client on nc.
func NewAdmin(nc *nats.Conn, opts ...Option) (*Admin, error) {
	o, err := apply(opts)
	if err != nil {
		return nil, err
	}
	return &Admin{Client{nc: nc, opts: o, subject: o.prefix + ".admin."}}, nil
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
