package actors

import (
	"context"
	"fmt"
	"time"

	"github.com/tallyhq/tally/dedupe"
	"github.com/tallyhq/tally/messages"
)

// RecentReplayer reads the events stored since a time, in commit order.
type RecentReplayer interface {
	ReplaySince(ctx context.Context, since time.Time, fn func(group string, seq uint64, ev *messages.Event) error) error
}

// Recover fills the node's table of request IDs from the journal's events
// within the dedupe window, so that a write retried after a restart is
// answered with its first outcome. Call it before serving. It returns how
// many request IDs it found.
func (n *Node) Recover(ctx context.Context, r RecentReplayer) (int, error) {
	window := n.cfg.DedupeWindow
	if window == 0 {
		return 0, nil
	}
	// The server's clock stamps the messages, the writer's the events: a
	// second's margin covers a skew between them.
	since := time.Now().Add(-window - time.Second)
	found := 0
	err := r.ReplaySince(ctx, since, func(group string, _ uint64, ev *messages.Event) error {
		now, expires := expiry(n.cfg.Clock, window, ev.GetUnixNano())
		for _, c := range ev.GetChanges() {
			if rememberChange(n.seen, group, c, expires, now) {
				found++
			}
		}
		return nil
	})
	if err != nil {
		return found, fmt.Errorf("actors: recover request IDs: %w", err)
	}
	return found, nil
}

// rememberChange puts a journaled change's request ID in the table, and
// reports whether it had one.
func rememberChange(t *dedupe.Table, group string, c *messages.Change, expires, now int64) bool {
	if c.GetRequestId() == "" || expires <= now {
		return false
	}
	fp := fingerprint(c)
	if c.GetOp() == messages.Op_OP_DELETE || isMembers(c.GetOp()) {
		fp = c.GetRequestHash() // its keys or users are those changed, not those asked for
	}
	t.Put(t.Key(group, c.GetUser(), c.GetRequestId()), dedupe.Outcome{Fingerprint: fp, Seq: c.GetSeq(), Value: c.GetValue(), Users: c.GetMembers()}, expires, now)
	return true
}
