package client_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/gateway/gatewaytest"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

// BenchmarkIncrease measures IncreaseGroupCounter as a back end serving
// many users makes it: 64 goroutines, one user each, share one connection
// to an in-process node and increase counters of 10,000 groups. allocs/op
// counts the node's allocations too.
func BenchmarkIncrease(b *testing.B) {
	n := gatewaytest.StartTB(b, nil)
	nc := journaltest.ConnectURL(b, n.URL)
	var user atomic.Int64
	benchParallel(b, n, func() func(ctx context.Context, group string) error {
		c, err := client.New(nc, fmt.Sprintf("u%d", user.Add(1)))
		if err != nil {
			b.Fatal(err)
		}
		return func(ctx context.Context, group string) error {
			_, err := c.IncreaseGroupCounter(ctx, group, "likes", 1)
			return err
		}
	})
}

// BenchmarkIncreaseAgainstEcho is BenchmarkIncrease against a plain
// responder on the node's server instead of the node, which answers every
// increase with the same reply: what is left is the client's own cost and
// the NATS round trip.
func BenchmarkIncreaseAgainstEcho(b *testing.B) {
	n := gatewaytest.StartTB(b, nil)
	startEcho(b, n)
	nc := journaltest.ConnectURL(b, n.URL)
	var user atomic.Int64
	benchParallel(b, n, func() func(ctx context.Context, group string) error {
		c, err := client.New(nc, fmt.Sprintf("u%d", user.Add(1)), client.WithSubjectPrefix("echo.v1"))
		if err != nil {
			b.Fatal(err)
		}
		return func(ctx context.Context, group string) error {
			_, err := c.IncreaseGroupCounter(ctx, group, "likes", 1)
			return err
		}
	})
}

// BenchmarkAdminIncrease is BenchmarkIncrease through one Admin, which
// takes its replies on the connection's own inbox.
func BenchmarkAdminIncrease(b *testing.B) {
	n := gatewaytest.StartTB(b, nil)
	admin, err := client.NewAdmin(journaltest.ConnectURL(b, n.URL))
	if err != nil {
		b.Fatal(err)
	}
	benchParallel(b, n, func() func(ctx context.Context, group string) error {
		return func(ctx context.Context, group string) error {
			_, err := admin.IncreaseGroupCounter(ctx, group, "likes", 1)
			return err
		}
	})
}

// BenchmarkAdminIncreaseAgainstEcho is BenchmarkAdminIncrease against the
// plain responder of BenchmarkIncreaseAgainstEcho.
func BenchmarkAdminIncreaseAgainstEcho(b *testing.B) {
	n := gatewaytest.StartTB(b, nil)
	startEcho(b, n)
	admin, err := client.NewAdmin(journaltest.ConnectURL(b, n.URL), client.WithSubjectPrefix("echo.v1"))
	if err != nil {
		b.Fatal(err)
	}
	benchParallel(b, n, func() func(ctx context.Context, group string) error {
		return func(ctx context.Context, group string) error {
			_, err := admin.IncreaseGroupCounter(ctx, group, "likes", 1)
			return err
		}
	})
}

// startEcho answers every request on echo.v1.> with the same reply.
func startEcho(b *testing.B, n *gatewaytest.Node) {
	b.Helper()
	echo := journaltest.ConnectURL(b, n.URL)
	reply, err := proto.Marshal(&messages.ChangeReply{GroupId: "g", Key: "likes", Value: 1})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := echo.Subscribe("echo.v1.>", func(m *nats.Msg) {
		if err := m.Respond(reply); err != nil {
			b.Error(err)
		}
	}); err != nil {
		b.Fatal(err)
	}
	if err := echo.Flush(); err != nil {
		b.Fatal(err)
	}
}

// benchParallel runs the calls that newCaller returns from 64 goroutines,
// one caller each. Every 16 calls it moves the node's clock past the rate
// limit's window, so that no user makes 20 writes within one.
func benchParallel(b *testing.B, n *gatewaytest.Node, newCaller func() func(ctx context.Context, group string) error) {
	const goroutines, groups = 64, 10_000
	var next atomic.Int64
	ctx := context.Background()
	b.SetParallelism((goroutines + 1) / 2) // RunParallel runs SetParallelism x GOMAXPROCS goroutines
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		call := newCaller()
		for pb.Next() {
			i := next.Add(1)
			if i%16 == 0 {
				n.Clock.Advance(6 * time.Second)
			}
			if err := call(ctx, fmt.Sprintf("g%d", i%groups)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
