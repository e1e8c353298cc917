package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/node"
	"github.com/tallyhq/tally/node/nodetest"
)

// member is one node of a test cluster; its flags stay the same across
// restarts.
type member struct {
	name string
	env  []string // added to the test's environment
	args []string
	url  string // the embedded server's client URL
	p    *proc
}

type testCluster struct {
	t        *testing.T
	members  []*member
	ops      string        // a config file's operator user in TALLY, or ""
	client   []nats.Option // how clients authenticate, if they must
	external bool          // nodes on a NATS cluster of the test's, not embedded
}

// startCluster starts n nodes on 127.0.0.1 that form one cluster, and
// waits until every one serves. With ops, the embedded servers run
// nodetest.OpsConfig, so that the test can read the journal as ops.
func startCluster(t *testing.T, n int, ops bool, extra ...string) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	routes := make([]string, n)
	for i := range routes {
		routes[i] = freeAddr(t)
	}
	for i := range n {
		m := &member{name: fmt.Sprintf("n%d", i+1)}
		listen := freeAddr(t)
		m.url = "nats://" + listen
		m.args = []string{"--name", m.name, "--data", t.TempDir(), "--cluster", routes[i], "--routes", strings.Join(routes, ",")}
		if ops {
			conf := filepath.Join(t.TempDir(), "nats.conf")
			if err := os.WriteFile(conf, []byte("listen: "+listen+"\n"+nodetest.OpsConfig), 0o600); err != nil {
				t.Fatal(err)
			}
			m.args = append(m.args, "--nats-config", conf)
			c.ops = "nats://ops:ops@" + listen
		} else {
			m.args = append(m.args, "--listen", listen)
		}
		m.args = append(m.args, extra...)
		c.members = append(c.members, m)
	}
	c.launchAll()
	return c
}

// launchAll starts every member at once (each waits for the others'
// JetStream) and waits until all serve.
func (c *testCluster) launchAll() {
	c.t.Helper()
	for _, m := range c.members {
		m.p = launchEnv(c.t, m.env, m.args...)
	}
	for _, m := range c.members {
		m.p.serving(c.t)
	}
}

// restart starts a stopped member again on its data directory.
func (c *testCluster) restart(m *member) {
	c.t.Helper()
	m.p = launchEnv(c.t, m.env, m.args...)
	m.p.serving(c.t)
}

// connect connects a client to member i, with the others to fail over to;
// it notices within 2 s that its server stopped answering.
func (c *testCluster) connect(i int) *nats.Conn {
	c.t.Helper()
	return c.connectWith(i, nats.PingInterval(time.Second), nats.MaxPingsOutstanding(2))
}

func (c *testCluster) connectWith(i int, opts ...nats.Option) *nats.Conn {
	c.t.Helper()
	var urls []string
	for j := range c.members {
		urls = append(urls, c.members[(i+j)%len(c.members)].url)
	}
	opts = append([]nats.Option{nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, append(c.client, opts...)...)
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// TestClusterServesFromEveryNode writes through one node and reads through
// the others: every get sees the write acknowledged just before, every
// node's subscribers get its update, and one user's rate limit holds
// across the nodes. Clients either share the account the nodes serve from
// (no configuration file), or have accounts of their own that import the
// service, whose replies then cross accounts and servers.
func TestClusterServesFromEveryNode(t *testing.T) {
	t.Run("clients in the node's own account", func(t *testing.T) { testServesFromEveryNode(t, false) })
	t.Run("client accounts importing the service", func(t *testing.T) { testServesFromEveryNode(t, true) })
}

func testServesFromEveryNode(t *testing.T, imports bool) {
	c := startCluster(t, 3, imports)
	// The calls the nodes forward travel in their own account: a client
	// that listens for them hears none.
	spy := c.connect(1)
	seen, err := spy.SubscribeSync("tally.internal.>")
	if err != nil {
		t.Fatal(err)
	}
	checkServesFromEveryNode(t, c)
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	if m, err := seen.NextMsg(0); err == nil {
		t.Errorf("a client read a forwarded call on %s", m.Subject)
	}
	// The file of the imports defines TALLY without the servers' mapping of
	// users' calls: the nodes that took them say so, once; without a file,
	// the nodes map them.
	unmapped := 0
	for _, m := range c.members {
		unmapped += strings.Count(m.p.stderr.String(), "without the servers' mapping")
	}
	switch {
	case imports && (unmapped < 1 || unmapped > len(c.members)):
		t.Errorf("%d nodes logged that users' calls arrive unmapped, want 1 to %d", unmapped, len(c.members))
	case !imports && unmapped > 0:
		t.Errorf("%d nodes logged that users' calls arrive unmapped, want none", unmapped)
	}
}

// TestExternalClusterServesFromEveryNode is the same on three nodes that
// use an existing three-server NATS cluster.
func TestExternalClusterServesFromEveryNode(t *testing.T) {
	checkServesFromEveryNode(t, startExternalCluster(t))
}

// startExternalCluster starts a three-server NATS cluster in the test and
// one node process on each server with --nats-url.
func startExternalCluster(t *testing.T) *testCluster {
	t.Helper()
	c := &testCluster{t: t, external: true}
	for i, s := range journaltest.StartCluster(t, 3) {
		c.ops = s.ClientURL() // the servers' one account holds the journal
		m := &member{name: fmt.Sprintf("n%d", i+1), url: s.ClientURL()}
		m.args = []string{"--name", m.name, "--nats-url", s.ClientURL()}
		c.members = append(c.members, m)
	}
	c.launchAll()
	return c
}

func checkServesFromEveryNode(t *testing.T, c *testCluster) {
	ctx := context.Background()
	var admins []*client.Admin
	for i := range c.members {
		a, err := client.NewAdmin(c.connect(i))
		if err != nil {
			t.Fatal(err)
		}
		admins = append(admins, a)
	}
	watcher, err := client.New(c.connect(2), "watcher")
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan client.Update, 1000)
	unsubscribe, err := watcher.OnGroupCounterUpdated("watched", func(u client.Update) { seen <- u })
	if err != nil {
		t.Fatal(err)
	}
	defer unsubscribe()

	for i := range 60 {
		group := fmt.Sprintf("g%d", i)
		w := admins[i%3]
		if _, err := w.SetGroupCounters(ctx, group, map[string]int64{"k": int64(i * 7)}); err != nil {
			t.Fatal(err)
		}
		v, err := w.IncreaseGroupCounter(ctx, group, "k", 1)
		if err != nil {
			t.Fatal(err)
		}
		for j := 1; j <= 2; j++ {
			got, err := admins[(i+j)%3].GetGroupCounters(ctx, group, "k")
			if err != nil {
				t.Fatal(err)
			}
			if got["k"] != v {
				t.Errorf("%s: a get through n%d right after a write acknowledged through n%d = %d, want %d", group, (i+j)%3+1, i%3+1, got["k"], v)
			}
		}
	}

	if _, err := admins[0].IncreaseGroupCounter(ctx, "watched", "k", 5); err != nil {
		t.Fatal(err)
	}
	select {
	case u := <-seen:
		if u.GroupID != "watched" || u.Key != "k" || u.Value != 5 {
			t.Errorf("update through n3 of a write through n1 = %+v", u)
		}
	case <-time.After(5 * time.Second):
		t.Error("no update reached a subscriber on n3 within 5 s")
	}

	// One user's 30 writes through the three nodes: its limit is one
	// window of 20 across the cluster.
	var users []*client.Client
	for i := range c.members {
		u, err := client.New(c.connect(i), "flood", client.WithRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	start := time.Now()
	ok, limited := 0, 0
	var passed []string
	for i := range 30 {
		_, err := users[i%3].IncreaseGroupCounter(ctx, fmt.Sprintf("limited%d", i), "k", 1)
		switch {
		case err == nil:
			ok++
			passed = append(passed, fmt.Sprintf("limited%d", i))
		case errors.Is(err, client.ErrRateLimited):
			limited++
		default:
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if took := time.Since(start); took >= 5*time.Second {
		t.Fatalf("30 writes took %v: they must fall within one 5 s window", took)
	}
	if ok != 20 || limited != 10 {
		t.Errorf("30 writes of one user through 3 nodes: %d passed, %d refused with 2996; want 20 and 10", ok, limited)
	}
	// Every node answers the history, which names the user of a write
	// forwarded between nodes. A node reads it on its server's replica of
	// the journal; right after a shard stream's leader moved, making its
	// consumer can take a second try, so the wait is the history's own
	// bound on a read (10 s) and some. A read the stream's leader left
	// unanswered for that long (an election as the cluster starts) is
	// answered 10002, which a client retries.
	for i := range c.members {
		for _, g := range passed[:3] {
			var m *nats.Msg
			for attempt := 1; ; attempt++ {
				var err error
				m, err = c.connect(i).Request("tally.v1.admin.history", []byte(`{"groupID":"`+g+`"}`), 15*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if m.Header.Get("Nats-Service-Error-Code") != "10002" || attempt == 3 {
					break
				}
				t.Logf("history of %s through n%d, attempt %d: %s", g, i+1, attempt, m.Data)
			}
			var h struct {
				Entries []struct{ User, Op string } `json:"entries"`
			}
			if err := json.Unmarshal(m.Data, &h); err != nil || len(h.Entries) != 1 || h.Entries[0].User != "flood" || h.Entries[0].Op != "increase" {
				t.Errorf("history of %s through n%d: %s (%v), want one increase by flood", g, i+1, m.Data, err)
			}
		}
	}
}

// load runs one writer per node: each increments a group under request
// IDs, retrying each write with its ID until it is answered, and records
// when each write was acknowledged.
type load struct {
	t     *testing.T
	stop  chan struct{}
	wg    sync.WaitGroup
	acked atomic.Int64

	mu   sync.Mutex
	acks []time.Time
}

func startLoad(t *testing.T, c *testCluster, group string) *load {
	l := &load{t: t, stop: make(chan struct{})}
	for i := range c.members {
		w, err := client.NewAdmin(c.connect(i), client.WithTimeout(time.Second), client.WithRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		l.wg.Go(func() {
			for seq := 0; ; seq++ {
				select {
				case <-l.stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", i, seq)
				for attempt := 0; ; attempt++ {
					_, err := w.IncreaseGroupCounter(context.Background(), group, "n", 1, client.WithRequestID(id))
					if err == nil {
						l.acked.Add(1)
						l.mu.Lock()
						l.acks = append(l.acks, time.Now())
						l.mu.Unlock()
						break
					}
					if errors.Is(err, client.ErrInvalidParameter) || attempt > 600 {
						t.Errorf("write %s: %v", id, err)
						return
					}
					time.Sleep(20 * time.Millisecond) // a client's back-off
				}
			}
		})
	}
	return l
}

// halt stops the writers once each has its last write answered.
func (l *load) halt() {
	close(l.stop)
	l.wg.Wait()
}

// longestGap is the longest time between acknowledgements within
// [from, to], counting from from and up to to.
func (l *load) longestGap(from, to time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	longest, last := time.Duration(0), from
	for _, a := range l.acks {
		if a.Before(from) || a.After(to) {
			continue
		}
		longest, last = max(longest, a.Sub(last)), a
	}
	return max(longest, to.Sub(last))
}

// awaitAcks waits until the writers have n more acknowledgements.
func (l *load) awaitAcks(n int64, within time.Duration) {
	l.t.Helper()
	want := l.acked.Load() + n
	journaltest.CheckFor(l.t, within, 10*time.Millisecond, func() error {
		if got := l.acked.Load(); got < want {
			return fmt.Errorf("%d writes acknowledged, want %d", got, want)
		}
		return nil
	})
}

// checkValue reads group's counter n through every node: each must say
// exactly the number of acknowledged increments.
func checkValue(t *testing.T, c *testCluster, group string, want int64) {
	t.Helper()
	for i := range c.members {
		a, err := client.NewAdmin(c.connect(i))
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.GetGroupCounters(context.Background(), group, "n")
		if err != nil {
			t.Fatalf("get through n%d: %v", i+1, err)
		}
		if got["n"] != want {
			t.Errorf("through n%d %s n = %d, want %d acknowledged increments (none lost, none twice)", i+1, group, got["n"], want)
		}
	}
}

// checkChain rebuilds every group from the journal, which fails when an
// event does not follow its group's previous one: two writers interleaved.
func checkChain(t *testing.T, c *testCluster, group string, want int64) {
	t.Helper()
	cfg := journal.DefaultConfig()
	cfg.Replicas, cfg.KeepPerGroup = len(c.members), node.DefaultConfig().JournalKeep
	if got := rebuildWith(t, journaltest.ConnectURL(t, c.ops), cfg)[group]; got != want {
		t.Errorf("the journal rebuilds %s n = %d, want %d", group, got, want)
	}
}

// rolesOf reads which node leads the journal's stream of group and which
// owns group's partition, through the operator connection, once the
// partition is with the node the cluster picks among all the members
// (after a restart it may still be on its way back) and, with a journal
// of shards, the stream's leader is that node's server.
func rolesOf(t *testing.T, c *testCluster, group string) (leader, owner string) {
	t.Helper()
	nc := journaltest.ConnectURL(t, c.ops)
	defer nc.Close()
	var names []string
	for _, m := range c.members {
		names = append(names, m.name)
	}
	journaltest.CheckFor(t, resumeWithin, 50*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		want, server, err := nodetest.Owner(ctx, nc, group, names)
		if err != nil {
			return err
		}
		if leader, owner, err = nodetest.Roles(ctx, nc, group); err != nil {
			return err
		}
		if owner != want {
			return fmt.Errorf("%s's partition is held by %q, not yet by %s", group, owner, want)
		}
		if server != "" && leader != server {
			return fmt.Errorf("%s's journal stream is led by %s, not yet by its owner's server %s", group, leader, server)
		}
		return nil
	})
	return leader, owner
}

// resumeWithin bounds how long a fault test waits for writes to come back:
// far beyond the targets (10 s after a SIGKILL, 2 s for each step of a
// rolling restart), which `make bench -cluster` measures; here it only
// tells a cluster that stopped writing from one that is slow.
const resumeWithin = 30 * time.Second

// TestClusterSurvivesKill kills each node in turn with SIGKILL under a
// steady load of retried increments on one group from clients on every
// node, and starts it again. Killing every node in turn kills the
// journal's stream leader and the group's owner at some point (each moves
// only when its node dies); the test checks that it did. Writes resume
// after each kill, and the group ends at exactly the number of increments
// acknowledged, read through every node, with an intact chain.
func TestClusterSurvivesKill(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { checkSurvivesKill(t, startCluster(t, 3, true)) })
	t.Run("external NATS cluster", func(t *testing.T) { checkSurvivesKill(t, startExternalCluster(t)) })
}

func checkSurvivesKill(t *testing.T, c *testCluster) {
	l := startLoad(t, c, "hot")
	l.awaitAcks(30, resumeWithin)
	// On an external cluster the journal's leader is a server, which
	// killing a node does not stop.
	killedLeader, killedOwner := c.external, false
	for _, m := range c.members {
		leader, owner := rolesOf(t, c, "hot")
		killedLeader = killedLeader || leader == m.name
		killedOwner = killedOwner || owner == m.name
		killed := time.Now()
		if err := m.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-m.p.done
		l.awaitAcks(30, resumeWithin)
		t.Logf("SIGKILL of %s (journal leader %s, owner of hot %s): longest time without a write %v",
			m.name, leader, owner, l.longestGap(killed, time.Now()).Round(time.Millisecond))
		c.restart(m)
		l.awaitAcks(10, resumeWithin)
	}
	l.halt()
	if !killedLeader || !killedOwner {
		t.Errorf("killed the journal's leader: %v, the group's owner: %v; want both", killedLeader, killedOwner)
	}
	checkValue(t, c, "hot", l.acked.Load())
	checkChain(t, c, "hot", l.acked.Load())
}

// TestClusterRollingRestart stops each node in turn with SIGTERM and
// starts it again, under load: each node exits 0, having handed its
// partitions over, writes carry on, and the group ends at exactly the
// number of increments acknowledged.
func TestClusterRollingRestart(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { checkRollingRestart(t, startCluster(t, 3, true)) })
	t.Run("external NATS cluster", func(t *testing.T) { checkRollingRestart(t, startExternalCluster(t)) })
}

func checkRollingRestart(t *testing.T, c *testCluster) {
	l := startLoad(t, c, "hot")
	l.awaitAcks(30, resumeWithin)
	for _, m := range c.members {
		from := time.Now()
		if err := m.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := m.p.wait(t); code != 0 {
			t.Errorf("%s exited %d after SIGTERM", m.name, code)
		}
		c.restart(m)
		l.awaitAcks(30, resumeWithin)
		t.Logf("SIGTERM and restart of %s: longest time without a write %v", m.name, l.longestGap(from, time.Now()).Round(time.Millisecond))
	}
	l.halt()
	checkValue(t, c, "hot", l.acked.Load())
	checkChain(t, c, "hot", l.acked.Load())
}
