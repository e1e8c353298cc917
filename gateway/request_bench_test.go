package gateway_test

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/gateway/gatewaytest"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
	"github.com/tallyhq/tally/node"
)

// BenchmarkIncrease measures the whole path of a protobuf increase: a
// client request over TCP, the gateway, the rate limit, the group's actor,
// the append to a file-backed journal and the reply, with 64 requests in
// flight over 10,000 groups, as w1 of cmd/bench. Every group is active
// before the timer starts and stays so: activation is not measured here
// (BenchmarkActivate in package actors is). allocs/op counts the client's
// and the embedded server's allocations too; the client's requests are
// encoded before the timer starts.
func BenchmarkIncrease(b *testing.B) {
	benchIncrease(b, gatewaytest.StartTB(b, stayActive).URL)
}

// BenchmarkIncreaseJournalCeiling runs BenchmarkIncrease's client against
// the least a service that journals each call does on NATS: a responder
// on an in-process connection of an embedded server, without the
// account's subject cache as tally-node's, that appends each request to a
// file-backed JetStream stream on its group's subject and answers with
// its payload once the append is acknowledged (make bench's
// nats-echo-journal). Its allocs/op are those of NATS, server and client,
// for one journaled call: what BenchmarkIncrease's cannot go below.
func BenchmarkIncreaseJournalCeiling(b *testing.B) {
	s := journaltest.Start(b, &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: b.TempDir(), NoLog: true, NoSigs: true, NoSublistCache: true})
	nc, err := nats.Connect("", nats.InProcessServer(s), nats.FlusherTimeout(0))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := js.CreateStream(b.Context(), jetstream.StreamConfig{Name: "CEILING", Subjects: []string{"ceiling.>"}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	var (
		mu      sync.Mutex
		next    uint64
		waiting = map[uint64]*nats.Msg{}
	)
	header := nats.Header{"Content-Type": []string{gateway.ContentTypeProtobuf}}
	acks, err := nc.Subscribe("ceiling-ack.*", func(a *nats.Msg) {
		id, _ := strconv.ParseUint(a.Subject[len("ceiling-ack."):], 10, 64)
		mu.Lock()
		req := waiting[id]
		delete(waiting, id)
		mu.Unlock()
		if req != nil {
			req.RespondMsg(&nats.Msg{Header: header, Data: req.Data})
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	acks.SetPendingLimits(-1, -1)
	var group messages.ChangeRequest
	sub, err := nc.QueueSubscribe("tally.v1.user.*.increase", "ceiling", func(m *nats.Msg) {
		if err := proto.Unmarshal(m.Data, &group); err != nil {
			return
		}
		mu.Lock()
		next++
		id := next
		waiting[id] = m
		mu.Unlock()
		nc.PublishMsg(&nats.Msg{Subject: "ceiling." + group.GetGroupId(), Reply: "ceiling-ack." + strconv.FormatUint(id, 10), Data: m.Data})
	})
	if err != nil {
		b.Fatal(err)
	}
	sub.SetPendingLimits(-1, -1)
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	benchIncrease(b, s.ClientURL())
}

// stayActive keeps every group's actor for the benchmark's length.
func stayActive(c *node.Config) { c.ActorIdle, c.PassivateAfter = time.Hour, time.Hour }

func benchIncrease(b *testing.B, url string) {
	const conns, groups = 64, 10_000
	ncs := make([]*nats.Conn, conns)
	for i := range ncs {
		ncs[i] = journaltest.ConnectURL(b, url)
	}
	header := nats.Header{"Content-Type": []string{gateway.ContentTypeProtobuf}}
	payloads := make([][]byte, groups)
	for i := range payloads {
		data, err := proto.Marshal(&messages.ChangeRequest{GroupId: fmt.Sprintf("g%d", i), Key: "likes", Value: 1})
		if err != nil {
			b.Fatal(err)
		}
		payloads[i] = data
	}
	// The fake clock never moves, so each user makes fewer calls than the
	// limit: 16 each, the first group's warm-up call of every group made by
	// users of their own.
	users := make([]string, (b.N+groups)/16+1)
	for i := range users {
		users[i] = fmt.Sprintf("tally.v1.user.u%d.increase", i)
	}
	call := func(nc *nats.Conn, i int) error {
		msg := &nats.Msg{Subject: users[i/16], Data: payloads[i%groups], Header: header}
		res, err := nc.RequestMsg(msg, 10*time.Second)
		if err != nil {
			return err
		}
		if code := res.Header.Get(micro.ErrorCodeHeader); code != "" {
			return fmt.Errorf("increase refused: %s %s", code, res.Header.Get(micro.ErrorHeader))
		}
		return nil
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, nc := range ncs {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < groups; i = int(next.Add(1) - 1) {
				if err := call(nc, i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	next.Store(groups) // each warm-up goroutine took one past the last group
	var conn atomic.Int64
	b.SetParallelism((conns + 1) / 2) // RunParallel runs SetParallelism x GOMAXPROCS goroutines
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		nc := ncs[int(conn.Add(1)-1)%conns]
		for pb.Next() {
			if err := call(nc, int(next.Add(1)-1)); err != nil {
				b.Error(err)
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
	n := gatewaytest.StartTB(b, stayActive)
	flood := []byte(`{"groupID":"flooded","key":"likes","value":1}`)
	for range 20 {
		if _, err := journaltest.ConnectURL(b, n.URL).Request("tally.v1.user.flood.increase", flood, 10*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	benchBesideAFlood(b, n, "tally.v1.user.flood.increase", flood)
}

func BenchmarkIncreaseBesideAnEcho(b *testing.B) {
	n := gatewaytest.StartTB(b, stayActive)
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
	benchIncrease(b, n.URL)
	b.ReportMetric(float64(answered.Load())/time.Since(start).Seconds(), "flood/s")
}
