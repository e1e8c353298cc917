package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/cluster"
	"github.com/tallyhq/tally/messages"
	"github.com/tallyhq/tally/node/nodetest"
)

// clusterSetup is one way of running tally for the cluster measurement.
type clusterSetup struct {
	name     string
	nodes    int
	replicas int
	spread   bool // connections spread over the nodes, else all on the first
}

var clusterSetups = []clusterSetup{
	{"1 node", 1, 1, false},
	{"3 nodes, clients on one", 3, 3, false},
	{"3 nodes, clients on all", 3, 3, true},
	{"3 nodes R1, clients on all", 3, 1, true},
}

// cluster measures w1 and w2 on three nodes of one embedded cluster, on
// this machine's cores, against one node: with every connection on one
// node (two calls in three are forwarded to another node, and another
// hop for the user's rate limit), with the connections spread over the
// three, and with the journal on one replica instead of three. Setups
// alternate over -rounds rounds; it prints each one's median. The CPU
// column is the first node's only.
func (b *bench) cluster(ctx context.Context, rounds int, w io.Writer) error {
	type key struct{ setup, workload string }
	samples := map[key][]result{}
	for round := range rounds {
		order := clusterSetups
		if round%2 == 1 {
			order = reversed(clusterSetups)
		}
		for _, s := range order {
			for _, wl := range []string{"w1", "w2"} {
				if !b.o.wants(wl) {
					continue
				}
				b.logf("cluster %s %s round %d ...", s.name, wl, round+1)
				r, err := b.clusterOnce(s, wl)
				if err != nil {
					return fmt.Errorf("%s %s: %w", s.name, wl, err)
				}
				samples[key{s.name, wl}] = append(samples[key{s.name, wl}], r)
			}
		}
	}
	fmt.Fprintf(w, "tally on one and on three nodes of one cluster, --sync=interval, all on this machine's cores; median of %d rounds, %d connections with one request in flight each\n\n", rounds, b.o.workers)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "setup\tworkload\tops/s\tratio to 1 node\tp50 ms\tp99 ms\t")
	for _, wl := range []string{"w1", "w2"} {
		one := samples[key{clusterSetups[0].name, wl}]
		if len(one) == 0 {
			continue
		}
		base := medianBy(one, func(r result) float64 { return r.OpsPerS })
		for _, s := range clusterSetups {
			rs := samples[key{s.name, wl}]
			ops := medianBy(rs, func(r result) float64 { return r.OpsPerS })
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.2fx\t%.2f\t%.2f\t\n", s.name, wl, ops, ops/base,
				medianBy(rs, func(r result) float64 { return r.P50ms }),
				medianBy(rs, func(r result) float64 { return r.P99ms }))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return b.pauses(w, rounds)
}

func reversed[T any](xs []T) []T {
	out := make([]T, len(xs))
	for i, x := range xs {
		out[len(xs)-1-i] = x
	}
	return out
}

func medianBy(rs []result, f func(result) float64) float64 {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	return median(xs)
}

// clusterOnce measures one workload on fresh nodes of a setup.
func (b *bench) clusterOnce(s clusterSetup, workload string) (result, error) {
	nodes, err := b.startCluster(s, false)
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()
	if err != nil {
		return result{}, err
	}
	urls := []string{nodes[0].url}
	if s.spread {
		urls = urls[:0]
		for _, n := range nodes {
			urls = append(urls, n.url)
		}
	}
	c, err := newTallyClientOn(urls, b.o.workers)
	if err != nil {
		return result{}, err
	}
	defer c.close()
	r := runFor(b.o.workers, b.o.warmup, b.o.duration, nodes[0].pid(), c.workload(workload))
	if r.Failed > 0 || r.Refused > 0 {
		return r, fmt.Errorf("%d calls failed and %d were refused", r.Failed, r.Refused)
	}
	return r, nil
}

// startCluster starts a setup's nodes on loopback, a cluster when more
// than one, and waits until all serve; with ops, their servers run
// nodetest.OpsConfig.
func (b *bench) startCluster(s clusterSetup, ops bool) ([]*proc, error) {
	dir := b.dir("cluster")
	var routes []string
	for range s.nodes {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		routes = append(routes, "127.0.0.1:"+strconv.Itoa(port))
	}
	type started struct {
		p   *proc
		err error
	}
	ch := make([]chan started, s.nodes)
	for i := range s.nodes {
		args := []string{"--name", fmt.Sprintf("n%d", i+1), "--data", filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			"--sync", "interval", "--passivate-after", "1h", "--log-level", "warn"}
		if ops {
			port, err := freePort()
			if err != nil {
				return nil, err
			}
			conf := filepath.Join(dir, fmt.Sprintf("n%d.conf", i+1))
			if err := os.WriteFile(conf, []byte(fmt.Sprintf("listen: 127.0.0.1:%d\n%s", port, nodetest.OpsConfig)), 0o600); err != nil {
				return nil, err
			}
			args = append(args, "--nats-config", conf)
		} else {
			args = append(args, "--listen", "127.0.0.1:0")
		}
		if s.nodes > 1 {
			args = append(args, "--cluster", routes[i], "--routes", strings.Join(routes, ","), "--replicas", strconv.Itoa(s.replicas))
		}
		ch[i] = make(chan started, 1)
		go func() {
			p, err := startServing(fmt.Sprintf("tally-n%d", i+1), exec.Command(b.tallyBin, args...), "tally: serving on ")
			ch[i] <- started{p, err}
		}()
	}
	var nodes []*proc
	var errs []error
	for i := range ch {
		st := <-ch[i]
		if st.err != nil {
			errs = append(errs, st.err)
			continue
		}
		nodes = append(nodes, st.p)
	}
	return nodes, errors.Join(errs...)
}

// pauses measures, on fresh three-node clusters under increments of one
// group from clients on every node, the longest time without an
// acknowledged write after a SIGKILL of the journal stream's leader, and
// after one of the group's owner.
func (b *bench) pauses(w io.Writer, rounds int) error {
	fmt.Fprintf(w, "\nlongest time without an acknowledged write after a SIGKILL, three nodes, %d workers writing one group through all three\n\n", b.o.workers)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "killed\tround\tnode\tthat was also\tpause s\t")
	for round := range rounds {
		for _, target := range []string{"journal leader", "group owner"} {
			b.logf("pause after a SIGKILL of the %s, round %d ...", target, round+1)
			killed, also, pause, err := b.pauseOnce(target)
			if err != nil {
				return fmt.Errorf("pause after a SIGKILL of the %s: %w", target, err)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.2f\t\n", target, round+1, killed, also, pause.Seconds())
		}
	}
	return tw.Flush()
}

// pauseGroup is the group the pause measurement writes.
const pauseGroup = "pause-hot"

// pauseOnce starts a cluster, writes pauseGroup from every node, kills the
// target with SIGKILL and returns it, whether it was the other target as
// well, and the longest time without an acknowledged write from the kill
// until writes flowed for 2 s.
func (b *bench) pauseOnce(target string) (killed, also string, pause time.Duration, err error) {
	nodes, err := b.startCluster(clusterSetup{nodes: 3, replicas: 3}, true)
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()
	if err != nil {
		return "", "", 0, err
	}
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.url)
	}
	var mu sync.Mutex
	var acks []time.Time
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range b.o.workers {
		var list []string
		for j := range urls {
			list = append(list, urls[(w+j)%len(urls)])
		}
		nc, err := nats.Connect(strings.Join(list, ","), nats.DontRandomize(), nats.MaxReconnects(-1),
			nats.ReconnectWait(50*time.Millisecond), nats.PingInterval(time.Second), nats.MaxPingsOutstanding(2))
		if err != nil {
			close(stop)
			wg.Wait()
			return "", "", 0, err
		}
		defer nc.Close()
		wg.Go(func() {
			data := []byte(`{"groupID":"` + pauseGroup + `","key":"n","value":1}`)
			for {
				select {
				case <-stop:
					return
				default:
				}
				m, err := nc.Request("tally.v1.admin.increase", data, time.Second)
				if err == nil && m.Header.Get("Nats-Service-Error-Code") == "" {
					mu.Lock()
					acks = append(acks, time.Now())
					mu.Unlock()
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	acked := func() int { mu.Lock(); defer mu.Unlock(); return len(acks) }
	for deadline := time.Now().Add(30 * time.Second); acked() < 1000; {
		if time.Now().After(deadline) {
			return "", "", 0, errors.New("no writes acknowledged")
		}
		time.Sleep(10 * time.Millisecond) // waiting for the load to flow
	}
	leader, owner, err := roles(nodes[0].url)
	if err != nil {
		return "", "", 0, err
	}
	killed, also = leader, "group owner"
	if target == "group owner" {
		killed, also = owner, "journal leader"
	}
	if leader != owner {
		also = ""
	}
	var victim *proc
	for i, n := range nodes {
		if fmt.Sprintf("n%d", i+1) == killed {
			victim = n
		}
	}
	if victim == nil {
		return "", "", 0, fmt.Errorf("no node named %q", killed)
	}
	at := time.Now()
	victim.cmd.Process.Signal(syscall.SIGKILL)
	<-victim.done
	// Until writes have come back: the calls in flight at the kill are
	// answered at once, so wait for many more (at most 30 s).
	for deadline := at.Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		after := 0
		for i := len(acks) - 1; i >= 0 && acks[i].After(at); i-- {
			after++
		}
		mu.Unlock()
		if after >= 20*b.o.workers {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	last := at
	for _, a := range acks {
		if a.After(at) {
			pause, last = max(pause, a.Sub(last)), a
		}
	}
	return killed, also, pause, nil
}

// roles reads, as the operator user, which node leads the journal's
// stream and which holds pauseGroup's partition.
func roles(url string) (leader, owner string, err error) {
	nc, err := nats.Connect(url, nats.UserInfo("ops", "ops"))
	if err != nil {
		return "", "", err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "TALLY_JOURNAL")
	if err != nil {
		return "", "", err
	}
	info, err := st.Info(ctx)
	if err != nil || info.Cluster == nil {
		return "", "", fmt.Errorf("journal stream info: %v", err)
	}
	kv, err := js.KeyValue(ctx, cluster.DefaultConfig().LeasesBucket)
	if err != nil {
		return "", "", err
	}
	e, err := kv.Get(ctx, "p."+strconv.Itoa(cluster.PartitionOf(pauseGroup, cluster.DefaultConfig().Partitions)))
	if err != nil {
		return "", "", fmt.Errorf("lease of %s: %w", pauseGroup, err)
	}
	var l messages.Lease
	if err := proto.Unmarshal(e.Value(), &l); err != nil {
		return "", "", err
	}
	return info.Cluster.Leader, l.GetNode(), nil
}
