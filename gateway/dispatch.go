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
		g.node.SubmitGet(user, cmd.get, r.respond)
	case cmd.list != nil:
		g.node.SubmitList(cmd.list, r.respond)
	default:
		g.node.SubmitChange(user, cmd.group, cmd.change, r.changed(cmd.group, replyOf(r.op)))
	}
}

// changed answers a write to group with the reply reply builds from the
// change the write made, or with its error. The builders capture nothing,
// so a write allocates one closure, this one.
func (r *request) changed(group string, reply func(group string, c *messages.Change) proto.Message) actors.Reply {
	return func(res proto.Message, err error) {
		if err != nil {
			r.respond(nil, err)
			return
		}
		r.respond(reply(group, res.(*messages.Change)), nil)
	}
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
