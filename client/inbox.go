package client

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// inbox receives a client's replies on one subscription under its own
// prefix, _INBOX_<user>.<random>.*, so that NATS permissions can let each
// user read its own replies and nobody else's (subscribe: _INBOX_alice.>).
type inbox struct {
	nc     *nats.Conn
	prefix string // ends in "."

	once sync.Once
	err  error // the subscription's, once once ran

	mu      sync.Mutex
	next    uint64
	waiting map[string]chan *nats.Msg
}

func newInbox(nc *nats.Conn, name string) *inbox {
	return &inbox{nc: nc, prefix: name + "." + nuid.Next() + ".", waiting: map[string]chan *nats.Msg{}}
}

func (b *inbox) subscribe() {
	sub, err := b.nc.Subscribe(b.prefix+"*", b.deliver)
	if err == nil {
		err = b.nc.Flush()
		if err != nil {
			sub.Unsubscribe()
		}
	}
	if err != nil {
		b.err = fmt.Errorf("client: subscribe to replies on %s*: %w", b.prefix, err)
	}
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
// the reply until ctx ends.
func (b *inbox) request(ctx context.Context, msg *nats.Msg) (*nats.Msg, error) {
	if b.once.Do(b.subscribe); b.err != nil {
		return nil, b.err
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
	if err := b.nc.PublishMsg(msg); err != nil {
		return nil, err
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
