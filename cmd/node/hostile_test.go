package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal/journaltest"
)

// TestFloodFromOneUser has one user send 15 KB requests from 8
// connections as fast as they can, on every operation of its own
// subjects, while a back end increases a counter: none of the node's
// connections is closed (the embedded server's monitoring lists the
// connections it closed, and why), and every one of the back end's calls
// succeeds, exactly once.
func TestFloodFromOneUser(t *testing.T) {
	monitor := freeAddr(t)
	p := startProc(t, "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--nats-monitor", monitor)
	body := []byte(`{"groupID":"g","key":"k","value":1,"pad":"` + strings.Repeat("x", 15_000) + `"}`)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(done)
	for range 8 {
		nc := journaltest.ConnectURL(t, p.url)
		inbox := nats.NewInbox()
		if _, err := nc.Subscribe(inbox+".*", func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			ops := []string{"set", "increase", "get", "decrease"}
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				nc.PublishRequest("tally.v1.user.mallory."+ops[i%4], inbox+".r", body)
			}
		})
	}
	admin, err := client.NewAdmin(journaltest.ConnectURL(t, p.url), client.WithRetries(0), client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := 0
	for start := time.Now(); time.Since(start) < 3*time.Second; calls++ {
		if _, err := admin.IncreaseGroupCounter(ctx, "backend", "k", 1); err != nil {
			t.Fatalf("back end's call %d during the flood: %v", calls+1, err)
		}
	}
	if got, err := admin.GetGroupCounters(ctx, "backend"); err != nil || got["k"] != int64(calls) {
		t.Errorf("backend = %v, %v; want k %d", got, err, calls)
	}
	code, connz := httpGet(t, "http://"+monitor+"/connz?state=closed")
	var closed struct {
		Conns []struct{ Name, Reason string } `json:"connections"`
	}
	if err := json.Unmarshal([]byte(connz), &closed); code != http.StatusOK || err != nil {
		t.Fatalf("/connz?state=closed = %d %v: %.200s", code, err, connz)
	}
	for _, c := range closed.Conns {
		if strings.HasPrefix(c.Name, "tally-") {
			t.Errorf("the server closed the node's connection %s: %s", c.Name, c.Reason)
		}
	}
	if log := p.stderr.String(); strings.Contains(log, "Slow Consumer") && strings.Contains(log, "tally-") {
		t.Errorf("the server cut a connection of the node:\n%s", log)
	}
	t.Logf("%d back end calls during the flood", calls)
}
