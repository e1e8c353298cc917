package gateway

import (
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/messages"
)

// Publisher publishes counter updates as JSON on <prefix>.updates.<group>.
// It implements actors.Publisher.
type Publisher struct {
	nc     *nats.Conn
	prefix string
	log    *slog.Logger
	// Interest, when set, tells whether a subject has subscribers; updates
	// nobody would receive are not published. A node that embeds its NATS
	// server sets it to the server account's SubscriptionInterest; on an
	// external server every update is published.
	Interest func(subject string) bool
}

// NewPublisher returns a publisher on nc; prefix is "tally.v1".
func NewPublisher(nc *nats.Conn, prefix string, log *slog.Logger) *Publisher {
	return &Publisher{nc: nc, prefix: prefix + ".updates.", log: log}
}

// Wants reports whether the group's updates may have subscribers.
func (p *Publisher) Wants(group string) bool {
	return p.Interest == nil || p.Interest(p.prefix+group)
}

// Publish sends one message per update, in order. It does not block: NATS
// buffers the messages and flushes them on its own goroutine.
func (p *Publisher) Publish(group string, ups []*messages.Update) {
	subj := p.prefix + group
	buf := make([]byte, 0, 96)
	for _, u := range ups {
		buf = AppendJSON(buf[:0], u)
		if err := p.nc.Publish(subj, buf); err != nil {
			p.log.Warn("publish update", slog.String("subject", subj), slog.Any("error", err))
			return
		}
	}
}
