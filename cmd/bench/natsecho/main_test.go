package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/messages"
)

// serve runs natsecho in the test and returns a connection to it.
func serve(t *testing.T, mode string) *nats.Conn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, mode, clusterConfig{}, func(url string) { urls <- url }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	var url string
	select {
	case url = <-urls:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("natsecho not serving after 30 s")
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func increase(t *testing.T, nc *nats.Conn, group string) *nats.Msg {
	t.Helper()
	data, err := proto.Marshal(&messages.ChangeRequest{GroupId: group, Key: "likes", Value: 1})
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: "tally.v1.user.alice.increase", Data: data, Header: protoHeader}
	res, err := nc.RequestMsg(msg, 10*time.Second)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if code := res.Header.Get(micro.ErrorCodeHeader); code != "" {
		t.Fatalf("answered with error %s: %s", code, res.Header.Get(micro.ErrorHeader))
	}
	if got := res.Header.Get("Content-Type"); got != gateway.ContentTypeProtobuf {
		t.Errorf("reply Content-Type = %q, want %q", got, gateway.ContentTypeProtobuf)
	}
	return res
}

func TestEchoAnswersWithThePayload(t *testing.T) {
	nc := serve(t, modeEcho)
	res := increase(t, nc, "g1")
	var got messages.ChangeRequest
	if err := proto.Unmarshal(res.Data, &got); err != nil || got.GetGroupId() != "g1" || got.GetValue() != 1 {
		t.Errorf("reply %x decodes to %v, %v; want the request back", res.Data, &got, err)
	}
}

// TestJournalAppendsBeforeAnswering checks that the journaled ceiling does
// the work it stands for: each answer is the acknowledgement of an append
// of the request to its group's subject.
func TestJournalAppendsBeforeAnswering(t *testing.T) {
	nc := serve(t, modeJournal)
	groups := []string{"g1", "g2", "g1"}
	for i, g := range groups {
		res := increase(t, nc, g)
		var ack jetstream.PubAck
		if err := json.Unmarshal(res.Data, &ack); err != nil {
			t.Fatalf("reply %q is not an acknowledgement: %v", res.Data, err)
		}
		if ack.Stream != "ECHO_JOURNAL" || ack.Sequence != uint64(i+1) {
			t.Errorf("append %d acknowledged as %+v, want stream ECHO_JOURNAL seq %d", i+1, ack, i+1)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, "ECHO_JOURNAL")
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range groups {
		m, err := stream.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
		var req messages.ChangeRequest
		if m.Subject != "echo.journal."+g || proto.Unmarshal(m.Data, &req) != nil || req.GetGroupId() != g {
			t.Errorf("message %d on %s holds %x, want the request of %s on echo.journal.%s", i+1, m.Subject, m.Data, g, g)
		}
	}
}

func TestJournalsRefuseAnUnreadableRequest(t *testing.T) {
	for _, mode := range []string{modeJournal, modeBatched, modeAtomic, modeFenced} {
		t.Run(mode, func(t *testing.T) {
			nc := serve(t, mode)
			res, err := nc.Request("tally.v1.user.alice.increase", []byte("not protobuf"), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if code := res.Header.Get(micro.ErrorCodeHeader); code != "10002" {
				t.Errorf("error code = %q, want 10002 (the benchmark counts it as failed)", code)
			}
		})
	}
}

// TestClusterJournalsOnTheGroupsShard runs the cluster's ceilings on three
// servers and checks that they do the work they stand for: each shard's
// stream on three servers and led by the server of its index, and each
// change, whichever server took it, acknowledged by the stream of its
// group's shard.
func TestClusterJournalsOnTheGroupsShard(t *testing.T) {
	for _, mode := range []string{modeJournal, modeAtomic} {
		t.Run(mode, func(t *testing.T) { testClusterJournals(t, mode) })
	}
}

func testClusterJournals(t *testing.T, mode string) {
	const n = 3
	var routes []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		routes = append(routes, l.Addr().String())
		l.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	urls := make([]chan string, n)
	done := make(chan error, n)
	for i := range n {
		urls[i] = make(chan string, 1)
		cl := clusterConfig{listen: routes[i], routes: routes, shard: i, replicas: 3}
		go func() { done <- run(ctx, mode, cl, func(url string) { urls[i] <- url }) }()
	}
	t.Cleanup(func() {
		cancel()
		for range n {
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}
	})
	var conns []*nats.Conn
	for i := range n {
		select {
		case url := <-urls[i]:
			nc, err := nats.Connect(url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			conns = append(conns, nc)
		case err := <-done:
			t.Fatalf("run: %v", err)
		case <-time.After(60 * time.Second):
			t.Fatalf("server %d not serving after 60 s", i+1)
		}
	}
	js, err := jetstream.New(conns[0])
	if err != nil {
		t.Fatal(err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
	defer tcancel()
	for i := range n {
		s, err := js.Stream(tctx, streamOf(i))
		if err != nil {
			t.Fatal(err)
		}
		info := s.CachedInfo()
		if info.Cluster == nil || info.Cluster.Leader != serverName(i) || len(info.Cluster.Replicas) != 2 {
			t.Errorf("stream %s: cluster %+v, want led by %s with two other replicas", streamOf(i), info.Cluster, serverName(i))
		}
	}
	for g := range 12 {
		group := fmt.Sprintf("g%d", g)
		res := increase(t, conns[g%n], group)
		var ack jetstream.PubAck
		if err := json.Unmarshal(res.Data, &ack); err != nil {
			t.Fatalf("reply %q is not an acknowledgement: %v", res.Data, err)
		}
		if want := streamOf(journal.PartitionOf(group, n)); ack.Stream != want {
			t.Errorf("%s through server %d: acknowledged by %s, want %s", group, g%n+1, ack.Stream, want)
		}
	}
}

func TestClusterOnlyJournals(t *testing.T) {
	err := run(context.Background(), modeEcho, clusterConfig{listen: "127.0.0.1:1", routes: []string{"127.0.0.1:1"}}, func(string) {})
	if err == nil || !strings.Contains(err.Error(), "only with -mode journal or atomic-journal") {
		t.Errorf("run(echo) in a cluster = %v, want refused", err)
	}
}
