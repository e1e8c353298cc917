package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
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
	return tw.Flush()
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
	nodes, err := b.startCluster(s)
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
// than one, and waits until all serve.
func (b *bench) startCluster(s clusterSetup) ([]*proc, error) {
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
			"--listen", "127.0.0.1:0", "--sync", "interval", "--passivate-after", "1h", "--log-level", "warn"}
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
