// Package gatewaytest runs a whole tally node in-process for tests and
// examples, as tally-node runs it (package node), with its data in a
// temporary directory and a fake clock.
package gatewaytest

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/tallyhq/tally/actors/actorstest"
	"github.com/tallyhq/tally/node"
)

// Node is a running in-process tally node.
type Node struct {
	*node.Node
	// URL is the NATS server's client URL.
	URL string
	// Clock drives the rate limits and the dedupe window.
	Clock *actorstest.FakeClock

	dir string
}

// Start starts a node on a free loopback port; modify, when not nil,
// adjusts its configuration. The caller must Close it.
func Start(modify func(*node.Config)) (*Node, error) {
	dir, err := os.MkdirTemp("", "tally-test-")
	if err != nil {
		return nil, err
	}
	n := &Node{dir: dir, Clock: actorstest.NewFakeClock()}
	cfg := node.DefaultConfig()
	cfg.DataDir, cfg.Listen, cfg.Clock = dir, "127.0.0.1:0", n.Clock
	cfg.Logger = slog.New(slog.DiscardHandler)
	if modify != nil {
		modify(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n.Node, err = node.Start(ctx, cfg); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	n.URL = n.ClientURL()
	return n, nil
}

// StartTB starts a node that is closed when the test ends.
func StartTB(tb testing.TB, modify func(*node.Config)) *Node {
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

// Close stops taking requests, waits for those taken, stops everything and
// removes the node's data.
func (n *Node) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(n.Stop(ctx), os.RemoveAll(n.dir))
}
