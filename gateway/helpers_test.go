package gateway_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/actors/actorstest"
	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/gateway/gatewaytest"
	"github.com/tallyhq/tally/journal/journaltest"
)

type env struct {
	nc    *nats.Conn // the test's client connection
	clock *actorstest.FakeClock
	node  *gatewaytest.Node
}

func newEnv(t testing.TB) *env {
	t.Helper()
	n := gatewaytest.StartTB(t, nil)
	return &env{nc: journaltest.ConnectURL(t, n.URL), clock: n.Clock, node: n}
}

// request sends payload to subject, as protobuf when proto is set.
func (e *env) request(t testing.TB, subject string, payload []byte, proto bool) *nats.Msg {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = payload
	if proto {
		msg.Header.Set("Content-Type", gateway.ContentTypeProtobuf)
	}
	reply, err := e.nc.RequestMsg(msg, 5*time.Second)
	if err != nil {
		t.Fatalf("request %s %s: %v", subject, payload, err)
	}
	return reply
}

// updates subscribes to every update.
func (e *env) updates(t testing.TB) chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 4096)
	sub, err := e.nc.ChanSubscribe("tally.v1.updates.>", ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return ch
}

func next(t testing.TB, ch chan *nats.Msg) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no update within 5 s")
		return nil
	}
}
