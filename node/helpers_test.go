package node_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/node"
)

// startNode starts a node on dir with the defaults on a free port; modify,
// when not nil, adjusts its configuration. The node stops when the test
// ends.
func startNode(t testing.TB, dir string, modify func(*node.Config)) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.DataDir, cfg.Listen, cfg.Logger = dir, "127.0.0.1:0", slog.New(slog.DiscardHandler)
	if modify != nil {
		modify(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := node.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() { n.Stop(context.Background()) })
	return n
}

// stopNode stops n before the test ends.
func stopNode(t testing.TB, n *node.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		t.Fatalf("stop node: %v", err)
	}
}

// admin returns an admin client on a new anonymous connection to url.
func admin(t testing.TB, url string) *client.Admin {
	t.Helper()
	a, err := client.NewAdmin(journaltest.ConnectURL(t, url), client.WithRetries(0), client.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// counters reads every counter of group through url.
func counters(t testing.TB, url, group string) map[string]int64 {
	t.Helper()
	got, err := admin(t, url).GetGroupCounters(context.Background(), group)
	if err != nil {
		t.Fatalf("get %s: %v", group, err)
	}
	return got
}

// internalJournal returns JetStream through the node's own account, the
// only one that reaches the journal, and the journal's stream.
func internalJournal(t testing.TB, n *node.Node) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	nc, err := n.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(context.Background(), journal.DefaultConfig().Stream)
	if err != nil {
		t.Fatal(err)
	}
	return js, stream
}

// publishWithReply sends data to subject with reply subject reply, without waiting
// for an answer, and flushes.
func publishWithReply(t testing.TB, nc *nats.Conn, subject, reply string, data []byte) {
	t.Helper()
	if err := nc.PublishMsg(&nats.Msg{Subject: subject, Reply: reply, Data: data}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}
