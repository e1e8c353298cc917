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
//
// subMu and mu are never held together.
type inbox struct {
	nc     *nats.Conn
	name   string // _INBOX_<user>
	prefix string // name.<random>., so one client's replies never reach another's

	ready atomic.Bool // the server took the subscription
	subMu sync.Mutex  // serializes attempts to subscribe

	mu      sync.Mutex
	next    uint64
	waiting map[string]chan *nats.Msg
}

func newInbox(nc *nats.Conn, name string) *inbox {
	return &inbox{nc: nc, name: name, prefix: name + "." + nuid.Next() + ".", waiting: map[string]chan *nats.Msg{}}
}

// subscribe makes the inbox's subscription unless it has one. A
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
	subject := b.prefix + "*"
	before := b.nc.LastError()
	sub, err := b.nc.Subscribe(subject, b.deliver)
	if err != nil {
		return fmt.Errorf("subscribe to replies on %s: %w", subject, err)
	}
	if err = b.nc.FlushWithContext(ctx); err == nil {
		if err = refused(b.nc, before, subscriptionTo(subject)); err != nil {
			err = fmt.Errorf("subscribe to replies on %s (the connection needs subscribe permission on %s): %w", subject, b.name+".>", err)
		}
	}
	if err != nil {
		if uerr := sub.Unsubscribe(); uerr != nil {
			return fmt.Errorf("subscribe to replies on %s: %w (and unsubscribe: %w)", subject, err, uerr)
		}
		return err
	}
	b.ready.Store(true)
	return nil
}

func (b *inbox) deliver(m *nats.Msg) {
	token := m.Subject[len(b.prefix):]
	b.mu.Lock()
	ch, ok := b.waiting[token]
	delete(b.waiting, token)
	b.mu.Unlock()
	if ok {
		ch <- m // buffered: one reply per request
	}
}

// request publishes msg with a reply subject of the inbox and waits for
// the reply until ctx ends. A publish the server's permissions refuse
// fails at once with the violation, which wraps nats.ErrPermissionViolation.
func (b *inbox) request(ctx context.Context, msg *nats.Msg) (*nats.Msg, error) {
	if err := b.subscribe(ctx); err != nil {
		return nil, err
	}
	ch := make(chan *nats.Msg, 1)
	b.mu.Lock()
	b.next++
	token := strconv.FormatUint(b.next, 10)
	b.waiting[token] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.waiting, token)
		b.mu.Unlock()
	}()
	msg.Reply = b.prefix + token
	before := b.nc.LastError()
	if err := b.nc.PublishMsg(msg); err != nil {
		return nil, err
	}
	// The flush's round trip overlaps the service's answer. A flush that
	// fails while the connection reconnects proves nothing: the publish
	// waits in nats.go's buffer, and the reply may still come.
	switch err := b.nc.FlushWithContext(ctx); {
	case err == nil:
		if err := refused(b.nc, before, publishTo(msg.Subject), publishWithReply(msg.Reply)); err != nil {
			return nil, err
		}
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	select {
	case m := <-ch:
		// The server answers a request nobody serves with an empty 503.
		if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
			return nil, nats.ErrNoResponders
		}
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
