package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/messages"
)

// hostile measures what one hostile client costs everyone else on one
// node: a flood of 15 KB requests on one user's subjects from 8
// connections, against other users' increases and a back end's admin
// calls; and a subscriber to every update that never reads, against
// 20-key sets from 32 writers. Each is measured quiet and hostile, in
// alternating order, on a fresh node.
func (b *bench) hostile(ctx context.Context, rounds int, stdout io.Writer) error {
	var rows [][]result
	for r := range rounds {
		for _, hostile := range []bool{r%2 == 1, r%2 == 0} {
			for _, s := range []struct {
				name string
				run  func(ctx context.Context, url string, hostile bool) ([]result, error)
			}{{"flood", b.flood}, {"dead subscriber", b.deadSubscriber}} {
				node, err := startTally(b.tallyBin, b.dir(fmt.Sprintf("hostile-%d-%v-%s", r, hostile, s.name)), "interval", false)
				if err != nil {
					return err
				}
				b.logf("hostile round %d: %s, hostile %v ...", r+1, s.name, hostile)
				got, err := s.run(ctx, node.url, hostile)
				node.stop()
				if err != nil {
					return fmt.Errorf("%s: %w", s.name, err)
				}
				for i := range got {
					got[i].System, got[i].Sync = s.name, quietOrHostile(hostile)
				}
				rows = append(rows, got)
			}
		}
	}
	out := medianRows(rows)
	slices.SortStableFunc(out, func(a, b result) int {
		return cmp.Or(strings.Compare(a.System, b.System), strings.Compare(a.Workload, b.Workload), -strings.Compare(a.Sync, b.Sync))
	})
	fmt.Fprintf(stdout, "what one hostile client costs the others (one node, %d rounds, medians)\n", rounds)
	fmt.Fprintf(stdout, "%-16s %-22s %-8s %10s %8s %8s %7s\n", "scenario", "callers", "run", "calls/s", "p50 ms", "p99 ms", "failed")
	for _, r := range out {
		fmt.Fprintf(stdout, "%-16s %-22s %-8s %10.0f %8.2f %8.2f %7d\n", r.System, r.Workload, r.Sync, r.OpsPerS, r.P50ms, r.P99ms, r.Failed)
	}
	if err := os.MkdirAll(b.o.out, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.o.out, "hostile.json"), js, 0o644)
}

// flood measures other users' increases (16 connections) and a back end's
// admin increases (4 connections), with or without one user flooding.
func (b *bench) flood(ctx context.Context, url string, hostile bool) ([]result, error) {
	users, err := newTallyClient(url, 16)
	if err != nil {
		return nil, err
	}
	defer users.close()
	backend, err := newTallyClient(url, 4)
	if err != nil {
		return nil, err
	}
	defer backend.close()
	if hostile {
		stop, err := startFlood(url, 8)
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	inc := users.subj["increase"]
	var ur, br result
	var wg sync.WaitGroup
	wg.Go(func() {
		ur = runFor(16, b.o.warmup, b.o.duration, 0, func(w int, n uint64) error {
			return users.call(w, inc[n%uint64(len(inc))], &messages.ChangeRequest{GroupId: fmt.Sprintf("f%d", n%1000), Key: "likes", Value: 1})
		})
	})
	wg.Go(func() {
		br = runFor(4, b.o.warmup, b.o.duration, 0, func(w int, n uint64) error {
			return backend.call(w, "tally.v1.admin.increase", &messages.ChangeRequest{GroupId: fmt.Sprintf("b%d", n%100), Key: "k", Value: 1})
		})
	})
	wg.Wait()
	ur.Workload, br.Workload = "other users (16 conns)", "back end (4 conns)"
	return []result{ur, br}, nil
}

// startFlood has conns connections send 15 KB requests on one user's
// subjects as fast as they can, reading their replies, until stopped.
func startFlood(url string, conns int) (func(), error) {
	body := []byte(`{"groupID":"g","key":"k","value":1,"pad":"` + strings.Repeat("x", 15_000) + `"}`)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range conns {
		nc, err := nats.Connect(url, nats.Name("bench-flood"))
		if err != nil {
			close(done)
			wg.Wait()
			return nil, err
		}
		inbox := nats.NewInbox()
		if _, err := nc.Subscribe(inbox+".*", func(*nats.Msg) {}); err != nil {
			nc.Close()
			close(done)
			wg.Wait()
			return nil, err
		}
		wg.Go(func() {
			defer nc.Close()
			ops := []string{"set", "increase", "get", "decrease"}
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				if err := nc.PublishRequest("tally.v1.user.mallory."+ops[i%4], inbox+".r", body); err != nil {
					time.Sleep(time.Millisecond) // reconnecting; not synchronisation
				}
			}
		})
	}
	return func() { close(done); wg.Wait() }, nil
}

// deadSubscriber measures 20-key sets from 32 writers, with or without a
// subscriber to every update that never reads.
func (b *bench) deadSubscriber(ctx context.Context, url string, hostile bool) ([]result, error) {
	if hostile {
		conn, err := deadSubscribe(url, "tally.v1.updates.>")
		if err != nil {
			return nil, err
		}
		defer conn.Close()
	} else {
		// A subscriber that reads, so that both runs publish every update.
		nc, err := nats.Connect(url)
		if err != nil {
			return nil, err
		}
		defer nc.Close()
		if _, err := nc.Subscribe("tally.v1.updates.>", func(*nats.Msg) {}); err != nil {
			return nil, err
		}
		if err := nc.Flush(); err != nil {
			return nil, err
		}
	}
	c, err := newTallyClient(url, 32)
	if err != nil {
		return nil, err
	}
	defer c.close()
	counters := map[string]int64{}
	for k := range 20 {
		counters[fmt.Sprintf("%0128d", k)] = 0
	}
	r := runFor(32, b.o.warmup, b.o.duration, 0, func(w int, n uint64) error {
		return c.call(w, "tally.v1.admin.set", &messages.SetRequest{GroupId: fmt.Sprintf("d%d", n%100), Counters: counters})
	})
	r.Workload = "20-key sets (32 conns)"
	return []result{r}, nil
}

// deadSubscribe subscribes to subject on a raw connection and never reads
// from it again.
func deadSubscribe(url, subject string) (net.Conn, error) {
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "nats://"))
	if err != nil {
		return nil, err
	}
	r := bufio.NewReader(conn)
	if _, err := r.ReadString('\n'); err != nil { // INFO
		conn.Close()
		return nil, err
	}
	if _, err := fmt.Fprintf(conn, "CONNECT {\"verbose\":false}\r\nSUB %s 1\r\nPING\r\n", subject); err != nil {
		conn.Close()
		return nil, err
	}
	if line, err := r.ReadString('\n'); err != nil || line != "PONG\r\n" {
		conn.Close()
		return nil, fmt.Errorf("subscribe: %q, %v", line, err)
	}
	return conn, nil
}

func quietOrHostile(hostile bool) string {
	if hostile {
		return "hostile"
	}
	return "quiet"
}
