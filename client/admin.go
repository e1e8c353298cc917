package client

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/messages"
)

// Admin calls tally for a trusted back end on the admin subjects: the same
// operations as Client without the per-user rate limit nor membership
// checks, plus DeleteGroupCounters and the members of groups. Grant the admin subjects to back ends only.
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

// MaxMembersPerCall is the most user IDs one AddGroupMembers or
// RemoveGroupMembers names, and MaxListMembers the most members one
// ListGroupMembers returns.
const (
	MaxMembersPerCall = 100
	MaxListMembers    = 1000
)

// AddGroupMembers makes 1..100 users members of a group and returns those
// that were not, sorted. Once a group has had a member, only its members
// may call it (others get ErrNotMember) and its updates go to members
// only; removing every member does not open it again. A user ID given
// twice counts once.
func (a *Admin) AddGroupMembers(ctx context.Context, groupID string, userIDs []string, opts ...WriteOption) ([]string, error) {
	return a.members(ctx, "members.add", groupID, userIDs, opts)
}

// RemoveGroupMembers removes 1..100 users from a group's members and
// returns those that were members, sorted. Their connections are closed,
// so that they lose the group's updates.
func (a *Admin) RemoveGroupMembers(ctx context.Context, groupID string, userIDs []string, opts ...WriteOption) ([]string, error) {
	return a.members(ctx, "members.remove", groupID, userIDs, opts)
}

func (a *Admin) members(ctx context.Context, op, groupID string, userIDs []string, opts []WriteOption) ([]string, error) {
	if err := checkUsers(groupID, userIDs); err != nil {
		return nil, err
	}
	id, err := requestID(opts)
	if err != nil {
		return nil, err
	}
	var reply messages.MembersReply
	if err := a.call(ctx, op, &messages.MembersRequest{GroupId: groupID, UserIds: userIDs, RequestId: id}, &reply); err != nil {
		return nil, err
	}
	return reply.GetUserIds(), nil
}

// ListGroupMembers returns a page of a group's members in byte order:
// those after the user ID after ("" for the first page), at most limit
// (1..1000; 0 is 100). next is the after of the next page, "" after the
// last.
func (a *Admin) ListGroupMembers(ctx context.Context, groupID, after string, limit int) (userIDs []string, next string, err error) {
	if err := check(groupID); err != nil {
		return nil, "", err
	}
	if limit < 0 || limit > MaxListMembers {
		return nil, "", &Error{Code: ErrInvalidParameter.Code, Message: "limit must be 1..1000, or 0 for 100"}
	}
	if after != "" {
		if err := contract.CheckUserID(after); err != nil {
			return nil, "", &Error{Code: ErrInvalidParameter.Code, Message: err.Error()}
		}
	}
	var reply messages.ListMembersReply
	req := &messages.ListMembersRequest{GroupId: groupID, After: after, Limit: uint32(limit)}
	if err := a.call(ctx, "members.list", req, &reply); err != nil {
		return nil, "", err
	}
	return reply.GetUserIds(), reply.GetNext(), nil
}

// checkUsers validates a members call with the service's own rules.
func checkUsers(groupID string, userIDs []string) error {
	if err := check(groupID); err != nil {
		return err
	}
	if n := len(userIDs); n == 0 || n > MaxMembersPerCall {
		return &Error{Code: ErrInvalidParameter.Code, Message: "userIDs must list 1..100 users"}
	}
	for _, u := range userIDs {
		if err := contract.CheckUserID(u); err != nil {
			return &Error{Code: ErrInvalidParameter.Code, Message: err.Error()}
		}
	}
	return nil
}
