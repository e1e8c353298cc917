package gateway

import (
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
// reply as it is, a write's built from the change the write made.
func (r *request) Reply(res proto.Message, err error) {
	if c, ok := res.(*messages.Change); ok && err == nil {
		res = replyOf(r.op)(r.group, c)
	}
	r.respond(res, err)
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
