package main

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/messages"
	"github.com/tallyhq/tally/usersig"
)

const (
	// endUserPace is how often an end user calls: just under the limit
	// of 20 writes per 5 s, so that a call refused with 2996 means the
	// limiter miscounted, not that the load asked too much.
	endUserPace = 260 * time.Millisecond
	// endUserRooms are the groups the end users share, as live rooms.
	endUserRooms = 100
	// signInConcurrency is how many sign-ins are in flight at once.
	signInConcurrency = 64
)

// endUserRow is one scenario of the end-user measurement: the end users'
// calls, the back ends' beside them, and what signing in cost.
type endUserRow struct {
	Scenario     string  `json:"scenario"`
	Users        int     `json:"users"`
	SignInsPerS  float64 `json:"sign_ins_per_s"`
	BytesPerConn int64   `json:"node_bytes_per_connection"`
	EndUsers     result  `json:"end_users"`
	BackEnd      result  `json:"back_end"`
}

// endUsers measures end users on one node: users WebSocket connections,
// each one user signed in with a user signature and calling at the
// per-user limit, beside a back end's increases over TCP (16
// connections, one call in flight each); against the back end alone; and
// the end users with one more user flooding the node (the most
// connections a user may open, each sending as fast as it can, and a
// loop of sign-ins). Each scenario runs on a fresh node, in alternating
// order over the rounds.
func (b *bench) endUsers(ctx context.Context, rounds, users int, stdout io.Writer) error {
	pub, key, err := usersig.GenerateKey()
	if err != nil {
		return err
	}
	keyFile := filepath.Join(b.tmp, "user-sig.pub")
	pem, err := usersig.MarshalPublicKey(pub)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem, 0o644); err != nil {
		return err
	}
	scenarios := []string{"back end alone", "end users", "end users + one flooding"}
	var rows [][]endUserRow
	for r := range rounds {
		order := slices.Clone(scenarios)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		var round []endUserRow
		for _, s := range order {
			b.logf("end users round %d: %s ...", r+1, s)
			row, err := b.endUserScenario(ctx, s, users, keyFile, key, r)
			if err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			round = append(round, row)
		}
		slices.SortFunc(round, func(a, b endUserRow) int {
			return slices.Index(scenarios, a.Scenario) - slices.Index(scenarios, b.Scenario)
		})
		rows = append(rows, round)
	}
	out := medianEndUserRows(rows)
	fmt.Fprintf(stdout, "end users on one node: %d WebSocket users at the per-user limit beside a back end over TCP (%d rounds, medians)\n", users, rounds)
	fmt.Fprintf(stdout, "%-26s %10s %9s %12s %9s %8s %8s %12s %9s\n", "scenario", "sign-ins/s", "KB/conn", "users call/s", "p99 ms", "refused", "failed", "backend c/s", "p99 ms")
	for _, r := range out {
		fmt.Fprintf(stdout, "%-26s %10.0f %9.1f %12.0f %9.2f %8d %8d %12.0f %9.2f\n", r.Scenario, r.SignInsPerS, float64(r.BytesPerConn)/1024,
			r.EndUsers.OpsPerS, r.EndUsers.P99ms, r.EndUsers.Refused, r.EndUsers.Failed, r.BackEnd.OpsPerS, r.BackEnd.P99ms)
	}
	if err := os.MkdirAll(b.o.out, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.o.out, "endusers.json"), js, 0o644)
}

// endUserScenario runs one scenario on a fresh node.
func (b *bench) endUserScenario(ctx context.Context, scenario string, users int, keyFile string, key ed25519.PrivateKey, round int) (endUserRow, error) {
	row := endUserRow{Scenario: scenario}
	wsPort, err := freePort()
	if err != nil {
		return row, err
	}
	node, err := startTally(b.tallyBin, b.dir(fmt.Sprintf("endusers-%d-%s", round, strings.ReplaceAll(scenario, " ", "-"))), "interval", false,
		"--websocket", fmt.Sprintf("127.0.0.1:%d", wsPort), "--websocket-no-tls", "--user-sig-key", keyFile)
	if err != nil {
		return row, err
	}
	defer node.stop()
	wsURL := fmt.Sprintf("ws://127.0.0.1:%d", wsPort)
	backend, err := newTallyClient(node.url, 16)
	if err != nil {
		return row, err
	}
	defer backend.close()

	var conns []*endUser
	if scenario != "back end alone" {
		row.Users = users
		rss0, _ := memory(node.pid())
		start := time.Now()
		if conns, err = signIn(wsURL, key, users); err != nil {
			return row, err
		}
		row.SignInsPerS = float64(users) / time.Since(start).Seconds()
		rss1, _ := memory(node.pid())
		row.BytesPerConn = (rss1 - rss0) / int64(users)
		defer func() {
			for _, u := range conns {
				u.nc.Close()
			}
		}()
	}
	if scenario == "end users + one flooding" {
		stop, err := startUserFlood(wsURL, key)
		if err != nil {
			return row, err
		}
		defer stop()
	}
	var wg sync.WaitGroup
	if conns != nil {
		wg.Go(func() { row.EndUsers = paced(conns, b.o.warmup, b.o.duration, node.pid()) })
	}
	wg.Go(func() {
		row.BackEnd = runFor(16, b.o.warmup, b.o.duration, node.pid(), func(w int, n uint64) error {
			return backend.call(w, "tally.v1.admin.increase", &messages.ChangeRequest{GroupId: fmt.Sprintf("b%d", n%100), Key: "k", Value: 1})
		})
	})
	wg.Wait()
	row.EndUsers.Workload, row.BackEnd.Workload = fmt.Sprintf("end users (%d ws)", row.Users), "back end (16 tcp)"
	return row, nil
}

// endUser is one signed-in end user.
type endUser struct {
	id string
	nc *nats.Conn
}

// signIn connects n users over WebSocket, each with a signature of its
// own, signInConcurrency at a time.
func signIn(url string, key ed25519.PrivateKey, n int) ([]*endUser, error) {
	out := make([]*endUser, n)
	sem := make(chan struct{}, signInConcurrency)
	var wg sync.WaitGroup
	var first atomic.Value
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			u, err := connectUser(url, key, fmt.Sprintf("eu%05d", i))
			if err != nil {
				first.CompareAndSwap(nil, err)
				return
			}
			out[i] = u
		})
	}
	wg.Wait()
	if err, ok := first.Load().(error); ok {
		for _, u := range out {
			if u != nil {
				u.nc.Close()
			}
		}
		return nil, fmt.Errorf("sign in: %w", err)
	}
	return out, nil
}

func connectUser(url string, key ed25519.PrivateKey, id string) (*endUser, error) {
	sig, err := usersig.Mint(key, id, time.Hour, time.Now())
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, nats.Token(sig), nats.CustomInboxPrefix(contract.InboxPrefix(id)), nats.Name("bench-"+id), nats.MaxReconnects(-1),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})) // a flooding user's refusals are expected
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	return &endUser{id: id, nc: nc}, nil
}

// paced has every user increase its room's likes once per endUserPace
// for warmup and then dur, one call in flight per user, and measures the
// calls that complete within dur.
func paced(users []*endUser, warmup, dur time.Duration, server int) result {
	rec := &recorder{}
	start := time.Now()
	measureFrom, end := start.Add(warmup), start.Add(warmup+dur)
	var wg sync.WaitGroup
	for i, u := range users {
		subject := "tally.v1.user." + u.id + ".increase"
		body := []byte(fmt.Sprintf(`{"groupID":"room-%d","key":"likes","value":1}`, i%endUserRooms))
		wg.Go(func() {
			// Users start spread over one pace, not all at once.
			next := start.Add(endUserPace * time.Duration(i) / time.Duration(len(users)))
			var lat []time.Duration
			for {
				time.Sleep(time.Until(next)) // the pace of the load, not synchronisation
				t := time.Now()
				if t.After(end) {
					break
				}
				// The next call waits a whole pace after this one, even
				// when this one is late: a user never makes 21 calls in 5 s.
				if t.After(next) {
					next = t
				}
				next = next.Add(endUserPace)
				err := endUserCall(u.nc, subject, body)
				done := time.Now()
				if done.Before(measureFrom) || done.After(end) {
					continue
				}
				if err != nil {
					rec.fail(err)
					continue
				}
				lat = append(lat, done.Sub(t))
			}
			rec.mu.Lock()
			rec.latencies = append(rec.latencies, lat...)
			rec.mu.Unlock()
		})
	}
	cpu, self, peak := window([]int{server}, measureFrom, end)
	wg.Wait()
	return rec.result(dur, cpu[0], self, peak)
}

func endUserCall(nc *nats.Conn, subject string, body []byte) error {
	return outcome(nc.Request(subject, body, reqTimout))
}

// startUserFlood has one user, mallory, flood the node over WebSocket:
// as many connections as a user may hold, each sending increases as fast
// as it can without waiting for replies, and a loop that signs in and out
// again and again. It runs until stopped.
func startUserFlood(url string, key ed25519.PrivateKey) (func(), error) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	stop := func() { close(done); wg.Wait() }
	body := []byte(`{"groupID":"room-0","key":"likes","value":1}`)
	for i := 0; ; i++ {
		u, err := connectUser(url, key, "mallory")
		if err != nil {
			if i == 0 {
				stop()
				return nil, err
			}
			break // the node refuses more of mallory's connections
		}
		wg.Go(func() {
			defer u.nc.Close()
			inbox := contract.InboxPrefix("mallory") + "." + nats.NewInbox()
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := u.nc.PublishRequest("tally.v1.user.mallory.increase", inbox, body); err != nil {
					time.Sleep(time.Millisecond) // cut or reconnecting; not synchronisation
				}
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if u, err := connectUser(url, key, "mallory"); err == nil {
				u.nc.Close()
			}
		}
	})
	return stop, nil
}

// medianEndUserRows gives, for each scenario, the round with the median
// end users' calls/s (the back end's when there are none).
func medianEndUserRows(rounds [][]endUserRow) []endUserRow {
	if len(rounds) == 0 {
		return nil
	}
	var out []endUserRow
	for i := range rounds[0] {
		var same []endUserRow
		for _, r := range rounds {
			same = append(same, r[i])
		}
		slices.SortFunc(same, func(a, b endUserRow) int {
			return cmp.Or(cmp.Compare(a.EndUsers.OpsPerS, b.EndUsers.OpsPerS), cmp.Compare(a.BackEnd.OpsPerS, b.BackEnd.OpsPerS))
		})
		out = append(out, same[len(same)/2])
	}
	return out
}
