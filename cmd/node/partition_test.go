package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/cluster"
	"github.com/tallyhq/tally/journal/journaltest"
)

// proxy forwards TCP connections from its address to a target, until cut;
// heal listens on the same address again.
type proxy struct {
	t      *testing.T
	addr   string
	target string

	mu     sync.Mutex
	cutOff bool // connections are closed as they come
	conns  []net.Conn
}

// newProxy listens on a free address until the test ends: a cut closes
// the connections rather than the listener, so that the address stays
// the proxy's (reopened, another process could have taken it meanwhile).
func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, addr: freeAddr(t), target: target}
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("proxy %s: %v", p.addr, err)
	}
	t.Cleanup(func() {
		l.Close()
		p.cut()
	})
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			cutOff := p.cutOff
			p.mu.Unlock()
			if cutOff {
				in.Close()
				continue
			}
			out, err := net.Dial("tcp", p.target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			if p.cutOff {
				in.Close()
				out.Close()
			} else {
				p.conns = append(p.conns, in, out)
			}
			p.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return p
}

// heal lets connections through again.
func (p *proxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutOff = false
}

// cut closes every connection through the proxy, and those that come
// until it heals.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutOff = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// routeProxies picks n route addresses and makes a proxy per pair and
// direction: proxies[i][j] carries the route server i dials to server j.
func routeProxies(t *testing.T, n int) (routes []string, proxies [][]*proxy) {
	routes = make([]string, n)
	for i := range routes {
		routes[i] = freeAddr(t)
	}
	proxies = make([][]*proxy, n)
	for i := range proxies {
		proxies[i] = make([]*proxy, n)
		for j := range proxies[i] {
			if i != j {
				proxies[i][j] = newProxy(t, routes[j])
			}
		}
	}
	return routes, proxies
}

// startCutCluster starts three nodes whose routes all go through proxies,
// one per pair and direction: proxies[i][j] carries the route node i
// dials to node j.
func startCutCluster(t *testing.T) (*testCluster, [][]*proxy) {
	t.Helper()
	const n = 3
	routes, proxies := routeProxies(t, n)
	c := &testCluster{t: t}
	for i := range n {
		m := &member{name: fmt.Sprintf("n%d", i+1)}
		listen := freeAddr(t)
		m.url = "nats://" + listen
		conf := filepath.Join(t.TempDir(), "nats.conf")
		// A server tells the others its route address, and they dial it
		// when a route drops: advertise one where nothing listens, so that
		// every route goes through a proxy.
		if err := os.WriteFile(conf, []byte("listen: "+listen+"\ncluster { advertise: \"127.0.0.1:9\" }\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var via []string
		for j := range n {
			if i != j {
				via = append(via, proxies[i][j].addr)
			}
		}
		m.args = []string{"--name", m.name, "--data", t.TempDir(), "--nats-config", conf,
			"--cluster", routes[i], "--routes", strings.Join(via, ",")}
		c.members = append(c.members, m)
	}
	c.launchAll()
	return c, proxies
}

// startProxiedServers starts an n-server NATS cluster with JetStream in
// the test whose routes all go through proxies, one per pair and
// direction: proxies[i][j] carries the route server i dials to server j.
func startProxiedServers(t *testing.T, n int) ([]*server.Server, [][]*proxy) {
	t.Helper()
	routes, proxies := routeProxies(t, n)
	var servers []*server.Server
	for i := range n {
		host, port, err := net.SplitHostPort(routes[i])
		if err != nil {
			t.Fatal(err)
		}
		var via []string
		for j := range n {
			if i != j {
				via = append(via, "nats://"+proxies[i][j].addr)
			}
		}
		opts := &server.Options{
			ServerName: fmt.Sprintf("tally-cut-%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			Cluster:    server.ClusterOpts{Name: "tally-cut", Host: host, Advertise: "127.0.0.1:9"},
			Routes:     server.RoutesFromStr(strings.Join(via, ",")),
		}
		if opts.Cluster.Port, err = strconv.Atoi(port); err != nil {
			t.Fatal(err)
		}
		servers = append(servers, journaltest.Start(t, opts))
	}
	return servers, proxies
}

// startCutExternalCluster starts a three-server NATS cluster in the test
// whose routes all go through proxies, as startCutCluster's do, and one
// node on each server with --nats-url that server alone.
func startCutExternalCluster(t *testing.T) (*testCluster, [][]*proxy) {
	t.Helper()
	servers, proxies := startProxiedServers(t, 3)
	c := &testCluster{t: t, external: true}
	for i, s := range servers {
		m := &member{name: fmt.Sprintf("n%d", i+1), url: s.ClientURL()}
		m.args = []string{"--name", m.name, "--nats-url", s.ClientURL(), "--replicas", "3"}
		c.members = append(c.members, m)
	}
	c.ops = servers[0].ClientURL()
	js := journaltest.JetStream(t, journaltest.Connect(t, servers[0]))
	journaltest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err
	})
	c.launchAll()
	return c, proxies
}

// TestCutOffNode cuts one node's routes to the other two: within a lease
// it answers every call with 10002 (it cannot prove it holds any
// partition) and never with a value, while the two others serve every
// group, including those the cut node held; once the cut heals it serves
// again, and every group has the value of the writes acknowledged. The
// same on three nodes of an external NATS cluster, one of whose servers
// is cut off from the other two: the node on it stays connected to it
// alone.
func TestCutOffNode(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { checkCutOffNode(t, startCutCluster) })
	t.Run("external NATS cluster", func(t *testing.T) { checkCutOffNode(t, startCutExternalCluster) })
}

func checkCutOffNode(t *testing.T, start func(*testing.T) (*testCluster, [][]*proxy)) {
	c, proxies := start(t)
	ctx := context.Background()
	// The cut node's client stays on its server; the others' too.
	admin := func(i int) *client.Admin {
		nc, err := nats.Connect(c.members[i].url, nats.MaxReconnects(-1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		a, err := client.NewAdmin(nc, client.WithTimeout(time.Second), client.WithRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	cut, majority := admin(2), []*client.Admin{admin(0), admin(1)}
	var groups []string
	want := map[string]int64{}
	for i := range 12 {
		g := fmt.Sprintf("cut-%d", i)
		groups = append(groups, g)
		if _, err := cut.IncreaseGroupCounter(ctx, g, "k", 1); err != nil {
			t.Fatal(err)
		}
		want[g]++
	}

	for i := range proxies {
		for j := range proxies[i] {
			if (i == 2) != (j == 2) {
				proxies[i][j].cut()
			}
		}
	}
	cutAt := time.Now()
	// The majority takes the cut node's partitions once their leases
	// expire, and serves every group.
	for _, g := range groups {
		journaltest.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
			v, err := majority[0].IncreaseGroupCounter(ctx, g, "k", 1, client.WithRequestID("after-cut-"+g))
			if err != nil {
				return fmt.Errorf("majority: increase %s: %w", g, err)
			}
			want[g] = v
			return nil
		})
	}
	t.Logf("the majority served every group %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	// Past a lease, the cut node answers 10002 or not at all, never with a
	// value: it holds nothing it can prove, and says that it is cut off.
	journaltest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if _, err := cut.GetGroupCounters(ctx, groups[0], "k"); !errors.Is(err, client.ErrInternal) {
			return fmt.Errorf("get through the cut node = %v, want 10002", err)
		}
		return nil
	})
	for _, g := range groups {
		got, err := cut.GetGroupCounters(ctx, g, "k")
		switch {
		case err == nil:
			t.Errorf("the cut node served %s = %d", g, got["k"])
		case errors.Is(err, client.ErrInternal) && !strings.Contains(err.Error(), cluster.ErrCutOff.Error()):
			t.Errorf("the cut node answered %s with %v, want 10002 saying %q", g, err, cluster.ErrCutOff)
		case !errors.Is(err, client.ErrInternal) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout):
			t.Errorf("the cut node answered %s with %v, want 10002", g, err)
		}
		if _, err := cut.IncreaseGroupCounter(ctx, g, "k", 1); err == nil {
			t.Errorf("the cut node acknowledged a write to %s", g)
		}
		v, err := majority[1].GetGroupCounters(ctx, g, "k")
		if err != nil {
			t.Fatalf("majority: get %s: %v", g, err)
		}
		if v["k"] != want[g] {
			t.Errorf("majority: %s = %d, want %d", g, v["k"], want[g])
		}
	}

	for i := range proxies {
		for j := range proxies[i] {
			if (i == 2) != (j == 2) {
				proxies[i][j].heal()
			}
		}
	}
	// Healed, the node serves again, with every acknowledged write.
	for _, g := range groups {
		journaltest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
			got, err := cut.GetGroupCounters(ctx, g, "k")
			if err != nil {
				return fmt.Errorf("get %s through the healed node: %w", g, err)
			}
			if got["k"] != want[g] {
				return fmt.Errorf("the healed node says %s = %d, want %d", g, got["k"], want[g])
			}
			return nil
		})
	}
}
