package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/contract"
)

// subscribeMapped serves the users' mapped subjects of a partition ("*":
// every partition's), prefix.u.<partition>.*.<op>, on the users'
// connections (see contract.UserMapping): the same calls as the users'
// subjects, counted with their endpoints. A partition's subscriptions
// buffer an eighth of an endpoint's: a node has up to
// contract.Partitions of them, and one user's flood reaches only one.
func (g *Gateway) subscribeMapped(partition string) ([]*nats.Subscription, error) {
	msgs, bytes := userPendingMsgs, userPendingBytes
	if partition != "*" {
		msgs, bytes = msgs/8, bytes/8
	}
	var subs []*nats.Subscription
	for o := opSet; o < opDelete; o++ {
		subject := contract.PartitionedUserSubject(g.cfg.Prefix, partition, "*", opNames[o])
		for _, nc := range []*nats.Conn{g.nc, g.cfg.EndUsers} {
			if nc == nil {
				continue
			}
			sub, err := nc.QueueSubscribe(subject, g.cfg.QueueGroup, g.handler(nc, g.byOp[0][o], o, false))
			if err == nil {
				subs = append(subs, sub)
				err = sub.SetPendingLimits(msgs, bytes)
			}
			if err != nil {
				for _, s := range subs {
					s.Unsubscribe()
				}
				return nil, fmt.Errorf("gateway: endpoint %s: %w", subject, err)
			}
		}
	}
	return subs, nil
}

// watch follows the partitions whose users' calls should come here (see
// Router.Watch): it serves a partition's mapped subjects from when the
// node is chosen for it until it handed it over. A partition served by no
// node for a moment (its node died, and the others do not know yet)
// answers "no responders" at once; two nodes serving one while it moves
// share its calls, and the one that does not hold it forwards them.
func (g *Gateway) watch(p int, here bool) {
	g.pmu.Lock()
	defer g.pmu.Unlock()
	switch {
	case g.partsClosed:
	case here && g.parts[p] == nil:
		subs, err := g.subscribeMapped(strconv.Itoa(p))
		if err != nil {
			g.cfg.Logger.Warn("the users of a partition reach this node through another: subscribing failed", slog.Int("partition", p), slog.Any("error", err))
			return
		}
		g.parts[p] = subs
	case !here && g.parts[p] != nil:
		for _, s := range g.parts[p] {
			if err := s.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				g.cfg.Logger.Warn("unsubscribing from a partition's users", slog.Int("partition", p), slog.Any("error", err))
			}
		}
		g.parts[p] = nil
	}
}

// closeParts stops watching partitions and returns the subscriptions it
// served them with.
func (g *Gateway) closeParts() []*nats.Subscription {
	g.pmu.Lock()
	defer g.pmu.Unlock()
	g.partsClosed = true
	var subs []*nats.Subscription
	for p, ss := range g.parts {
		subs = append(subs, ss...)
		g.parts[p] = nil
	}
	return subs
}

// drain drains subs and waits until every message they had taken has been
// handed to its handler, or ctx ends.
func drain(ctx context.Context, subs []*nats.Subscription) error {
	for _, s := range subs {
		if err := s.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			return fmt.Errorf("gateway: drain %s: %w", s.Subject, err)
		}
	}
	for _, s := range subs {
		for s.IsValid() {
			select {
			case <-ctx.Done():
				return fmt.Errorf("gateway: draining %s: %w", s.Subject, ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	return nil
}
