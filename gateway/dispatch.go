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
	switch r.op {
	case opSet:
		req, err := decodeSet(r.format, data)
		if err != nil {
			r.respond(nil, err)
			return
		}
		g.node.SubmitChange(user, req.GetGroupId(), &messages.Change{
			Op: messages.Op_OP_SET, Counters: req.GetCounters(), RequestId: req.GetRequestId(),
		}, r.changed(req.GetGroupId(), setReply))
	case opIncrease, opDecrease:
		req, err := decodeChange(r.format, data)
		if err != nil {
			r.respond(nil, err)
			return
		}
		kind := messages.Op_OP_INCREASE
		if r.op == opDecrease {
			kind = messages.Op_OP_DECREASE
		}
		g.node.SubmitChange(user, req.GetGroupId(), &messages.Change{
			Op: kind, Key: req.GetKey(), Amount: req.GetValue(), RequestId: req.GetRequestId(),
		}, r.changed(req.GetGroupId(), changeReply))
	case opGet:
		req, err := decodeGet(r.format, data)
		if err != nil {
			r.respond(nil, err)
			return
		}
		g.node.SubmitGet(user, req, r.respond)
	default:
		req, err := decodeDelete(r.format, data)
		if err != nil {
			r.respond(nil, err)
			return
		}
		g.node.SubmitChange(user, req.GetGroupId(), &messages.Change{
			Op: messages.Op_OP_DELETE, Keys: req.GetKeyList(), RequestId: req.GetRequestId(),
		}, r.changed(req.GetGroupId(), deleteReply))
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
