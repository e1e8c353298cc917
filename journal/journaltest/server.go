// Package journaltest starts real NATS servers with JetStream for tests and
// holds the suite that every journal configuration must pass.
package journaltest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StartServer runs a NATS server with JetStream on a random loopback port,
// storing in a temporary directory, until the test ends.
func StartServer(tb testing.TB) *server.Server {
	tb.Helper()
	return StartServerIn(tb, tb.TempDir())
}

// StartServerIn is StartServer with the store in dir, so a test can restart
// a server on the same data.
func StartServerIn(tb testing.TB, dir string) *server.Server {
	tb.Helper()
	opts := &server.Options{
		ServerName: "tally-test",
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
	}
	return Start(tb, opts)
}

// Start runs a NATS server with opts until the test ends.
func Start(tb testing.TB, opts *server.Options) *server.Server {
	tb.Helper()
	s := start(tb, opts)
	if s == nil {
		tb.Fatalf("NATS server %s not ready", opts.ServerName)
	}
	return s
}

// start runs a NATS server with opts until the test ends, or returns nil
// if it is not ready within 10 s.
func start(tb testing.TB, opts *server.Options) *server.Server {
	tb.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		tb.Fatalf("new NATS server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil
	}
	tb.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// StartCluster runs n clustered JetStream servers on loopback and waits until
// they have elected a meta leader. It returns them in start order. A
// server whose cluster port another process took after ClusterOptions
// found it free never becomes ready (checked with nats-server 2.15.2):
// the cluster then starts again on other ports, up to three times.
func StartCluster(tb testing.TB, n int) []*server.Server {
	tb.Helper()
	for attempt := 1; ; attempt++ {
		servers := make([]*server.Server, 0, n)
		for _, opts := range ClusterOptions(tb, n) {
			s := start(tb, opts)
			if s == nil {
				break
			}
			servers = append(servers, s)
		}
		if len(servers) == n {
			AwaitJetStream(tb, servers[0])
			return servers
		}
		for _, s := range servers {
			s.Shutdown()
			s.WaitForShutdown()
		}
		if attempt == 3 {
			tb.Fatalf("a cluster of %d NATS servers not ready, three times", n)
		}
		tb.Logf("NATS server %d of a cluster not ready (its cluster port taken?): starting the cluster again", len(servers)+1)
	}
}

// ClusterOptions returns the options of n clustered JetStream servers on
// loopback, named tally-test-<i>, each storing in a temporary directory:
// a test that stops one starts it again with Start(tb, opts.Clone()).
func ClusterOptions(tb testing.TB, n int) []*server.Options {
	tb.Helper()
	ports := freePorts(tb, n)
	routes := make([]string, n)
	for i, p := range ports {
		routes[i] = "nats://127.0.0.1:" + strconv.Itoa(p)
	}
	out := make([]*server.Options, n)
	for i := range n {
		out[i] = &server.Options{
			ServerName: fmt.Sprintf("tally-test-%d", i),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   tb.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			Cluster: server.ClusterOpts{
				Name: "tally-test",
				Host: "127.0.0.1",
				Port: ports[i],
			},
			Routes: server.RoutesFromStr(joinRoutes(routes, i)),
		}
	}
	return out
}

// AwaitJetStream waits until JetStream answers on s: on a cluster, once
// it has elected its meta leader.
func AwaitJetStream(tb testing.TB, s *server.Server) {
	tb.Helper()
	js := JetStream(tb, Connect(tb, s))
	CheckFor(tb, 30*time.Second, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err
	})
}

func joinRoutes(routes []string, skip int) string {
	out := ""
	for i, r := range routes {
		if i == skip {
			continue
		}
		if out != "" {
			out += ","
		}
		out += r
	}
	return out
}

func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("free port: %v", err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		defer l.Close()
	}
	return ports
}

// Connect opens a client connection to s, closed when the test ends.
func Connect(tb testing.TB, s *server.Server) *nats.Conn {
	tb.Helper()
	return ConnectURL(tb, s.ClientURL())
}

// ConnectURL opens a client connection to url, closed when the test ends.
func ConnectURL(tb testing.TB, url string) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		tb.Fatalf("connect to %s: %v", url, err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// JetStream returns nc's JetStream context.
func JetStream(tb testing.TB, nc *nats.Conn) jetstream.JetStream {
	tb.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	return js
}

// CheckFor calls f every interval until it returns nil, and fails the test
// with f's last error if that has not happened within timeout.
func CheckFor(tb testing.TB, timeout, interval time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not true after %v: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}
