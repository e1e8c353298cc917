package main

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// clusterKey names the measurements of one setup on one workload.
type clusterKey struct{ setup, workload string }

// clusterSample is one measurement of a setup on a workload, in a round
// (from 0).
type clusterSample struct {
	round int
	r     result
}

// busiestPerM is the CPU per call of the busiest of a measurement's
// processes: the node that limits a cluster's throughput when the load
// grows. Of one process, its own.
func busiestPerM(r result) float64 {
	if len(r.ProcCPUPerM) == 0 {
		return r.CPUPerM
	}
	return slices.Max(r.ProcCPUPerM)
}

// clusterRow is one line of the cluster table: the median of each figure
// over the rounds, and each round's ratios to the base setup (one node)
// of the same round and workload, in the order the rounds ran.
type clusterRow struct {
	setup, workload string
	opsPerS         float64
	p50ms, p99ms    float64
	cpuPerM         float64 // the nodes' CPU summed, per call
	busiestPerM     float64 // the busiest node's CPU, per call
	opsRatios       []float64
	busiestRatios   []float64
	refused, failed int64
	rounds          int
	base            bool // the setup the ratios divide by
}

// opsRatio and busiestRatio are the medians of the rounds' ratios, 0
// without any.
func (r clusterRow) opsRatio() float64     { return medianOr0(r.opsRatios) }
func (r clusterRow) busiestRatio() float64 { return medianOr0(r.busiestRatios) }

func medianOr0(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return median(xs)
}

// clusterRows makes one row per setup and workload measured, w1's then
// w2's, in the setups' order; the one-node (one-server) setup of each
// system is the base the ratios of that system's setups divide by, round
// by round, and without it they have none.
func clusterRows(setups []clusterSetup, samples map[clusterKey][]clusterSample) []clusterRow {
	var rows []clusterRow
	for _, wl := range []string{"w1", "w2"} {
		bases := map[string]map[int]result{} // by system, then round
		for _, setup := range setups {
			if setup.nodes != 1 {
				continue
			}
			bases[setup.system] = map[int]result{}
			for _, s := range samples[clusterKey{setup.name, wl}] {
				bases[setup.system][s.round] = s.r
			}
		}
		for _, setup := range setups {
			ss := samples[clusterKey{setup.name, wl}]
			if len(ss) == 0 {
				continue
			}
			isBase := setup.nodes == 1
			row := clusterRow{setup: setup.name, workload: wl, rounds: len(ss), base: isBase}
			var rs []result
			for _, s := range ss {
				rs = append(rs, s.r)
				row.refused += s.r.Refused
				row.failed += s.r.Failed
				b, ok := bases[setup.system][s.round]
				if !ok || isBase {
					continue
				}
				if b.OpsPerS > 0 {
					row.opsRatios = append(row.opsRatios, s.r.OpsPerS/b.OpsPerS)
				}
				if bb := busiestPerM(b); bb > 0 {
					row.busiestRatios = append(row.busiestRatios, busiestPerM(s.r)/bb)
				}
			}
			row.opsPerS = medianBy(rs, func(r result) float64 { return r.OpsPerS })
			row.p50ms = medianBy(rs, func(r result) float64 { return r.P50ms })
			row.p99ms = medianBy(rs, func(r result) float64 { return r.P99ms })
			row.cpuPerM = medianBy(rs, func(r result) float64 { return r.CPUPerM })
			row.busiestPerM = medianBy(rs, busiestPerM)
			rows = append(rows, row)
		}
	}
	return rows
}

// printClusterTable writes the rows as a table.
func printClusterTable(w io.Writer, rows []clusterRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "setup\tworkload\tops/s\tops/s to 1 node\tp50 ms\tp99 ms\tCPU us/call, all nodes\tbusiest node's CPU us/call\tbusiest to 1 node\tits range\t")
	for _, r := range rows {
		opsRatio, busiest, spread := "", "", ""
		if r.base {
			opsRatio, busiest = "1.00x", "1.00x"
		} else {
			opsRatio, busiest = ratioText(r.opsRatios), ratioText(r.busiestRatios)
			if len(r.busiestRatios) > 1 {
				spread = fmt.Sprintf("%.2f-%.2f", slices.Min(r.busiestRatios), slices.Max(r.busiestRatios))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%.2f\t%.2f\t%.1f\t%.1f\t%s\t%s\t\n", r.setup, r.workload, r.opsPerS, opsRatio,
			r.p50ms, r.p99ms, r.cpuPerM, r.busiestPerM, busiest, spread)
	}
	return tw.Flush()
}

func ratioText(ratios []float64) string {
	if len(ratios) == 0 {
		return "-"
	}
	return strconv.FormatFloat(median(ratios), 'f', 2, 64) + "x"
}

// printAcceptance writes, for each setup with a target, whether on w1
// its busiest node's CPU per call, over one node's, met it.
func printAcceptance(w io.Writer, setups []clusterSetup, rows []clusterRow) {
	for _, s := range setups {
		if s.target == 0 {
			continue
		}
		var row *clusterRow
		for i := range rows {
			if rows[i].setup == s.name && rows[i].workload == "w1" {
				row = &rows[i]
			}
		}
		switch {
		case row == nil || len(row.busiestRatios) == 0:
			fmt.Fprintf(w, "acceptance: %s, w1: busiest node's CPU per call not measured against one node's, target <= %.2fx\n", s.name, s.target)
		case row.busiestRatio() <= s.target:
			fmt.Fprintf(w, "acceptance: %s, w1: busiest node's CPU per call %.2fx one node's, target <= %.2fx: met\n", s.name, row.busiestRatio(), s.target)
		default:
			fmt.Fprintf(w, "acceptance: %s, w1: busiest node's CPU per call %.2fx one node's, target <= %.2fx: MISSED\n", s.name, row.busiestRatio(), s.target)
		}
	}
}

// metricValue reads a sample without labels of a metric from a Prometheus
// text exposition.
func metricValue(exposition, name string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(exposition))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+" ")
		if !ok {
			continue
		}
		fields := strings.Fields(rest) // the value, then maybe a timestamp
		if len(fields) == 0 {
			return 0, false
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		return v, err == nil
	}
	return 0, false
}

// leadersPlaced reports whether each of shards streams has a leader, as
// the nodes count the leaders they hold, and, with spread, no node leads
// more than one.
func leadersPlaced(counts []int, shards int, spread bool) bool {
	sum := 0
	for _, c := range counts {
		sum += c
	}
	return sum == shards && (!spread || slices.Max(counts) <= 1)
}

// leaderLine lists how many shard leaders each node holds: "n1 1, n2 1".
func leaderLine(counts []int) string {
	parts := make([]string, len(counts))
	for i, c := range counts {
		parts[i] = fmt.Sprintf("n%d %d", i+1, c)
	}
	return strings.Join(parts, ", ")
}
