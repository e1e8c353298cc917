package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/cluster"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/node/nodetest"
)

// clusterSetup is one way of running tally, or its ceiling, for the
// cluster measurement.
type clusterSetup struct {
	name string
	// system is "" for tally, or a ceiling: natsecho's journal
	// (ceilingSystem) or atomic journal (atomicCeiling) on as many
	// servers, each a shard stream of the same replicas.
	system   string
	nodes    int
	replicas int
	spread   bool // connections spread over the nodes, else all on the first
	// target, when set, is the most the busiest node's CPU per call on w1
	// may be, over one node's, for the cluster to scale out.
	target float64
	// more: a setup that explains rather than predicts, run with
	// -cluster-all only.
	more bool
}

// ceilingSystem is the cluster's ceiling: a service that journals each
// call on a sharded JetStream of the same replicas and nothing else;
// atomicCeiling gathers each shard's calls into atomic batches.
const (
	ceilingSystem = "nats-echo-journal"
	atomicCeiling = "nats-echo-atomic-journal"
)

// clusterSetups: the first of each system is the one that system's others
// are compared with. A new journal on N servers has N shard streams, each
// led by the node that holds its shard's partitions; the ceiling's the
// same, each led by the server of its index.
var clusterSetups = []clusterSetup{
	{name: "1 node", nodes: 1, replicas: 1},
	{name: "3 nodes sharded, clients on all", nodes: 3, replicas: 3, spread: true, target: 0.75},
	{name: "5 nodes sharded, clients on all", nodes: 5, replicas: 3, spread: true, target: 0.5},
	{name: "ceiling, 1 server", system: ceilingSystem, nodes: 1, replicas: 1},
	{name: "ceiling, 3 servers sharded, clients on all", system: ceilingSystem, nodes: 3, replicas: 3, spread: true},
	{name: "ceiling, 5 servers sharded, clients on all", system: ceilingSystem, nodes: 5, replicas: 3, spread: true},
	// What gathering each shard's appends into atomic batches would save
	// (on one server, nats-server stages a batch in a file store of its
	// own; on three, in memory).
	{name: "atomic ceiling, 1 server", system: atomicCeiling, nodes: 1, replicas: 1, more: true},
	{name: "atomic ceiling, 3 servers sharded, clients on all", system: atomicCeiling, nodes: 3, replicas: 3, spread: true, more: true},
	{name: "3 nodes sharded, clients on one", nodes: 3, replicas: 3, more: true},
	// Streams of one replica stay on the server JetStream placed them on
	// (one server for all three, in the runs so far): the nodes cannot
	// move their leaders.
	{name: "3 nodes R1, clients on all", nodes: 3, replicas: 1, spread: true, more: true},
}

// cluster measures w1 and w2 on one node and on clusters of three and
// five on this machine's cores, with the connections spread over the
// nodes, and the same of the ceiling, natsecho's journal (each call
// appended to its group's shard stream, R3, and nothing else): how far
// the servers' own work lets the busiest one's CPU per call fall as they
// are added; with -cluster-all, on three nodes with every connection on one
// node too (two calls in three are forwarded to another node, and
// another hop for the user's rate limit), and with the journal on one
// replica instead of three. Setups alternate over -rounds rounds, each
// measurement on fresh nodes; it prints
// each one's median, the nodes' CPU summed and the busiest node's, per
// call, and the busiest node's over one node's, the median of the rounds'
// ratios: what predicts how far adding nodes carries the load. Then, with
// the extras, the cost of a forwarded call and the write pauses of faults.
func (b *bench) cluster(ctx context.Context, rounds int, w io.Writer) error {
	var setups []clusterSetup
	for _, s := range clusterSetups {
		if (!s.more || b.o.clusterAll) && strings.Contains(s.name, b.o.clusterOnly) {
			setups = append(setups, s)
		}
	}
	if len(setups) == 0 {
		return fmt.Errorf("-cluster-only %q: no setup's name contains it", b.o.clusterOnly)
	}
	samples := map[clusterKey][]clusterSample{}
	leaders := map[string][]int{} // each setup's, as its first measurement started
	err := alternating(rounds, setups, b.o.wants, func(round int, s clusterSetup, wl string) error {
		b.logf("cluster %s %s round %d ...", s.name, wl, round+1)
		r, counts, err := b.clusterOnce(s, wl, round == 0)
		if err != nil {
			return fmt.Errorf("%s %s: %w", s.name, wl, err)
		}
		k := clusterKey{s.name, wl}
		samples[k] = append(samples[k], clusterSample{round, r})
		if _, ok := leaders[s.name]; !ok && counts != nil {
			leaders[s.name] = counts
		}
		return nil
	})
	if err != nil {
		return err
	}
	load := "as fast as each setup answers; CPU as measured"
	if b.o.clusterRate > 0 {
		load = fmt.Sprintf("%.0f calls/s in every setup; CPU net of what the nodes spend idle, measured before", b.o.clusterRate)
	}
	fmt.Fprintf(w, "tally on one, three and five nodes of one cluster, --sync=interval, and its ceiling (natsecho's journal on as many servers, sharded the same way), all on this machine's cores; median of %d rounds, %d connections with one request in flight each, %s; ratios to 1 node: the median of the rounds' ratios, each to the one node (one server) of the same system and round; CPU of the nodes' processes (their embedded servers included)\n\n", rounds, b.o.workers, load)
	rows := clusterRows(setups, samples)
	if err := printClusterTable(w, rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	printAcceptance(w, setups, rows)
	if len(leaders) > 0 {
		fmt.Fprintf(w, "\njournal shard streams each node led as each setup's first measurement started:\n")
		for _, s := range setups {
			if counts, ok := leaders[s.name]; ok {
				fmt.Fprintf(w, "  %s: %s\n", s.name, leaderLine(counts))
			}
		}
	}
	if !b.o.wants("extras") {
		return nil
	}
	if err := b.forwardCost(w, rounds); err != nil {
		return fmt.Errorf("cost of a forwarded call: %w", err)
	}
	return b.pauses(w, rounds)
}

// alternating calls fn on each of items with w1 and w2 (those wanted),
// over rounds, the odd rounds in reverse order.
func alternating[T any](rounds int, items []T, wants func(string) bool, fn func(round int, item T, workload string) error) error {
	for round := range rounds {
		order := items
		if round%2 == 1 {
			order = reversed(items)
		}
		for _, it := range order {
			for _, wl := range []string{"w1", "w2"} {
				if !wants(wl) {
					continue
				}
				if err := fn(round, it, wl); err != nil {
					return err
				}
			}
		}
	}
	return nil
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

// clusterOnce measures one workload on fresh nodes of a setup, started
// as by default (no configuration file), once the partitions' holders
// settled and, with several nodes, every shard stream has a leader (with
// replicas, one on each node), and the workload's groups are active; it
// returns how many shard leaders each node held then. With profile (and
// -profile), it profiles every node.
func (b *bench) clusterOnce(s clusterSetup, workload string, profile bool) (result, []int, error) {
	start := b.startCluster
	if s.system != "" {
		start, profile = b.startEchoCluster, false
	}
	nodes, err := start(s, false)
	defer stopAll(nodes)
	if err != nil {
		return result{}, nil, err
	}
	var leaders []int
	if s.nodes > 1 && s.system == "" {
		if leaders, err = awaitSettled(nodes, s.replicas > 1, 20*time.Second); err != nil {
			return result{}, nil, err
		}
		b.logf("  shard leaders: %s", leaderLine(leaders))
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
		return result{}, nil, err
	}
	defer c.close()
	// Every group of the workload is active before the measurement, as on
	// nodes that have served for a while: a short run, at a low rate and
	// over several nodes, would otherwise measure mostly the groups' first
	// loads from the journal (w1 has 10,000). A ceiling has no groups.
	if s.system == "" {
		if err := warmGroups(c, workload); err != nil {
			// A group that did not warm is loaded by its first call.
			b.logf("  warming the groups: %v", err)
		}
	}
	// What the nodes spend idle (heartbeats, lease renewals, raft): with
	// -cluster-rate, it is taken off their CPU under load, so that what
	// is left is what the calls cost.
	var idle []float64
	if b.o.clusterRate > 0 {
		idle = idleCPU(pids(nodes), 2*time.Second)
	}
	var profiles []func()
	if profile {
		for i, n := range nodes {
			profiles = append(profiles, b.startProfile(n, fmt.Sprintf("cluster-%s-%s-n%d", slug(s.name), workload, i+1)))
		}
	}
	r := runForAllAt(b.o.workers, b.o.warmup, b.o.duration, pids(nodes), c.workload(workload), b.o.clusterRate)
	for _, wait := range profiles {
		wait()
	}
	if idle != nil {
		r = netOfIdle(r, idle, b.o.duration)
	}
	if r.Failed > 0 || r.Refused > 0 {
		return r, nil, fmt.Errorf("%d calls failed and %d were refused: %s", r.Failed, r.Refused, r.FirstErr)
	}
	return r, leaders, nil
}

// warmGroups activates the groups of a workload with a set of each
// through the admin subject (w2's one group warms in the warm-up).
func warmGroups(c *tallyClient, workload string) error {
	switch workload {
	case "w1":
		return c.fill("w1-", w1Groups, 1)
	case "w3":
		return c.fill("w3-", w3Groups, 1)
	}
	return nil
}

// awaitSettled waits, at most timeout, until the shard streams of a new
// journal (one per node) each have a leader and, with spread, no node
// leads two, and every partition is held, as the nodes'
// tally_shard_leaders_local and tally_partitions_owned say, unchanged for
// a second; it returns how many shard leaders each node holds.
func awaitSettled(nodes []*proc, spread bool, timeout time.Duration) ([]int, error) {
	var counts, owned, last []int
	var err error
	var since time.Time
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		counts, err = nodeGauge(nodes, "tally_shard_leaders_local")
		if err == nil {
			owned, err = nodeGauge(nodes, "tally_partitions_owned")
		}
		switch {
		case err != nil || !leadersPlaced(counts, len(nodes), spread) || sum(toFloats(owned)) != journal.Partitions:
			last = nil
		case !slices.Equal(owned, last):
			last, since = owned, time.Now()
		case time.Since(since) >= time.Second:
			return counts, nil
		}
		if time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("shard stream leaders: %w", err)
	}
	return nil, fmt.Errorf("the shard streams' leaders (%s) were not one on each node or the partitions (held %v) not all held and settled after %v", leaderLine(counts), owned, timeout)
}

func toFloats(xs []int) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}

// nodeGauge reads a gauge of each node's /metrics.
func nodeGauge(nodes []*proc, name string) ([]int, error) {
	client := http.Client{Timeout: 2 * time.Second}
	counts := make([]int, len(nodes))
	for i, n := range nodes {
		resp, err := client.Get("http://" + n.http + "/metrics")
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		v, ok := metricValue(string(body), name)
		if !ok {
			return nil, fmt.Errorf("n%d serves no %s", i+1, name)
		}
		counts[i] = int(v)
	}
	return counts, nil
}

// slug makes a setup's name a file name's part: "3 nodes, clients on
// one" is "3-nodes-clients-on-one".
func slug(name string) string {
	return strings.Join(strings.FieldsFunc(name, func(r rune) bool { return r == ' ' || r == ',' || r == '(' || r == ')' }), "-")
}

func pids(nodes []*proc) []int {
	var out []int
	for _, n := range nodes {
		out = append(out, n.pid())
	}
	return out
}

// forwardCost measures what a hop between nodes costs. On one three-node
// cluster, once each node leads its shard's stream, w1 and w2 run on
// users and groups whose partitions the first node holds, with every connection on that node (nothing forwarded) and
// with every connection on the second node (each call forwarded once, to
// the first), alternating over rounds. CPU is the three nodes' summed.
func (b *bench) forwardCost(w io.Writer, rounds int) error {
	nodes, err := b.startCluster(clusterSetup{nodes: 3, replicas: 3}, true)
	defer stopAll(nodes)
	if err != nil {
		return err
	}
	owners, err := settledOwners(nodes[0].url)
	if err != nil {
		return err
	}
	// n1's appends go to its own server once it leads its shard's stream.
	if _, err := awaitSettled(nodes, true, 20*time.Second); err != nil {
		return err
	}
	keep := func(id string) bool { return owners[cluster.PartitionOf(id, len(owners))] == "n1" }
	type placement struct {
		name, short string
		node        *proc
	}
	placements := []placement{{"on the owner (n1)", "owner", nodes[0]}, {"on n2, forwarded to n1", "forwarded", nodes[1]}}
	type key struct{ placement, workload string }
	samples := map[key][]result{}
	err = alternating(rounds, placements, b.o.wants, func(round int, p placement, wl string) error {
		b.logf("forwarding: clients %s, %s round %d ...", p.name, wl, round+1)
		c, err := newTallyClientKeeping([]string{p.node.url}, b.o.workers, keep)
		if err != nil {
			return err
		}
		var profiles []func()
		if round == 0 {
			for i, n := range nodes {
				profiles = append(profiles, b.startProfile(n, fmt.Sprintf("cluster-%s-%s-n%d", p.short, wl, i+1)))
			}
		}
		r := runForAll(b.o.workers, b.o.warmup, b.o.duration, pids(nodes), c.workload(wl))
		c.close()
		for _, wait := range profiles {
			wait()
		}
		if r.Failed > 0 || r.Refused > 0 {
			return fmt.Errorf("%d calls failed and %d were refused: %s", r.Failed, r.Refused, r.FirstErr)
		}
		samples[key{p.name, wl}] = append(samples[key{p.name, wl}], r)
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nthe cost of a forwarded call: three nodes, users and groups of the partitions n1 holds, median of %d rounds; CPU of the three nodes summed\n\n", rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "clients\tworkload\tops/s\tp50 ms\tp99 ms\tCPU us/call\t")
	for _, wl := range []string{"w1", "w2"} {
		var cpu, p50 []float64
		for _, p := range placements {
			rs := samples[key{p.name, wl}]
			if len(rs) == 0 {
				continue
			}
			cpu = append(cpu, medianBy(rs, func(r result) float64 { return r.CPUPerM }))
			p50 = append(p50, medianBy(rs, func(r result) float64 { return r.P50ms }))
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.2f\t%.2f\t%.1f\t\n", p.name, wl,
				medianBy(rs, func(r result) float64 { return r.OpsPerS }), p50[len(p50)-1],
				medianBy(rs, func(r result) float64 { return r.P99ms }), cpu[len(cpu)-1])
		}
		if len(cpu) == 2 {
			fmt.Fprintf(tw, "one hop costs\t%s\t\t%+.2f\t\t%+.1f\t\n", wl, p50[1]-p50[0], cpu[1]-cpu[0])
		}
	}
	return tw.Flush()
}

// settledOwners waits until every partition has a holder and the holders
// stay the same for a second, and returns them.
func settledOwners(url string) ([]string, error) {
	nc, err := nats.Connect(url, nats.UserInfo("ops", "ops"))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	var last []string
	var since time.Time
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		owners, err := nodetest.Owners(ctx, nc)
		cancel()
		if err != nil || slices.Contains(owners, "") || !slices.Equal(owners, last) {
			last, since = owners, time.Now()
			continue
		}
		if time.Since(since) >= time.Second {
			return owners, nil
		}
	}
	return nil, fmt.Errorf("the partitions' holders did not settle in 30 s: %v", last)
}

// nodeStartLimit bounds how long a cluster's node may take to serve: it
// joins once its server's replicas of the journal's streams caught up.
const nodeStartLimit = time.Minute

// startCluster starts a setup's nodes on loopback, a cluster when more
// than one, each serving /metrics, and waits until all serve; with ops,
// their servers run nodetest.OpsConfig.
func (b *bench) startCluster(s clusterSetup, ops bool) ([]*proc, error) {
	dir := b.dir("cluster")
	routes, err := clusterAddrs(s.nodes)
	if err != nil {
		return nil, err
	}
	return startEach(s.nodes, func(i int) (*proc, error) {
		httpPort, err := freePort()
		if err != nil {
			return nil, err
		}
		httpAddr := fmt.Sprintf("127.0.0.1:%d", httpPort)
		args := []string{"--name", fmt.Sprintf("n%d", i+1), "--data", filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			"--sync", "interval", "--passivate-after", "1h", "--log-level", "warn", "--http", httpAddr}
		var pprofAddr string
		if b.o.profile {
			port, err := freePort()
			if err != nil {
				return nil, err
			}
			pprofAddr = fmt.Sprintf("127.0.0.1:%d", port)
			args = append(args, "--pprof", pprofAddr)
		}
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
		p, err := startServingWithin(fmt.Sprintf("tally-n%d", i+1), exec.Command(b.tallyBin, args...), "tally: serving on ", nodeStartLimit)
		if p != nil {
			p.pprof, p.http = pprofAddr, httpAddr
		}
		return p, err
	})
}

// startEchoCluster starts the ceiling's servers for s: one natsecho in
// the system's mode, or s.nodes of them in a cluster, each serving once it
// leads its shard's stream.
func (b *bench) startEchoCluster(s clusterSetup, _ bool) ([]*proc, error) {
	mode := strings.TrimPrefix(s.system, "nats-echo-")
	if s.nodes == 1 {
		p, err := startEcho(b.echoBin, "-mode", mode)
		if err != nil {
			return nil, err
		}
		return []*proc{p}, nil
	}
	routes, err := clusterAddrs(s.nodes)
	if err != nil {
		return nil, err
	}
	return startEach(s.nodes, func(i int) (*proc, error) {
		return startServingWithin(fmt.Sprintf("natsecho-e%d", i+1), exec.Command(b.echoBin, "-mode", mode,
			"-cluster", routes[i], "-routes", strings.Join(routes, ","), "-shard", strconv.Itoa(i),
			"-replicas", strconv.Itoa(s.replicas)), "natsecho: serving on ", nodeStartLimit)
	})
}

// startEach starts n processes at once with start, and returns those that
// serve and the errors of the others.
func startEach(n int, start func(i int) (*proc, error)) ([]*proc, error) {
	type started struct {
		p   *proc
		err error
	}
	ch := make([]chan started, n)
	for i := range n {
		ch[i] = make(chan started, 1)
		go func() {
			p, err := start(i)
			ch[i] <- started{p, err}
		}()
	}
	var procs []*proc
	var errs []error
	for i := range ch {
		st := <-ch[i]
		if st.err != nil {
			errs = append(errs, st.err)
			continue
		}
		procs = append(procs, st.p)
	}
	return procs, errors.Join(errs...)
}

// clusterAddrs picks a free cluster address on 127.0.0.1 for each of n
// servers.
func clusterAddrs(n int) ([]string, error) {
	var routes []string
	for range n {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		routes = append(routes, "127.0.0.1:"+strconv.Itoa(port))
	}
	return routes, nil
}

// pauses measures, on fresh three-node clusters under increments of one
// group from clients on every node, once each node leads its shard's
// stream, the longest time without an acknowledged write after a SIGKILL
// of the group's owner (which leads the stream of the group's shard),
// after one of another node (which leads another shard's stream and holds
// other users' partitions), and during each step of a rolling restart
// (SIGTERM, start again). The targets are 10 s after a SIGKILL and 2 s
// for each step of a rolling restart.
func (b *bench) pauses(w io.Writer, rounds int) error {
	fmt.Fprintf(w, "\nlongest time without an acknowledged write, three nodes, %d workers writing one group through all three\n\n", b.o.workers)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "fault\tround\tnode\tthat was\tpause s\ttarget s\t")
	for round := range rounds {
		for _, target := range []string{"the group's owner", "another node"} {
			b.logf("pause after a SIGKILL of %s, round %d ...", target, round+1)
			killed, was, pause, err := b.killOnce(target)
			if err != nil {
				return fmt.Errorf("pause after a SIGKILL of %s: %w", target, err)
			}
			fmt.Fprintf(tw, "SIGKILL of %s\t%d\t%s\t%s\t%.2f\t10\t\n", target, round+1, killed, was, pause.Seconds())
		}
		b.logf("pauses of a rolling restart, round %d ...", round+1)
		steps, err := b.rollingOnce()
		if err != nil {
			return fmt.Errorf("rolling restart: %w", err)
		}
		for _, st := range steps {
			fmt.Fprintf(tw, "rolling restart\t%d\t%s\t%s\t%.2f\t2\t\n", round+1, st.node, st.was, st.pause.Seconds())
		}
	}
	return tw.Flush()
}

// pauseGroup is the group the pause measurement writes.
const pauseGroup = "pause-hot"

// writeLoad increments pauseGroup from workers spread over a cluster's
// nodes, each connection failing over to the others, and records when
// each write was acknowledged.
type writeLoad struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu   sync.Mutex
	acks []time.Time
}

func startWriteLoad(urls []string, workers int) (*writeLoad, error) {
	l := &writeLoad{stop: make(chan struct{})}
	for w := range workers {
		var list []string
		for j := range urls {
			list = append(list, urls[(w+j)%len(urls)])
		}
		nc, err := nats.Connect(strings.Join(list, ","), nats.DontRandomize(), nats.MaxReconnects(-1),
			nats.ReconnectWait(50*time.Millisecond), nats.PingInterval(time.Second), nats.MaxPingsOutstanding(2))
		if err != nil {
			l.halt()
			return nil, err
		}
		l.wg.Go(func() {
			defer nc.Close()
			data := []byte(`{"groupID":"` + pauseGroup + `","key":"n","value":1}`)
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				m, err := nc.Request("tally.v1.admin.increase", data, time.Second)
				if err == nil && m.Header.Get("Nats-Service-Error-Code") == "" {
					l.mu.Lock()
					l.acks = append(l.acks, time.Now())
					l.mu.Unlock()
				}
			}
		})
	}
	return l, nil
}

func (l *writeLoad) halt() {
	close(l.stop)
	l.wg.Wait()
}

// since counts the writes acknowledged after t.
func (l *writeLoad) since(t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for i := len(l.acks) - 1; i >= 0 && l.acks[i].After(t); i-- {
		n++
	}
	return n
}

// await waits until n writes were acknowledged after t, at most 30 s.
func (l *writeLoad) await(t time.Time, n int) error {
	for deadline := time.Now().Add(30 * time.Second); l.since(t) < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d writes acknowledged in 30 s, want %d", l.since(t), n)
		}
	}
	return nil
}

// longestGap is the longest time without an acknowledgement from t to the
// last acknowledgement.
func (l *writeLoad) longestGap(t time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	gap, last := time.Duration(0), t
	for _, a := range l.acks {
		if a.After(t) {
			gap, last = max(gap, a.Sub(last)), a
		}
	}
	return gap
}

// pauseCluster starts three nodes with an operator user and a write load
// through all of them, flowing.
func (b *bench) pauseCluster() ([]*proc, *writeLoad, error) {
	nodes, err := b.startCluster(clusterSetup{nodes: 3, replicas: 3}, true)
	if err != nil {
		return nodes, nil, err
	}
	// Once settled, each node leads its own shard's stream: the group's
	// owner leads the stream of the group's shard.
	if _, err := awaitSettled(nodes, true, 20*time.Second); err != nil {
		return nodes, nil, err
	}
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.url)
	}
	l, err := startWriteLoad(urls, b.o.workers)
	if err != nil {
		return nodes, nil, err
	}
	if err := l.await(time.Time{}, 1000); err != nil {
		l.halt()
		return nodes, nil, err
	}
	return nodes, l, nil
}

// roleOf names what a node was when it was stopped.
func roleOf(name, leader, owner string) string {
	switch {
	case name == leader && name == owner:
		return "journal leader, group owner"
	case name == leader:
		return "journal leader"
	case name == owner:
		return "group owner"
	}
	return ""
}

// killOnce starts a cluster, writes pauseGroup from every node, kills the
// target with SIGKILL and returns it, what it was, and the longest time
// without an acknowledged write from the kill until writes flowed again.
func (b *bench) killOnce(target string) (killed, was string, pause time.Duration, err error) {
	nodes, l, err := b.pauseCluster()
	defer stopAll(nodes)
	if err != nil {
		return "", "", 0, err
	}
	defer l.halt()
	leader, owner, err := roles(nodes[0].url)
	if err != nil {
		return "", "", 0, err
	}
	killed = owner
	if target == "another node" {
		for i := range nodes {
			if name := fmt.Sprintf("n%d", i+1); name != owner {
				killed = name
				break
			}
		}
	}
	victim := byName(nodes, killed)
	if victim == nil {
		return "", "", 0, fmt.Errorf("no node named %q", killed)
	}
	at := time.Now()
	victim.cmd.Process.Signal(syscall.SIGKILL)
	<-victim.done
	// The calls in flight at the kill are answered at once: wait for many
	// more.
	if err := l.await(at, 20*b.o.workers); err != nil {
		return "", "", 0, err
	}
	return killed, roleOf(killed, leader, owner), l.longestGap(at), nil
}

type rollingStep struct {
	node, was string
	pause     time.Duration
}

// rollingOnce starts a cluster, writes pauseGroup from every node, and
// stops each node in turn with SIGTERM and starts it again, returning the
// longest time without an acknowledged write of each step: from the
// signal until writes flowed again after the restart.
func (b *bench) rollingOnce() ([]rollingStep, error) {
	nodes, l, err := b.pauseCluster()
	defer func() { stopAll(nodes) }()
	if err != nil {
		return nil, err
	}
	defer l.halt()
	var steps []rollingStep
	for i, n := range nodes {
		leader, owner, err := roles(nodes[(i+1)%len(nodes)].url)
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("n%d", i+1)
		at := time.Now()
		n.stop()
		again, err := startServing(n.name, exec.Command(n.cmd.Path, n.cmd.Args[1:]...), "tally: serving on ")
		if err != nil {
			return nil, fmt.Errorf("restart %s: %w", name, err)
		}
		again.pprof, again.http = n.pprof, n.http
		nodes[i] = again
		if err := l.await(time.Now(), 20*b.o.workers); err != nil {
			return nil, err
		}
		steps = append(steps, rollingStep{name, roleOf(name, leader, owner), l.longestGap(at)})
	}
	return steps, nil
}

func byName(nodes []*proc, name string) *proc {
	for i, n := range nodes {
		if fmt.Sprintf("n%d", i+1) == name {
			return n
		}
	}
	return nil
}

func stopAll(nodes []*proc) {
	for _, n := range nodes {
		n.stop()
	}
}

// roles reads, as the operator user, which node leads the journal's
// stream and which holds pauseGroup's partition.
func roles(url string) (leader, owner string, err error) {
	nc, err := nats.Connect(url, nats.UserInfo("ops", "ops"))
	if err != nil {
		return "", "", err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return nodetest.Roles(ctx, nc, pauseGroup)
}
