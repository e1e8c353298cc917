package signin

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/tallyhq/tally/contract"
)

// Subscribers is a Conns that also tells which of its server's clients
// subscribe to a subject. ServerConns is one.
type Subscribers interface {
	// Subscribers returns the client IDs and subscriptions of account's
	// clients of this server whose subscriptions match subject, a literal
	// subject.
	Subscribers(account, subject string) []Subscription
}

// Subscription is one client's subscription.
type Subscription struct {
	ID      uint64 // the client's
	Subject string
}

func (c serverConns) Subscribers(account, subject string) []Subscription {
	acc, err := c.s.LookupAccount(account)
	// Interest is one match in the account's cached subject tree, cheap
	// to ask often; it also counts other servers' subscriptions, which
	// the listing then leaves out.
	if err != nil || acc.Interest(subject) == 0 {
		return nil
	}
	sz, err := c.s.Subsz(&server.SubszOptions{Account: account, Subscriptions: true, Test: subject, Limit: 1 << 16})
	if err != nil {
		return nil
	}
	out := make([]Subscription, 0, len(sz.Subs))
	for _, d := range sz.Subs {
		out = append(out, Subscription{ID: d.Cid, Subject: d.Subject})
	}
	return out
}

// wildcardEvery is how often the service looks for end users subscribed
// to every open group's updates.
const wildcardEvery = 250 * time.Millisecond

// wildcardProbe is a subject of the open groups' updates that no group
// has (a group ID is at most contract.MaxGroupIDLen bytes): only a
// subscription with a wildcard at the group's place matches it.
func wildcardProbe(prefix string) string {
	return contract.UpdatesSubject(prefix, strings.Repeat("_", contract.MaxGroupIDLen+1), false)
}

// watchWildcards closes, every wildcardEvery, the connections of this
// server's end users that subscribed to tally.v1.updates.> or
// tally.v1.updates.*, and bans their users for cfg.WildcardBan on every
// node. The grant of every open group's updates is tally.v1.updates.*,
// which NATS also lets a user subscribe to as such, and to
// tally.v1.updates.>: permissions cannot tell them from one group's
// subject. Such a subscription reads nothing a user may not (members-only
// groups' updates reach end users on other subjects), but it takes every
// open group's traffic, which no client of tally asks for (the SDKs
// subscribe to each group they watch).
func (s *Service) watchWildcards(ctx context.Context, subs Subscribers) {
	probe := wildcardProbe(s.cfg.Prefix)
	t := time.NewTicker(wildcardEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, sub := range subs.Subscribers(s.cfg.Account, probe) {
			s.closeWildcard(ctx, sub)
		}
	}
}

// closeWildcard closes the connection of sub, a subscription to every open
// group's updates, and bans its user.
func (s *Service) closeWildcard(ctx context.Context, sub Subscription) {
	user := s.conns.userOf(connRef{s.cfg.Server, sub.ID})
	// At once, so that the next look does not find it again; the ban
	// closes the user's other connections, on every node.
	if err := s.cfg.Conns.Close(sub.ID); err != nil {
		return // gone already
	}
	s.log.log(slog.LevelWarn, "an end user subscribed to every group's updates: closing her connections and refusing her sign-ins",
		slog.String("user", user), slog.String("subject", sub.Subject), slog.Uint64("client", sub.ID), slog.Duration("for", s.cfg.WildcardBan))
	if user == "" {
		return // signed in before this service knew of her connections
	}
	if err := s.Ban(ctx, user, s.cfg.WildcardBan); err != nil {
		s.cfg.Logger.Warn("ban a user subscribed to every group's updates", slog.String("user", user), slog.Any("error", err))
	}
}
