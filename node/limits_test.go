package node_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/node"
)

// TestMegabyteRequestsAreRefusedAtTheDoor checks the embedded server's
// max_payload: a request of 1 MB is refused before it reaches the node,
// and the node goes on serving.
func TestMegabyteRequestsAreRefusedAtTheDoor(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	nc := journaltest.ConnectURL(t, n.ClientURL())
	if got := nc.MaxPayload(); got != node.MaxPayload {
		t.Errorf("max_payload = %d, want %d", got, node.MaxPayload)
	}
	huge := fmt.Sprintf(`{"groupID":"g","key":"k","value":1,"pad":%q}`, strings.Repeat("x", 1<<20))
	if _, err := nc.Request("tally.v1.admin.increase", []byte(huge), 0); !errors.Is(err, nats.ErrMaxPayload) {
		t.Errorf("1 MB request: %v, want %v", err, nats.ErrMaxPayload)
	}
	if v, err := admin(t, n.ClientURL()).IncreaseGroupCounter(context.Background(), "g", "k", 1); err != nil || v != 1 {
		t.Errorf("increase after the refused request = %d, %v", v, err)
	}
}

// TestLargestSetsFitTheJournal sends 200 of the largest sets the contract
// allows (20 keys of 128 bytes) to one group at once: the group commits
// them in events that each fit in a NATS message, and every one succeeds.
func TestLargestSetsFitTheJournal(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	a := admin(t, n.ClientURL())
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprintf("%0128d", i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for v := range 200 {
		wg.Go(func() {
			counters := map[string]int64{}
			for _, k := range keys {
				counters[k] = int64(v)
			}
			_, err := a.SetGroupCounters(context.Background(), "big", counters)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("largest set: %v", err)
		}
	}
	got := counters(t, n.ClientURL(), "big")
	if len(got) != 20 {
		t.Errorf("big has %d keys, want 20", len(got))
	}
}

// TestSlowSubscriberIsCut subscribes to every update on a raw connection
// that never reads, then writes 20-key sets: the writes go on, none held
// up by the subscriber (updates are published by a queue of their own),
// until the server cuts the subscriber as a slow consumer, once it holds
// max_pending for it or its writes stall for the write deadline (10 s).
func TestSlowSubscriberIsCut(t *testing.T) {
	log := &logBuffer{}
	n := startNode(t, t.TempDir(), func(c *node.Config) {
		c.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.ClientURL(), "nats://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if _, err := r.ReadString('\n'); err != nil { // INFO
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("CONNECT {\"verbose\":false}\r\nSUB tally.v1.updates.> 1\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "PONG\r\n" {
		t.Fatalf("subscribe: %q, %v", line, err)
	}
	// From here on nobody reads conn.
	a := admin(t, n.ClientURL())
	counters := map[string]int64{}
	for i := range 20 {
		counters[fmt.Sprintf("%0128d", i)] = 0
	}
	start := time.Now()
	defer func() { t.Logf("cut %v after the first write", time.Since(start)) }()
	for i := 0; n.Server().NumSlowConsumersClients() == 0; i++ {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the subscriber is not cut after %d sets in %v", i, time.Since(start))
		}
		for k := range counters {
			counters[k] = int64(i)
		}
		if _, err := a.SetGroupCounters(context.Background(), "loud", counters); err != nil {
			t.Fatalf("set %d: %v", i, err)
		}
	}
	// The server's notice reaches the operator at warn, naming the
	// connection it cut.
	journaltest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, line := range strings.Split(log.String(), "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "Slow Consumer") && strings.Contains(line, "127.0.0.1:") {
				return nil
			}
		}
		return fmt.Errorf("no warning of the slow consumer in the node's log:\n%s", log)
	})
}

// TestLargeRequestsDoNotCrowdOthersOut has 128 connections send requests
// of 15 KB (under max_payload; an unknown field pads them) as one user
// while another client increases a counter: every large one is answered
// (the first 20 applied, the rest refused with 2996) and every one of the
// other client's calls succeeds.
func TestLargeRequestsDoNotCrowdOthersOut(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	url := n.ClientURL()
	big := []byte(fmt.Sprintf(`{"groupID":"g","key":"k","value":1,"pad":%q}`, strings.Repeat("x", 15_000)))
	var wg sync.WaitGroup
	refused := make(chan error, 128*20)
	for range 128 {
		nc := journaltest.ConnectURL(t, url)
		wg.Go(func() {
			for range 20 {
				m, err := nc.Request("tally.v1.user.mallory.increase", big, 10*time.Second)
				if err == nil {
					if code := m.Header.Get("Nats-Service-Error-Code"); code != "" && code != "2996" {
						err = fmt.Errorf("reply code %q, want none or 2996", code)
					}
				}
				refused <- err
			}
		})
	}
	a := admin(t, url)
	for i := range 200 {
		if _, err := a.IncreaseGroupCounter(context.Background(), "other", "k", 1); err != nil {
			t.Fatalf("increase %d among the large requests: %v", i, err)
		}
	}
	wg.Wait()
	close(refused)
	for err := range refused {
		if err != nil {
			t.Errorf("large request: %v", err)
			break
		}
	}
}
