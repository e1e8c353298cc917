package client

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// inbox receives a client's replies on one subscription under its own
// prefix, _INBOX_<user>.<random>.*, so that NATS permissions can let each
// user read its own replies and nobody else's (subscribe: _INBOX_alice.>).
// An Admin's is under the connection's inbox prefix: _INBOX.<random>.*.
//
// Lock order: subMu before mu.
type inbox struct {
	nc   *nats.Conn
	name string // _INBOX_<user>, or _INBOX for an Admin

	subMu sync.Mutex         // serializes attempts to subscribe
	sub   *nats.Subscription // the last attempt's; guarded by subMu

	// ready is set while the subscription under prefix stands, as far as
	// the client knows; it is written with mu held.
	ready atomic.Bool

	mu sync.Mutex
	// prefix is name.<random>. of the subscription, a new random per
	// attempt, so that one client's replies never reach another's and a
	// violation names the attempt it refused.
	prefix  string
	refused error // the violation that refused the subscription under prefix
	next    uint64
	waiting map[string]waiter // by the last token of the call's reply subject
}

// waiter is a call waiting for its reply.
type waiter struct {
	subject string
	ch      chan response // buffered: whoever removes the waiter sends once
}

type response struct {
	msg *nats.Msg
	err error
}

// newInbox returns an inbox whose subscription is refused when the server
// says so, through a handler chained in front of nc's.
func newInbox(nc *nats.Conn, name string) *inbox {
	b := &inbox{nc: nc, name: name, waiting: map[string]waiter{}}
	onViolation(nc, b.violated)
	return b
}

// subscribe makes the inbox's subscription unless it has one, and waits
// for the server to take it, once per subscription rather than per call. A
// subscription the server refused is dropped, and the next call tries
// again: permissions may change when the connection reconnects.
func (b *inbox) subscribe(ctx context.Context) error {
	if b.ready.Load() {
		return nil
	}
	b.subMu.Lock()
	defer b.subMu.Unlock()
	if b.ready.Load() {
		return nil
	}
	if b.sub != nil {
		if err := b.sub.Unsubscribe(); err != nil {
			return fmt.Errorf("unsubscribe from refused replies on %s: %w", b.sub.Subject, err)
		}
		b.sub = nil
	}
	prefix := b.name + "." + nuid.Next() + "."
	subject := prefix + "*"
	before := b.nc.LastError()
	sub, err := b.nc.Subscribe(subject, func(m *nats.Msg) { b.deliver(prefix, m) })
	if err != nil {
		return fmt.Errorf("subscribe to replies on %s: %w", subject, err)
	}
	if err = b.nc.FlushWithContext(ctx); err == nil {
		if err = refused(b.nc, before, subscriptionTo(subject)); err != nil {
			err = b.subscriptionRefused(subject, err)
		}
	}
	if err != nil {
		if uerr := sub.Unsubscribe(); uerr != nil {
			return fmt.Errorf("subscribe to replies on %s: %w (and unsubscribe: %w)", subject, err, uerr)
		}
		return err
	}
	b.sub = sub
	b.mu.Lock()
	b.prefix, b.refused = prefix, nil
	b.ready.Store(true)
	b.mu.Unlock()
	return nil
}

func (b *inbox) subscriptionRefused(subject string, violation error) error {
	return fmt.Errorf("subscribe to replies on %s (the connection needs subscribe permission on %s): %w", subject, b.name+".>", violation)
}

func (b *inbox) deliver(prefix string, m *nats.Msg) {
	token := m.Subject[len(prefix):]
	b.mu.Lock()
	w, ok := b.waiting[token]
	delete(b.waiting, token)
	b.mu.Unlock()
	if ok {
		w.ch <- response{msg: m}
	}
}

// violated fails the calls that a permissions violation refused: every
// waiting call when it names the inbox's subscription, else those whose
// subject or reply subject it names.
func (b *inbox) violated(violation error) {
	text := violation.Error()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ready.Load() && names(text, subscriptionTo(b.prefix+"*")) {
		b.ready.Store(false)
		b.refused = b.subscriptionRefused(b.prefix+"*", violation)
		for token, w := range b.waiting {
			delete(b.waiting, token)
			w.ch <- response{err: b.refused}
		}
		return
	}
	for token, w := range b.waiting {
		if names(text, publishTo(w.subject), publishWithReply(b.prefix+token)) {
			delete(b.waiting, token)
			w.ch <- response{err: violation}
		}
	}
}

// request publishes msg with a reply subject of the inbox and waits for
// the reply until ctx ends. A publish the server's permissions refuse
// fails as soon as the violation arrives, with the violation, which wraps
// nats.ErrPermissionViolation.
func (b *inbox) request(ctx context.Context, msg *nats.Msg) (*nats.Msg, error) {
	if err := b.subscribe(ctx); err != nil {
		return nil, err
	}
	ch := make(chan response, 1)
	b.mu.Lock()
	if err := b.refused; err != nil {
		b.mu.Unlock()
		return nil, err
	}
	b.next++
	token := strconv.FormatUint(b.next, 10)
	b.waiting[token] = waiter{subject: msg.Subject, ch: ch}
	msg.Reply = b.prefix + token
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.waiting, token)
		b.mu.Unlock()
	}()
	if err := b.nc.PublishMsg(msg); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		// The server answers a request nobody serves with an empty 503.
		if len(r.msg.Data) == 0 && r.msg.Header.Get("Status") == "503" {
			return nil, nats.ErrNoResponders
		}
		return r.msg, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
