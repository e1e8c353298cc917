package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal/journaltest"
)

// TestUserCallForwardedAtMostOnce makes 300 calls of 300 users on 300
// groups through the nodes of a cluster, each client on one node, and
// reads how often the nodes forwarded them: the servers deliver a user's
// call straight to the node that holds its user's partition, which
// forwards it only when the group is another node's, so no call is
// forwarded twice, and two calls in three, about, once on three nodes
// (four in five on five). Clients share the nodes' own account, or have
// accounts of a configuration file's. On five servers, each holds three of
// the five shard streams (R3), and each node leads one.
func TestUserCallForwardedAtMostOnce(t *testing.T) {
	t.Run("clients in the node's own account", func(t *testing.T) { testForwardedAtMostOnce(t, 3) })
	t.Run("five nodes", func(t *testing.T) { testForwardedAtMostOnce(t, 5) })
	t.Run("client accounts of a configuration", func(t *testing.T) {
		conf := filepath.Join(t.TempDir(), "accounts.conf")
		if err := os.WriteFile(conf, []byte("accounts { APP: { users: [{user: app, password: app}] } }\nno_auth_user: app\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		testForwardedAtMostOnce(t, 3, "--nats-config", conf)
	})
}

func testForwardedAtMostOnce(t *testing.T, n int, extra ...string) {
	c := startCluster(t, n, false, append([]string{"--http", "127.0.0.1:0"}, extra...)...)
	var addrs []string
	for _, m := range c.members {
		addrs = append(addrs, httpAddrOf(t, m.p))
	}
	// Calls are forwarded more while partitions move: from when every
	// partition is held and every node leads its shard's stream, nothing
	// moves any more.
	journaltest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		owned := 0.0
		for i, a := range addrs {
			f := scrape(t, a)
			n, _ := value(f, "tally_partitions_owned", map[string]string{})
			l, _ := value(f, "tally_shard_leaders_local", map[string]string{})
			if l != 1 {
				return fmt.Errorf("n%d leads %v shard streams, want 1", i+1, l)
			}
			owned += n
		}
		if owned != 64 {
			return fmt.Errorf("%v partitions held, want 64", owned)
		}
		return nil
	})
	forwarded := func() (first, more float64) {
		for _, a := range addrs {
			for _, m := range scrape(t, a)["tally_forwarded_calls_total"].GetMetric() {
				if m.GetLabel()[0].GetValue() == "1" {
					first += m.GetCounter().GetValue()
				} else {
					more += m.GetCounter().GetValue()
				}
			}
		}
		return first, more
	}
	ctx := context.Background()
	var conns []*nats.Conn
	for i := range n {
		conns = append(conns, c.connect(i))
	}
	call := func(i int, user string) {
		t.Helper()
		u, err := client.New(conns[i%n], user)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.IncreaseGroupCounter(ctx, fmt.Sprintf("g%d", i), "k", 1); err != nil {
			t.Fatalf("call %d of %s: %v", i, user, err)
		}
	}
	// A node that handed a partition over stops serving its users'
	// subjects, and the servers learn it over their routes a moment
	// later: until then a call can still reach it and take a second
	// forward. Once a round of calls takes none, nothing moves.
	round := 0
	journaltest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		round++
		_, more0 := forwarded()
		for i := range 3 * n {
			call(i, fmt.Sprintf("settling%d-%d", round, i))
		}
		if _, more := forwarded(); more != more0 {
			return fmt.Errorf("%v of %d calls forwarded more than once", more-more0, 3*n)
		}
		return nil
	})
	first0, more0 := forwarded()
	const calls = 300
	for i := range calls {
		call(i, fmt.Sprintf("user%d", i))
	}
	first, more := forwarded()
	first, more = first-first0, more-more0
	if more != 0 {
		t.Errorf("%v of %d users' calls were forwarded more than once", more, calls)
	}
	// A group is another node's for n-1 calls in n: 200 expected on three
	// nodes, 240 on five; 50 or 35 more or fewer once in about 10^8 runs.
	want := float64(calls * (n - 1) / n)
	if d := 50.0 - 15*float64(n-3)/2; first < want-d || first > want+d {
		t.Errorf("%v of %d users' calls forwarded once, want about %v", first, calls, want)
	}
	// A node waits for its server's replicas of the journal to catch up
	// before it joins, but not for the streams its server holds none of.
	for _, m := range c.members {
		if strings.Contains(m.p.stderr.String(), "before this server's replica of the journal caught up") {
			t.Errorf("%s joined after waiting for a replica of the journal: %s", m.name, m.p.stderr.String())
		}
	}
}

// TestClientWaitsForANode sends a call while no node serves (a NATS server
// without tally, as a cluster is for a moment for a dead node's users):
// the Go client waits for a node rather than failing at once, and the node
// started meanwhile answers it.
func TestClientWaitsForANode(t *testing.T) {
	s := journaltest.StartServer(t)
	nc := journaltest.Connect(t, s)
	if _, err := nc.Request("tally.v1.user.alice.increase", []byte(`{"groupID":"room","key":"k","value":1}`), 5*time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("a call before any node serves: %v, want no responders", err)
	}
	// No retries: waiting for a node is not one.
	alice, err := client.New(nc, "alice", client.WithTimeout(20*time.Second), client.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		v, err := alice.IncreaseGroupCounter(context.Background(), "room", "k", 1)
		if err == nil && v != 1 {
			err = fmt.Errorf("value %d, want 1", v)
		}
		done <- err
	}()
	startProc(t, "--nats-url", s.ClientURL(), "--name", "late")
	if err := <-done; err != nil {
		t.Errorf("a call sent before the node served: %v", err)
	}
}

// TestFirstCallOfANewConnection makes 1,000 new connections spread over
// three nodes each send one call, its first, which is forwarded when
// another node holds its group: the reply of a forwarded call waits until
// its node's server knows of the client's reply inbox, which the client's
// server announces on its own routes, so every call is answered. (Without
// the wait, about one first call in 200 got no reply.)
func TestFirstCallOfANewConnection(t *testing.T) {
	c := startCluster(t, 3, false)
	var wg sync.WaitGroup
	var lost atomic.Int64
	sem := make(chan struct{}, 32)
	for i := range 1000 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			nc, err := nats.Connect(c.members[i%3].url)
			if err != nil {
				t.Error(err)
				return
			}
			defer nc.Close()
			if _, err := nc.Request("tally.v1.admin.set", []byte(fmt.Sprintf(`{"groupID":"first%d","counters":{"k":1}}`, i)), 3*time.Second); err != nil {
				lost.Add(1)
			}
		})
	}
	wg.Wait()
	if n := lost.Load(); n > 0 {
		t.Errorf("%d of 1,000 new connections got no reply to their first call", n)
	}
}
