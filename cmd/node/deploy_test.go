package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal/journaltest"
)

// TestDeployConfig runs a node on a NATS server configured by
// deploy/nats-server.conf and checks its permissions: alice acts only as
// herself, and only the back end reaches the admin subjects.
func TestDeployConfig(t *testing.T) {
	t.Setenv("TALLY_NODE_PASSWORD", "node-secret")
	t.Setenv("ALICE_PASSWORD", "alice-secret")
	t.Setenv("BACKEND_PASSWORD", "backend-secret")
	opts, err := server.ProcessConfigFile("../../deploy/nats-server.conf")
	if err != nil {
		t.Fatalf("deploy/nats-server.conf: %v", err)
	}
	if !opts.NoSublistCache {
		t.Error("deploy/nats-server.conf keeps the subject cache that tally-node turns off")
	}
	opts.Host, opts.Port, opts.StoreDir, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, t.TempDir(), true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(s.Shutdown)
	url := func(user, password string) string {
		return fmt.Sprintf("nats://%s:%s@%s", user, password, s.Addr())
	}
	startProc(t, "--nats-url", url("tally-node", "node-secret"))

	ctx := context.Background()
	aliceConn := journaltest.ConnectURL(t, url("alice", "alice-secret"))
	alice, err := client.New(aliceConn, "alice", client.WithRetries(0), client.WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := alice.IncreaseGroupCounter(ctx, "g", "k", 3); err != nil || v != 3 {
		t.Fatalf("alice's increase = %d, %v", v, err)
	}
	impostor, _ := client.New(aliceConn, "bob", client.WithRetries(0), client.WithTimeout(time.Second))
	if _, err := impostor.IncreaseGroupCounter(ctx, "g", "k", 1); err == nil {
		t.Errorf("alice's connection acted as bob")
	}
	aliceAdmin, _ := client.NewAdmin(aliceConn, client.WithRetries(0), client.WithTimeout(time.Second))
	if err := aliceAdmin.DeleteGroupCounters(ctx, "g"); err == nil {
		t.Errorf("alice's connection reached the admin subjects")
	}
	backend, _ := client.NewAdmin(journaltest.ConnectURL(t, url("backend", "backend-secret")))
	got, err := backend.GetGroupCounters(ctx, "g")
	if err != nil || got["k"] != 3 {
		t.Errorf("back end's get = %v, %v; want k=3 (nothing else applied)", got, err)
	}
	if _, err := nats.Connect(url("alice", "wrong")); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("connect with a wrong password = %v, want an authorization error", err)
	}
}
