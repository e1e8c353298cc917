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
		}, r.changed(func(c *messages.Change) proto.Message {
			return &messages.SetReply{GroupId: req.GetGroupId(), Counters: c.GetCounters()}
		}))
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
		}, r.changed(func(c *messages.Change) proto.Message {
			return &messages.ChangeReply{GroupId: req.GetGroupId(), Key: c.GetKey(), Value: c.GetValue()}
		}))
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
		}, r.changed(func(*messages.Change) proto.Message {
			return &messages.DeleteReply{GroupId: req.GetGroupId()}
		}))
	}
}

// changed answers a write with the reply reply builds from the change the
// write made, or with its error.
func (r *request) changed(reply func(*messages.Change) proto.Message) actors.Reply {
	return func(res proto.Message, err error) {
		if err != nil {
			r.respond(nil, err)
			return
		}
		r.respond(reply(res.(*messages.Change)), nil)
	}
}
