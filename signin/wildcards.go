package signin

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/tallyhq/tally/contract"
)

// Subscription is one client's subscription.
type Subscription struct {
	Server  string // the ID of the client's server
	ID      uint64 // the client's ID there
	Subject string
}

// Subscribers lists the subscriptions of account's clients, on the
// servers whose end users the service signs in, that match subject, a
// literal subject.
type Subscribers func(ctx context.Context, account, subject string) ([]Subscription, error)

// ServerSubscribers is the Subscribers of an embedded server.
func ServerSubscribers(s *server.Server) Subscribers {
	return func(_ context.Context, account, subject string) ([]Subscription, error) {
		acc, err := s.LookupAccount(account)
		// Interest is one match in the account's subject tree (a few map
		// lookups), cheap to ask often; it also counts other servers'
		// subscriptions, which the listing then leaves out.
		if err != nil || acc.Interest(subject) == 0 {
			return nil, nil
		}
		sz, err := s.Subsz(&server.SubszOptions{Account: account, Subscriptions: true, Test: subject, Limit: 1 << 16})
		if err != nil {
			return nil, err
		}
		return fromSubsz(s.ID(), sz), nil
	}
}

// fromSubsz returns the subscriptions of server's Subsz.
func fromSubsz(server string, sz *server.Subsz) []Subscription {
	out := make([]Subscription, 0, len(sz.Subs))
	for _, d := range sz.Subs {
		out = append(out, Subscription{Server: server, ID: d.Cid, Subject: d.Subject})
	}
	return out
}

// wildcardEvery is how often, on average, the service looks for end users
// subscribed to every open group's updates.
const wildcardEvery = 250 * time.Millisecond

// nextLook returns the wait before the next look: drawn uniformly from
// 10 ms to twice wildcardEvery. At a fixed period, a user who learned when
// the looks come (from the moment a look closed her connection) held such
// a subscription between them and read most of every open group's updates
// without ever being seen; at random times, a subscription held a fraction
// f of the time is seen by each look with probability f, so that she reads
// about one period's worth before a look closes it, however she times it.
func nextLook(r *rand.Rand) time.Duration {
	const least = 10 * time.Millisecond
	return least + time.Duration(r.Int64N(int64(2*wildcardEvery-least)))
}

// WildcardProbe is a subject of the open groups' updates under prefix that
// no group has (a group ID is at most contract.MaxGroupIDLen bytes): only
// a subscription with a wildcard at the group's place matches it.
func WildcardProbe(prefix string) string {
	return contract.UpdatesSubject(prefix, strings.Repeat("_", contract.MaxGroupIDLen+1), false)
}

// watchWildcards closes, at random times wildcardEvery apart on average
// (see nextLook), the connections of end users
// that subscribed to tally.v1.updates.> or tally.v1.updates.*, and bans
// their users for cfg.AbuseBan on every node. The grant of every open
// group's updates is tally.v1.updates.*, which NATS also lets a user
// subscribe to as such, and to tally.v1.updates.>: permissions cannot tell
// them from one group's subject. Such a subscription reads nothing a user
// may not (members-only groups' updates reach end users on other
// subjects), but it takes every open group's traffic, which no client of
// tally asks for (the SDKs subscribe to each group they watch).
func (s *Service) watchWildcards(ctx context.Context) {
	probe := WildcardProbe(s.cfg.Prefix)
	r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	t := time.NewTimer(nextLook(r))
	defer t.Stop()
	failed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(nextLook(r))
		lctx, cancel := context.WithTimeout(ctx, closeTimeout)
		subs, err := s.cfg.Subscribers(lctx, s.cfg.Account, probe)
		cancel()
		if err != nil && !failed && ctx.Err() == nil {
			s.cfg.Logger.Warn("could not look for end users subscribed to every group's updates", slog.Any("error", err))
		}
		failed = err != nil
		for _, sub := range subs {
			s.closeWildcard(ctx, sub)
		}
	}
}

// closeWildcard closes the connection of sub, a subscription to every open
// group's updates, and bans its user. On an external server, where each
// node knows the connections it signed in, only the node that signed
// sub's connection in closes it.
func (s *Service) closeWildcard(ctx context.Context, sub Subscription) {
	c := connRef{sub.Server, sub.ID}
	user := s.conns.userOf(c)
	if (user == "" && s.cfg.Server == "") || s.conns.closer == nil {
		return
	}
	// At once, so that the next look does not find it again; the ban
	// closes the user's other connections, on every node.
	cctx, cancel := context.WithTimeout(ctx, closeTimeout)
	err := s.conns.closer.close(cctx, c)
	cancel()
	if err != nil {
		return // gone already, or the server could not be asked: the next look finds it again
	}
	const why = "an end user subscribed to every group's updates: closing her connections and refusing her sign-ins"
	if user == "" {
		// Signed in before this service knew of her connections.
		s.log.log(slog.LevelWarn, why, slog.String("subject", sub.Subject), slog.Uint64("client", sub.ID))
		return
	}
	s.banAbuse(user, why, slog.String("subject", sub.Subject), slog.Uint64("client", sub.ID))
}
