package gateway

import (
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/messages"
	"github.com/tallyhq/tally/metrics"
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
	// Metrics, when set, count the updates published.
	Metrics *metrics.Metrics
}

// NewPublisher returns a publisher on nc; prefix is "tally.v1".
func NewPublisher(nc *nats.Conn, prefix string, log *slog.Logger) *Publisher {
	return &Publisher{nc: nc, prefix: prefix + ".updates.", log: log}
}

// Subject returns the subject of the group's updates.
func (p *Publisher) Subject(group string) string { return p.prefix + group }

// Wants reports whether updates on subject may have subscribers.
func (p *Publisher) Wants(subject string) bool {
	return p.Interest == nil || p.Interest(subject)
}

// Publish sends one message per update on subject, in order. It does not
// block: NATS buffers the messages and flushes them on its own goroutine.
func (p *Publisher) Publish(subject string, ups []*messages.Update) {
	buf := make([]byte, 0, 96)
	for _, u := range ups {
		buf = AppendJSON(buf[:0], u)
		if err := p.nc.Publish(subject, buf); err != nil {
			p.log.Warn("publish update", slog.String("subject", subject), slog.Any("error", err))
			return
		}
	}
	p.Metrics.Published(len(ups))
}
