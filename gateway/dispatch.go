package gateway

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/messages"
)

// actorsCode is the one table of contract codes, kept in actors because
// group actors answer across the cluster with codes.
var actorsCode = actors.Code

// dispatch decodes a request, runs it on the actors and returns the reply.
func (g *Gateway) dispatch(ctx context.Context, o op, user string, f format, data []byte) (proto.Message, error) {
	switch o {
	case opSet:
		req, err := decodeSet(f, data)
		if err != nil {
			return nil, err
		}
		c, err := g.node.Change(ctx, user, req.GetGroupId(), &messages.Change{
			Op: messages.Op_OP_SET, Counters: req.GetCounters(), RequestId: req.GetRequestId(),
		})
		if err != nil {
			return nil, err
		}
		return &messages.SetReply{GroupId: req.GetGroupId(), Counters: c.GetCounters()}, nil
	case opIncrease, opDecrease:
		req, err := decodeChange(f, data)
		if err != nil {
			return nil, err
		}
		kind := messages.Op_OP_INCREASE
		if o == opDecrease {
			kind = messages.Op_OP_DECREASE
		}
		c, err := g.node.Change(ctx, user, req.GetGroupId(), &messages.Change{
			Op: kind, Key: req.GetKey(), Amount: req.GetValue(), RequestId: req.GetRequestId(),
		})
		if err != nil {
			return nil, err
		}
		return &messages.ChangeReply{GroupId: req.GetGroupId(), Key: c.GetKey(), Value: c.GetValue()}, nil
	case opGet:
		req, err := decodeGet(f, data)
		if err != nil {
			return nil, err
		}
		return g.node.Get(ctx, user, req)
	default:
		req, err := decodeDelete(f, data)
		if err != nil {
			return nil, err
		}
		_, err = g.node.Change(ctx, user, req.GetGroupId(), &messages.Change{
			Op: messages.Op_OP_DELETE, Keys: req.GetKeyList(), RequestId: req.GetRequestId(),
		})
		if err != nil {
			return nil, err
		}
		return &messages.DeleteReply{GroupId: req.GetGroupId()}, nil
	}
}
