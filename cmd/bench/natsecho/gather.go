package main

import (
	"context"
	"sync"

	"github.com/nats-io/nats.go"
)

// maxBatch is the most calls one gathered append holds: JetStream's limit
// on an atomic batch, kept for the batched journal too.
const maxBatch = 1000

// call is a request waiting for its append, with its group.
type call struct {
	msg   *nats.Msg
	group string
}

// queue holds the calls that arrive while an append is in flight, for the
// next append: the subscription's handler adds, one appending loop takes.
type queue struct {
	mu    sync.Mutex
	calls []call
	ready chan struct{} // a token when calls may be waiting
}

func newQueue() *queue { return &queue{ready: make(chan struct{}, 1)} }

// gather returns a handler that queues each change request for q's loop.
func gather(q *queue) func(*nats.Msg) {
	return func(m *nats.Msg) {
		group, ok := groupOf(m)
		if !ok {
			fail(m, "not a change request with a group")
			return
		}
		q.add(call{msg: m, group: group})
	}
}

func (q *queue) add(c call) {
	q.mu.Lock()
	q.calls = append(q.calls, c)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take waits until calls are queued and returns the next batch of them
// (see split), or nil once ctx ends.
func (q *queue) take(ctx context.Context, onePerGroup bool) []call {
	for {
		q.mu.Lock()
		if len(q.calls) > 0 {
			var batch []call
			batch, q.calls = split(q.calls, maxBatch, onePerGroup)
			q.mu.Unlock()
			return batch
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-q.ready:
		}
	}
}

// split takes up to max calls in arrival order, with onePerGroup at most
// one of each group, and returns them and the calls left, still in
// arrival order.
func split(calls []call, max int, onePerGroup bool) (batch, rest []call) {
	if !onePerGroup {
		n := min(max, len(calls))
		if n == len(calls) {
			return calls, nil
		}
		return calls[:n:n], append([]call(nil), calls[n:]...)
	}
	seen := make(map[string]bool, min(max, len(calls)))
	for _, c := range calls {
		if len(batch) < max && !seen[c.group] {
			seen[c.group] = true
			batch = append(batch, c)
		} else {
			rest = append(rest, c)
		}
	}
	return batch, rest
}
