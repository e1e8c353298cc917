package node

import (
	"context"
	"fmt"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/audit"
	"github.com/tallyhq/tally/messages"
)

// history serves tally.v1.admin.history from the journal: it reads the
// group's events from its oldest kept one, and answers limit changes from
// fromSeq on, with the sequence of the next when there are more.
func (n *Node) history(ctx context.Context, group string, fromSeq uint64, limit int) (*messages.HistoryReply, error) {
	entries, err := audit.History(ctx, n.journal, group, audit.Filter{FromSeq: fromSeq, Limit: limit + 1})
	if err != nil {
		return nil, fmt.Errorf("%w: history of %s: %w", actors.ErrUnavailable, group, err)
	}
	reply := &messages.HistoryReply{GroupId: group}
	if len(entries) > limit {
		reply.NextSeq, entries = entries[limit].Seq, entries[:limit]
	}
	for _, e := range entries {
		he := &messages.HistoryEntry{Seq: e.Seq, StreamSeq: e.StreamSeq, UnixNano: e.Time.UnixNano(), Op: e.Op,
			User: e.User, RequestId: e.RequestID, BeforeUnknown: e.BeforeUnknown, Members: e.Members}
		for _, c := range e.Changes {
			he.Changes = append(he.Changes, &messages.KeyChange{Key: c.Key, Before: c.Before, After: c.After})
		}
		reply.Entries = append(reply.Entries, he)
	}
	return reply, nil
}
