package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
	"github.com/tallyhq/tally/node"
)

// rebuild replays the journal on the NATS server at url.
func rebuild(t *testing.T, url string) map[string]int64 {
	t.Helper()
	return rebuildOn(t, journaltest.ConnectURL(t, url))
}

// rebuildDir replays the journal in a data directory that no node uses,
// through an in-process node's own account: clients cannot reach it.
func rebuildDir(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	n, nc := inProcess(t, dir)
	defer n.Stop(context.Background()) // the data directory is the next node's
	return rebuildOn(t, nc)
}

// inProcess starts a node on dir in the test's process, stopped when the
// test ends if not before, and returns it with a connection as the node
// itself: the only way to the journal.
func inProcess(t *testing.T, dir string) (*node.Node, *nats.Conn) {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.DataDir, cfg.Listen, cfg.Logger = dir, "127.0.0.1:0", slog.New(slog.DiscardHandler)
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop(context.Background()) })
	nc, err := n.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	return n, nc
}

func rebuildOn(t *testing.T, nc *nats.Conn) map[string]int64 {
	t.Helper()
	return rebuildWith(t, nc, journal.DefaultConfig())
}

// rebuildWith is rebuildOn of a journal opened with cfg, which must be the
// live journal's own when nodes still run: opening it updates the stream.
func rebuildWith(t *testing.T, nc *nats.Conn, cfg journal.Config) map[string]int64 {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// Right after a server of a cluster restarted, JetStream may answer
	// "temporarily unavailable" for a moment: the whole read is tried
	// again; a chain that does not follow fails every time.
	var states map[string]*messages.GroupState
	journaltest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		j, err := journal.Open(ctx, js, cfg)
		if err != nil {
			return err
		}
		if states, err = actors.Rebuild(ctx, j); err != nil {
			return fmt.Errorf("Rebuild = %w", err)
		}
		return nil
	})
	out := map[string]int64{}
	for g, st := range states {
		out[g] = st.GetCounters()["n"]
	}
	return out
}

// TestKillKeepsAcknowledgedWrites kills a node with SIGKILL in the middle
// of a stream of writes, restarts it on the same data directory and finds
// every acknowledged write.
func TestKillKeepsAcknowledgedWrites(t *testing.T) {
	for _, mode := range []string{"interval", "always"} {
		t.Run(mode, func(t *testing.T) {
			data := t.TempDir()
			p := startProc(t, "--data", data, "--listen", "127.0.0.1:0", "--sync", mode)
			admin, err := client.NewAdmin(journaltest.ConnectURL(t, p.url), client.WithRetries(0), client.WithTimeout(2*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			const writers = 8
			var acked [writers]atomic.Int64
			var total atomic.Int64
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for {
						if _, err := admin.IncreaseGroupCounter(context.Background(), fmt.Sprintf("g%d", w), "n", 1); err != nil {
							return // the node is gone
						}
						acked[w].Add(1)
						total.Add(1)
					}
				})
			}
			journaltest.CheckFor(t, 60*time.Second, time.Millisecond, func() error {
				if n := total.Load(); n < 400 {
					return fmt.Errorf("%d writes acknowledged", n)
				}
				return nil
			})
			if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			p.wait(t)

			replayed := rebuildDir(t, data)
			again := startProc(t, "--data", data, "--listen", "127.0.0.1:0", "--sync", mode)
			admin2, err := client.NewAdmin(journaltest.ConnectURL(t, again.url))
			if err != nil {
				t.Fatal(err)
			}
			for w := range writers {
				g := fmt.Sprintf("g%d", w)
				got, err := admin2.GetGroupCounters(context.Background(), g, "n")
				if err != nil {
					t.Fatal(err)
				}
				// Each writer had at most one write in flight, which may or
				// may not have been stored.
				if n, a := got["n"], acked[w].Load(); n < a || n > a+1 {
					t.Errorf("%s: n = %d after restart, want %d acknowledged (+1 in flight at most)", g, n, a)
				}
				if replayed[g] != got["n"] {
					t.Errorf("%s: replay says %d, the restarted node %d", g, replayed[g], got["n"])
				}
			}
			t.Logf("--sync=%s: %d writes acknowledged before SIGKILL, all found after restart", mode, total.Load())
		})
	}
}

// TestTermFinishesRequestsTaken sends a burst of writes, then SIGTERM: the
// node answers every request it took and exits 0, and after a restart the
// counter equals the number of successful replies.
func TestTermFinishesRequestsTaken(t *testing.T) {
	data := t.TempDir()
	p := startProc(t, "--data", data, "--listen", "127.0.0.1:0")
	nc := journaltest.ConnectURL(t, p.url)
	replies := make(chan *nats.Msg, 1000)
	inbox := nats.NewInbox()
	if _, err := nc.ChanSubscribe(inbox+".*", replies); err != nil {
		t.Fatal(err)
	}
	const burst = 500
	for i := range burst {
		msg := &nats.Msg{
			Subject: "tally.v1.admin.increase",
			Reply:   fmt.Sprintf("%s.%d", inbox, i),
			Data:    []byte(`{"groupID":"burst","key":"n","value":1}`),
		}
		if err := nc.PublishMsg(msg); err != nil {
			t.Fatal(err)
		}
	}
	// Once flushed, the server has routed every request to the node.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ok, failed := 0, 0
	for ok+failed < burst {
		select {
		case m := <-replies:
			if strings.Contains(string(m.Data), `"code"`) {
				failed++
				t.Errorf("request refused: %s", m.Data)
			} else {
				ok++
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d requests answered", ok+failed, burst)
		}
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	again := startProc(t, "--data", data, "--listen", "127.0.0.1:0")
	admin, err := client.NewAdmin(journaltest.ConnectURL(t, again.url))
	if err != nil {
		t.Fatal(err)
	}
	got, err := admin.GetGroupCounters(context.Background(), "burst")
	if err != nil {
		t.Fatal(err)
	}
	if got["n"] != int64(ok) {
		t.Errorf("n = %d after restart, want %d answered increments", got["n"], ok)
	}
}

// TestTwoNodesShareOneServer runs two node processes on one NATS server.
// Both take requests from the same queue group, and each serves the groups
// of the partitions it holds, forwarding the others: the two never write
// one group at once (no append conflicts), the journal's chain is intact,
// and the final value is the sum of the acknowledged increments.
func TestTwoNodesShareOneServer(t *testing.T) {
	s := journaltest.StartServer(t)
	p1 := startProc(t, "--nats-url", s.ClientURL(), "--name", "one")
	p2 := startProc(t, "--nats-url", s.ClientURL(), "--name", "two")
	// The second node takes its share once the first hands it over.
	journaltest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		for _, p := range []*proc{p1, p2} {
			if !strings.Contains(p.stderr.String(), "partitions held") {
				return errors.New("a node holds no partition yet")
			}
		}
		return nil
	})
	admin, err := client.NewAdmin(journaltest.ConnectURL(t, s.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	var acked atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 100 {
				group := fmt.Sprintf("g%d", (w*100+i)%16)
				if _, err := admin.IncreaseGroupCounter(context.Background(), group, "n", 1); err != nil {
					t.Errorf("increase: %v", err)
					continue
				}
				acked.Add(1)
			}
		})
	}
	wg.Wait()
	// Rebuild fails if an event does not name its predecessor.
	var sum int64
	for _, v := range rebuild(t, s.ClientURL()) {
		sum += v
	}
	if sum != acked.Load() {
		t.Errorf("journal says %d increments, want %d acknowledged", sum, acked.Load())
	}
	logs := p1.stderr.String() + p2.stderr.String()
	if n := strings.Count(logs, "group changed by another writer"); n > 0 {
		t.Errorf("%d append conflicts: the nodes wrote the same groups", n)
	}
}

// TestOneNameTwoNodes starts a second node under a name a live node has:
// it refuses to join and says why.
func TestOneNameTwoNodes(t *testing.T) {
	s := journaltest.StartServer(t)
	startProc(t, "--nats-url", s.ClientURL(), "--name", "same")
	code, stderr := runToExit(t, "--nats-url", s.ClientURL(), "--name", "same")
	if code == 0 || !strings.Contains(stderr, "another node of the cluster has this name") {
		t.Errorf("second node named same: exit %d\n%s", code, stderr)
	}
}

// TestRetriesAfterRestart writes 300 changes with request IDs and 3,000
// more on the same group, stops the node (SIGKILL, SIGTERM), restarts it
// and retries the 300: each gets the first reply byte for byte and the
// group is unchanged. Another request under a used ID gets 10004.
func TestRetriesAfterRestart(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			data := t.TempDir()
			p := startProc(t, "--data", data, "--listen", "127.0.0.1:0")
			nc := journaltest.ConnectURL(t, p.url)
			req := func(nc *nats.Conn, subject, payload string) string {
				t.Helper()
				m, err := nc.Request(subject, []byte(payload), 5*time.Second)
				if err != nil {
					t.Fatalf("%s %s: %v", subject, payload, err)
				}
				return string(m.Data)
			}
			writes := make([][2]string, 300)
			for i := range writes {
				switch i % 3 {
				case 0:
					writes[i] = [2]string{"tally.v1.admin.increase", fmt.Sprintf(`{"groupID":"g","key":"k","value":%d,"requestID":"r%d"}`, 1_000_000+i, i)}
				case 1:
					writes[i] = [2]string{"tally.v1.admin.decrease", fmt.Sprintf(`{"groupID":"g","key":"k","value":%d,"requestID":"r%d"}`, i, i)}
				default:
					writes[i] = [2]string{"tally.v1.admin.set", fmt.Sprintf(`{"groupID":"g","counters":{"s":%d},"requestID":"r%d"}`, i, i)}
				}
			}
			first := make([]string, len(writes))
			for i, w := range writes {
				first[i] = req(nc, w[0], w[1])
			}
			for range 3000 {
				req(nc, "tally.v1.admin.increase", `{"groupID":"g","key":"later","value":1}`)
			}
			before := req(nc, "tally.v1.admin.get", `{"groupID":"g"}`)
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			p.wait(t)

			again := startProc(t, "--data", data, "--listen", "127.0.0.1:0")
			nc = journaltest.ConnectURL(t, again.url)
			for i, w := range writes {
				if got := req(nc, w[0], w[1]); got != first[i] {
					t.Errorf("retry %s %s = %s, first reply %s", w[0], w[1], got, first[i])
				}
			}
			if got := req(nc, "tally.v1.admin.get", `{"groupID":"g"}`); got != before {
				t.Errorf("after the retries g = %s, before the restart %s", got, before)
			}
			reused := req(nc, "tally.v1.admin.increase", `{"groupID":"g","key":"k","value":5,"requestID":"r0"}`)
			if !strings.Contains(reused, `"code":10004`) {
				t.Errorf("another request under r0 = %s, want 10004", reused)
			}
			if got := req(nc, "tally.v1.admin.get", `{"groupID":"g"}`); got != before {
				t.Errorf("after the reused ID g = %s, before %s", got, before)
			}
		})
	}
}
