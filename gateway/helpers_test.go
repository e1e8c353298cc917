package gateway_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/actors/actorstest"
	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
)

type env struct {
	nc    *nats.Conn // the test's client connection
	clock *actorstest.FakeClock
	gw    *gateway.Gateway
}

// newEnv starts a NATS server, a node and a gateway, each on its own
// connection as in cmd/node.
func newEnv(t testing.TB) *env {
	t.Helper()
	s := journaltest.StartServer(t)
	js := journaltest.JetStream(t, journaltest.Connect(t, s))
	j, err := journal.Open(context.Background(), js, journal.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	cfg := actors.DefaultConfig()
	cfg.Journal, cfg.Logger = j, quiet
	cfg.Publisher = gateway.NewPublisher(journaltest.Connect(t, s), "tally.v1", quiet)
	clock := actorstest.NewFakeClock()
	cfg.Clock = clock
	node, err := actors.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Stop)
	gcfg := gateway.DefaultConfig()
	gcfg.Logger = quiet
	gw, err := gateway.Start(journaltest.Connect(t, s), node, gcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := gw.Stop(ctx); err != nil {
			t.Errorf("gateway Stop = %v", err)
		}
	})
	return &env{nc: journaltest.Connect(t, s), clock: clock, gw: gw}
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
