package gateway

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/messages"
)

// actorsCode is the one table of contract codes, kept in actors because
// the actors make most of the errors.
var actorsCode = actors.Code

// dispatch decodes a request and submits it to the actors; the reply goes
// out through r.respond.
func (g *Gateway) dispatch(r *request, user string, data []byte) {
	cmd, err := decode(r.op, r.format, user, data)
	switch {
	case err != nil:
		r.respond(nil, err)
	case cmd.get != nil:
		g.node.SubmitGet(user, cmd.get, r)
	case cmd.list != nil:
		g.node.SubmitList(cmd.list, r)
	default:
		r.group = cmd.group
		g.node.SubmitChange(user, cmd.group, cmd.change, r)
	}
}

// Reply answers the request with the actors' answer: a get's or a list's
// reply as it is, a write's built from the change the write made (an
// increase's or a decrease's in the request itself).
func (r *request) Reply(res proto.Message, err error) {
	if c, ok := res.(*messages.Change); ok && err == nil {
		if r.op == opIncrease || r.op == opDecrease {
			r.change.GroupId, r.change.Key, r.change.Value = r.group, c.GetKey(), c.GetValue()
			res = &r.change
		} else {
			res = replyOf(r.op)(r.group, c)
		}
	}
	r.respond(res, err)
}

// appendChangeReply appends the protobuf encoding of an increase's or a
// decrease's reply, as proto.Marshal writes it, without reflection.
func appendChangeReply(b []byte, m *messages.ChangeReply) []byte {
	if m.GetGroupId() != "" {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, m.GetGroupId())
	}
	if m.GetKey() != "" {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, m.GetKey())
	}
	if m.GetValue() != 0 {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(m.GetValue()))
	}
	return b
}

func setReply(group string, c *messages.Change) proto.Message {
	return &messages.SetReply{GroupId: group, Counters: c.GetCounters()}
}

func changeReply(group string, c *messages.Change) proto.Message {
	return &messages.ChangeReply{GroupId: group, Key: c.GetKey(), Value: c.GetValue()}
}

func deleteReply(group string, _ *messages.Change) proto.Message {
	return &messages.DeleteReply{GroupId: group}
}

func membersReply(group string, c *messages.Change) proto.Message {
	return &messages.MembersReply{GroupId: group, UserIds: c.GetMembers()}
}
