// Package gatewaytest runs a whole tally node in-process for tests and
// examples: a NATS server with JetStream in a temporary directory, the
// journal, the actors and the gateway, each on its own connection.
package gatewaytest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/actors/actorstest"
	"github.com/tallyhq/tally/gateway"
	"github.com/tallyhq/tally/journal"
)

// Node is a running in-process tally node.
type Node struct {
	// URL is the NATS server's client URL.
	URL string
	// Clock drives the rate limiter and the dedupe window.
	Clock *actorstest.FakeClock

	dir     string
	ns      *server.Server
	conns   []*nats.Conn
	actors  *actors.Node
	gateway *gateway.Gateway
}

// Start starts a node; modify, when not nil, adjusts the actors' settings.
// The caller must Close it.
func Start(modify func(*actors.Config)) (n *Node, err error) {
	dir, err := os.MkdirTemp("", "tally-test-")
	if err != nil {
		return nil, err
	}
	n = &Node{dir: dir, Clock: actorstest.NewFakeClock()}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	n.ns, err = server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
		NoSublistCache: true, // as tally-node runs its embedded server
	})
	if err != nil {
		return nil, err
	}
	go n.ns.Start()
	if !n.ns.ReadyForConnections(10 * time.Second) {
		return nil, errors.New("gatewaytest: NATS server not ready")
	}
	n.URL = n.ns.ClientURL()
	connect := func() (*nats.Conn, error) {
		nc, err := nats.Connect(n.URL)
		if err == nil {
			n.conns = append(n.conns, nc)
		}
		return nc, err
	}
	nc, err := connect()
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	j, err := journal.Open(context.Background(), js, journal.DefaultConfig())
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.DiscardHandler)
	pc, err := connect()
	if err != nil {
		return nil, err
	}
	cfg := actors.DefaultConfig()
	cfg.Journal, cfg.Clock, cfg.Logger = j, n.Clock, quiet
	pub := gateway.NewPublisher(pc, "tally.v1", quiet)
	pub.Interest = n.ns.GlobalAccount().SubscriptionInterest
	cfg.Publisher = pub
	if modify != nil {
		modify(&cfg)
	}
	if n.actors, err = actors.Start(cfg); err != nil {
		return nil, err
	}
	gc, err := connect()
	if err != nil {
		return nil, err
	}
	gcfg := gateway.DefaultConfig()
	gcfg.Logger = quiet
	if n.gateway, err = gateway.Start(gc, n.actors, gcfg); err != nil {
		return nil, fmt.Errorf("gatewaytest: %w", err)
	}
	return n, nil
}

// StartTB starts a node that is closed when the test ends.
func StartTB(tb testing.TB, modify func(*actors.Config)) *Node {
	tb.Helper()
	n, err := Start(modify)
	if err != nil {
		tb.Fatalf("start tally node: %v", err)
	}
	tb.Cleanup(func() {
		if err := n.Close(); err != nil {
			tb.Errorf("close tally node: %v", err)
		}
	})
	return n
}

// Close stops taking requests, waits for those taken, and stops everything.
func (n *Node) Close() error {
	var err error
	if n.gateway != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = n.gateway.Stop(ctx)
		cancel()
	}
	if n.actors != nil {
		n.actors.Stop()
	}
	for _, nc := range n.conns {
		nc.Close()
	}
	if n.ns != nil {
		n.ns.Shutdown()
		n.ns.WaitForShutdown()
	}
	return errors.Join(err, os.RemoveAll(n.dir))
}
