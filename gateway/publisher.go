package gateway

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/messages"
	"github.com/tallyhq/tally/metrics"
)

// publishQueue is how many changes' updates wait for the publisher's
// goroutine before further ones are dropped.
const publishQueue = 16 << 10

// Publisher publishes counter updates as JSON on <prefix>.updates.<group>,
// or <prefix>.updates.<group>.members for a group that has had members.
// It implements actors.Publisher. Publish never waits: a goroutine sends
// the updates in the order they came, so that the NATS server slowing the
// publisher down for a subscriber that does not read (it holds back a
// connection whose messages would go to one that fell far behind) never
// holds up a group, and so its callers. Updates that find the queue full
// are dropped and counted: a subscriber sees the gap in seq and reads the
// group (the contract's updates are best effort; the journal has every
// change).
type Publisher struct {
	nc     *nats.Conn
	prefix string
	log    *slog.Logger
	// Interest, when set, tells whether a subject has subscribers; updates
	// nobody would receive are not published. A node that embeds its NATS
	// server sets it to the server account's SubscriptionInterest; on an
	// external server every update is published.
	Interest func(subject string) bool
	// Metrics, when set, count the updates published.
	Metrics *metrics.Metrics

	queue   chan published
	done    chan struct{}
	dropped atomic.Int64
	closed  atomic.Bool
	warned  atomic.Int64 // unix nanos of the last warning of drops
}

// published is one change's updates on their subject; one without a
// subject stops the publisher.
type published struct {
	subject string
	ups     []*messages.Update
}

// NewPublisher returns a publisher on nc; prefix is "tally.v1". Close
// stops it.
func NewPublisher(nc *nats.Conn, prefix string, log *slog.Logger) *Publisher {
	p := &Publisher{nc: nc, prefix: prefix, log: log, queue: make(chan published, publishQueue), done: make(chan struct{})}
	go p.run()
	return p
}

// Subject returns the subject of the group's updates (see
// contract.UpdatesSubject).
func (p *Publisher) Subject(group string, membersOnly bool) string {
	return contract.UpdatesSubject(p.prefix, group, membersOnly)
}

// Wants reports whether updates on subject may have subscribers.
func (p *Publisher) Wants(subject string) bool {
	return p.Interest == nil || p.Interest(subject)
}

// Publish queues one message per update on subject, to be sent in order.
// It does not wait; the caller must not change ups afterwards.
func (p *Publisher) Publish(subject string, ups []*messages.Update) {
	if p.closed.Load() {
		return
	}
	select {
	case p.queue <- published{subject, ups}:
	default:
		p.drop(len(ups))
	}
}

// Dropped is how many updates were dropped because the queue was full.
func (p *Publisher) Dropped() int64 { return p.dropped.Load() }

// drop counts dropped updates, and warns at most every 10 s.
func (p *Publisher) drop(n int) {
	total := p.dropped.Add(int64(n))
	now := time.Now().UnixNano()
	if last := p.warned.Load(); now-last >= int64(10*time.Second) && p.warned.CompareAndSwap(last, now) {
		p.log.Warn("updates dropped: the NATS server takes them slower than groups change (a subscriber that does not read holds the publisher back until the server cuts it)",
			slog.Int64("dropped", total))
	}
}

func (p *Publisher) run() {
	defer close(p.done)
	buf := make([]byte, 0, 96)
	for m := range p.queue {
		if m.subject == "" {
			return
		}
		sent := 0
		for _, u := range m.ups {
			buf = AppendJSON(buf[:0], u)
			if err := p.nc.Publish(m.subject, buf); err != nil {
				p.log.Warn("publish update", slog.String("subject", m.subject), slog.Any("error", err))
				break
			}
			sent++
		}
		p.Metrics.Published(sent)
	}
}

// Close waits until the updates queued are handed to the connection, or
// ctx ends, and stops the publisher: updates published after it are
// never sent.
func (p *Publisher) Close(ctx context.Context) error {
	p.closed.Store(true)
	select {
	case p.queue <- published{}:
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
