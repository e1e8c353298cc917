package gateway_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/gateway/gatewaytest"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

// BenchmarkIncrease measures the whole path of a protobuf increase: a
// client request over TCP, the gateway, the limiter and group actors, the
// append to a file-backed journal and the reply, with 64 requests in
// flight over 10,000 groups, as w1 of cmd/bench. allocs/op counts the
// client's and the embedded server's allocations too.
func BenchmarkIncrease(b *testing.B) {
	benchIncrease(b, gatewaytest.StartTB(b, nil))
}

func benchIncrease(b *testing.B, n *gatewaytest.Node) {
	const conns, groups = 64, 10_000
	ncs := make([]*nats.Conn, conns)
	for i := range ncs {
		ncs[i] = journaltest.ConnectURL(b, n.URL)
	}
	var next, conn atomic.Int64
	header := nats.Header{"Content-Type": []string{gateway.ContentTypeProtobuf}}
	b.SetParallelism((conns + 1) / 2) // RunParallel runs SetParallelism x GOMAXPROCS goroutines
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		nc := ncs[int(conn.Add(1)-1)%conns]
		for pb.Next() {
			i := next.Add(1)
			// The fake clock never moves, so each user makes fewer calls
			// than the limit.
			data, err := proto.Marshal(&messages.ChangeRequest{GroupId: fmt.Sprintf("g%d", i%groups), Key: "likes", Value: 1})
			if err != nil {
				b.Error(err)
				return
			}
			msg := &nats.Msg{Subject: fmt.Sprintf("tally.v1.user.u%d.increase", i/16), Data: data, Header: header}
			res, err := nc.RequestMsg(msg, 10*time.Second)
			if err != nil {
				b.Error(err)
				return
			}
			if code := res.Header.Get(micro.ErrorCodeHeader); code != "" {
				b.Errorf("increase refused: %s %s", code, res.Header.Get(micro.ErrorHeader))
				return
			}
		}
	})
}

// BenchmarkRefused measures a call that the rate limit refuses: one user
// over the limit sends JSON increases from 64 connections, as a flooding
// client would, each refused with 2996. allocs/op counts the client's and
// the embedded server's allocations too.
func BenchmarkRefused(b *testing.B) {
	n := gatewaytest.StartTB(b, nil)
	const conns = 64
	ncs := make([]*nats.Conn, conns)
	for i := range ncs {
		ncs[i] = journaltest.ConnectURL(b, n.URL)
	}
	payload := []byte(`{"groupID":"flooded","key":"likes","value":1}`)
	// The fake clock never moves: once the user made its 20 writes, every
	// later one is refused.
	for range 20 {
		if _, err := ncs[0].Request("tally.v1.user.flood.increase", payload, 10*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	var conn atomic.Int64
	b.SetParallelism((conns + 1) / 2)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		nc := ncs[int(conn.Add(1)-1)%conns]
		for pb.Next() {
			res, err := nc.Request("tally.v1.user.flood.increase", payload, 10*time.Second)
			if err != nil {
				b.Error(err)
				return
			}
			if code := res.Header.Get(micro.ErrorCodeHeader); code != "2996" {
				b.Errorf("code %q, want 2996", code)
				return
			}
		}
	})
}

// BenchmarkIncreaseBesideAFlood is BenchmarkIncrease while one user over
// the rate limit floods the node from 8 connections, as fast as its
// refusals come back: compare its ns/op with BenchmarkIncrease's to see
// what one flooding user takes from the others. BenchmarkIncreaseBesideAnEcho
// floods a plain responder on the same server instead, the least any
// answer to a request costs.
func BenchmarkIncreaseBesideAFlood(b *testing.B) {
	n := gatewaytest.StartTB(b, nil)
	flood := []byte(`{"groupID":"flooded","key":"likes","value":1}`)
	for range 20 {
		if _, err := journaltest.ConnectURL(b, n.URL).Request("tally.v1.user.flood.increase", flood, 10*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	benchBesideAFlood(b, n, "tally.v1.user.flood.increase", flood)
}

func BenchmarkIncreaseBesideAnEcho(b *testing.B) {
	n := gatewaytest.StartTB(b, nil)
	echo := journaltest.ConnectURL(b, n.URL)
	refusal := nats.Header{micro.ErrorCodeHeader: []string{"2996"}, micro.ErrorHeader: []string{"rate limit exceeded"}}
	body := []byte(`{"code":2996,"message":"rate limit exceeded"}`)
	if _, err := echo.Subscribe("echo.flood", func(m *nats.Msg) {
		m.RespondMsg(&nats.Msg{Header: refusal, Data: body})
	}); err != nil {
		b.Fatal(err)
	}
	if err := echo.Flush(); err != nil {
		b.Fatal(err)
	}
	benchBesideAFlood(b, n, "echo.flood", []byte(`{"groupID":"flooded","key":"likes","value":1}`))
}

// benchBesideAFlood runs benchIncrease while 8 connections send requests
// to subject one at a time each, as fast as their answers come back.
func benchBesideAFlood(b *testing.B, n *gatewaytest.Node, subject string, payload []byte) {
	stop := make(chan struct{})
	var answered atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		nc := journaltest.ConnectURL(b, n.URL)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := nc.Request(subject, payload, 10*time.Second); err == nil {
					answered.Add(1)
				}
			}
		})
	}
	b.Cleanup(func() { close(stop); wg.Wait() })
	start := time.Now()
	benchIncrease(b, n)
	b.ReportMetric(float64(answered.Load())/time.Since(start).Seconds(), "flood/s")
}
