package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/signin"
)

const (
	// interestWait bounds the look for any subscriber of a subject before
	// the servers are asked whose it is.
	interestWait = 100 * time.Millisecond
	// subszWait is how long the servers' answers to a listing of
	// subscriptions are gathered.
	subszWait = 250 * time.Millisecond
	// subszRequest asks every server of an external NATS system for its
	// clients' subscriptions.
	subszRequest = "$SYS.REQ.SERVER.PING.SUBSZ"
)

// subscribersOn lists the subscriptions of an external server's end users
// with sc, a connection of the server's system account, after a cheaper
// look with users, the node's connection in their account.
func subscribersOn(sc, users *nats.Conn) signin.Subscribers {
	return func(ctx context.Context, account, subject string) ([]signin.Subscription, error) {
		// A request to a subject nobody subscribes to is answered at once
		// that nobody listens, the usual answer, which spares asking every
		// server. One that a subscription matches goes to it (a message of
		// no group, without data) and is never answered.
		ictx, cancel := context.WithTimeout(ctx, interestWait)
		_, err := users.RequestMsgWithContext(ictx, &nats.Msg{Subject: subject, Header: nats.Header{"Tally-Probe": []string{"wildcards"}}})
		cancel()
		if errors.Is(err, nats.ErrNoResponders) {
			return nil, nil
		}
		return listSubscriptions(ctx, sc, account, subject)
	}
}

// listSubscriptions asks every server with sc, a connection of the
// system account, for the subscriptions of account's clients that match
// subject, and gathers the answers for subszWait. It fails when no server
// answered (the user may not ask).
func listSubscriptions(ctx context.Context, sc *nats.Conn, account, subject string) ([]signin.Subscription, error) {
	req, err := json.Marshal(server.SubszEventOptions{SubszOptions: server.SubszOptions{
		Account: account, Subscriptions: true, Test: subject, Limit: 1 << 16}})
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	inbox := sc.NewInbox()
	sub, err := sc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	defer sub.Unsubscribe()
	if err := sc.PublishRequest(subszRequest, inbox, req); err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	gctx, cancel := context.WithTimeout(ctx, subszWait)
	defer cancel()
	var out []signin.Subscription
	answered := 0
	for {
		m, err := sub.NextMsgWithContext(gctx)
		if err != nil {
			break
		}
		var resp struct {
			Server struct {
				ID string `json:"id"`
			} `json:"server"`
			Data struct {
				Subs []server.SubDetail `json:"subscriptions_list"`
			} `json:"data"`
			Error *server.ApiError `json:"error"`
		}
		if err := json.Unmarshal(m.Data, &resp); err != nil || resp.Error != nil {
			continue
		}
		answered++
		for _, d := range resp.Data.Subs {
			out = append(out, signin.Subscription{Server: resp.Server.ID, ID: d.Cid, Subject: d.Subject})
		}
	}
	if answered == 0 {
		return nil, fmt.Errorf("list subscriptions: no server answered %s within %v", subszRequest, subszWait)
	}
	return out, nil
}

// checkSubscribers makes sure that the system account's user may list
// subscriptions, without which end users' subscriptions to every group's
// updates would go unnoticed.
func checkSubscribers(sc *nats.Conn, prefix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	if _, err := listSubscriptions(ctx, sc, UsersAccount, signin.WildcardProbe(prefix)); err != nil {
		return fmt.Errorf("the system account's user (--sys-*) cannot list subscriptions (%w): it must be a user of the server's system account that may publish to %s and subscribe to its replies (_INBOX.>)", err, subszRequest)
	}
	return nil
}
