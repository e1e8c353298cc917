package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var testSetups = []clusterSetup{
	{name: "1 node", nodes: 1, replicas: 1},
	{name: "3 nodes", nodes: 3, replicas: 3, spread: true, target: 0.75},
	{name: "5 nodes", nodes: 5, replicas: 3, spread: true, target: 0.5},
}

func TestBusiestPerM(t *testing.T) {
	if got := busiestPerM(result{CPUPerM: 40}); got != 40 {
		t.Errorf("one process: busiestPerM = %v, want its own 40", got)
	}
	if got := busiestPerM(result{CPUPerM: 60, ProcCPUPerM: []float64{15, 30, 15}}); got != 30 {
		t.Errorf("three processes: busiestPerM = %v, want the busiest's 30", got)
	}
}

// TestClusterRows checks that each round's ratio divides by the one node
// of the same round, and that the row's ratio is the median of those,
// not the ratio of the medians.
func TestClusterRows(t *testing.T) {
	one := func(ops, cpu float64) result { return result{OpsPerS: ops, P50ms: 1, P99ms: 2, CPUPerM: cpu} }
	three := func(ops float64, cpu ...float64) result {
		return result{OpsPerS: ops, P50ms: 3, P99ms: 6, CPUPerM: sum(cpu), ProcCPUPerM: cpu}
	}
	samples := map[clusterKey][]clusterSample{
		{"1 node", "w1"}: {{0, one(10_000, 40)}, {1, one(12_000, 80)}, {2, one(11_000, 60)}},
		{"3 nodes", "w1"}: {
			{0, three(15_000, 20, 30, 10)}, // 0.75
			{1, three(18_000, 40, 20, 20)}, // 0.5
			{2, three(16_500, 30, 36, 30)}, // 0.6
		},
		// a round without the one node: no ratio from it.
		{"5 nodes", "w1"}: {{2, three(20_000, 12, 12, 12, 12, 12)}, {3, three(20_000, 12, 12, 12, 12, 12)}},
		{"1 node", "w2"}:  {{0, one(5_000, 100)}},
		{"3 nodes", "w2"}: {{0, three(6_000, 50, 80, 40)}},
	}

	got := clusterRows(testSetups, samples)

	want := []clusterRow{
		{setup: "1 node", workload: "w1", opsPerS: 11_000, p50ms: 1, p99ms: 2, cpuPerM: 60, busiestPerM: 60, rounds: 3, base: true},
		{setup: "3 nodes", workload: "w1", opsPerS: 16_500, p50ms: 3, p99ms: 6, cpuPerM: 80, busiestPerM: 36, rounds: 3,
			opsRatios: []float64{1.5, 1.5, 1.5}, busiestRatios: []float64{0.75, 0.5, 0.6}},
		{setup: "5 nodes", workload: "w1", opsPerS: 20_000, p50ms: 3, p99ms: 6, cpuPerM: 60, busiestPerM: 12, rounds: 2,
			opsRatios: []float64{20_000.0 / 11_000}, busiestRatios: []float64{0.2}},
		{setup: "1 node", workload: "w2", opsPerS: 5_000, p50ms: 1, p99ms: 2, cpuPerM: 100, busiestPerM: 100, rounds: 1, base: true},
		{setup: "3 nodes", workload: "w2", opsPerS: 6_000, p50ms: 3, p99ms: 6, cpuPerM: 170, busiestPerM: 80, rounds: 1,
			opsRatios: []float64{1.2}, busiestRatios: []float64{0.8}},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(clusterRow{}), cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Fatalf("clusterRows (-want +got):\n%s", diff)
	}
	if r := got[1].busiestRatio(); r != 0.6 {
		t.Errorf("busiestRatio = %v, want the median round's 0.6", r)
	}
}

// TestClusterRowsOfTheCeiling checks that the ceiling's setups divide by
// the ceiling's one server, not by tally's one node.
func TestClusterRowsOfTheCeiling(t *testing.T) {
	setups := []clusterSetup{
		{name: "1 node", nodes: 1, replicas: 1},
		{name: "3 nodes", nodes: 3, replicas: 3, spread: true},
		{name: "ceiling, 1 server", system: ceilingSystem, nodes: 1, replicas: 1},
		{name: "ceiling, 3 servers", system: ceilingSystem, nodes: 3, replicas: 3, spread: true},
	}
	samples := map[clusterKey][]clusterSample{
		{"1 node", "w1"}:             {{0, result{OpsPerS: 10_000, CPUPerM: 80}}},
		{"3 nodes", "w1"}:            {{0, result{OpsPerS: 5_000, CPUPerM: 300, ProcCPUPerM: []float64{120, 100, 80}}}},
		{"ceiling, 1 server", "w1"}:  {{0, result{OpsPerS: 20_000, CPUPerM: 40}}},
		{"ceiling, 3 servers", "w1"}: {{0, result{OpsPerS: 10_000, CPUPerM: 90, ProcCPUPerM: []float64{30, 30, 30}}}},
	}
	rows := clusterRows(setups, samples)
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s base=%v busiest=%.2f ops=%.2f", r.setup, r.base, r.busiestRatio(), r.opsRatio()))
	}
	want := []string{
		"1 node base=true busiest=0.00 ops=0.00",
		"3 nodes base=false busiest=1.50 ops=0.50",
		"ceiling, 1 server base=true busiest=0.00 ops=0.00",
		"ceiling, 3 servers base=false busiest=0.75 ops=0.50",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}

	// Without its one server (-cluster-only), a system's setups have no
	// ratio rather than one to the first setup left.
	rows = clusterRows(setups[1:2], samples)
	if len(rows) != 1 || rows[0].base || len(rows[0].busiestRatios) != 0 || len(rows[0].opsRatios) != 0 {
		t.Errorf("3 nodes without 1 node: %+v, want a row without ratios", rows)
	}
}

func TestPrintCluster(t *testing.T) {
	rows := []clusterRow{
		{setup: "1 node", workload: "w1", opsPerS: 11_000, p50ms: 1, p99ms: 2, cpuPerM: 60, busiestPerM: 60, rounds: 3, base: true},
		{setup: "3 nodes", workload: "w1", opsPerS: 16_500, p50ms: 3, p99ms: 6, cpuPerM: 80, busiestPerM: 36, rounds: 3,
			opsRatios: []float64{1.5, 1.5, 1.5}, busiestRatios: []float64{0.75, 0.5, 0.6}},
		{setup: "5 nodes", workload: "w1", opsPerS: 20_000, p50ms: 3, p99ms: 6, cpuPerM: 60, busiestPerM: 12, rounds: 1,
			opsRatios: []float64{2}, busiestRatios: []float64{0.55}},
	}
	var b strings.Builder
	if err := printClusterTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	printAcceptance(&b, testSetups, rows)
	printAcceptance(&b, testSetups, rows[:2]) // 5 nodes not measured
	// Without the blanks that end the lines whose last cells are empty.
	want := `    setup  workload  ops/s  ops/s to 1 node  p50 ms  p99 ms  CPU us/call, all nodes  busiest node's CPU us/call  busiest to 1 node  its range
   1 node        w1  11000            1.00x    1.00    2.00                    60.0                        60.0              1.00x
  3 nodes        w1  16500            1.50x    3.00    6.00                    80.0                        36.0              0.60x  0.50-0.75
  5 nodes        w1  20000            2.00x    3.00    6.00                    60.0                        12.0              0.55x
acceptance: 3 nodes, w1: busiest node's CPU per call 0.60x one node's, target <= 0.75x: met
acceptance: 5 nodes, w1: busiest node's CPU per call 0.55x one node's, target <= 0.50x: MISSED
acceptance: 3 nodes, w1: busiest node's CPU per call 0.60x one node's, target <= 0.75x: met
acceptance: 5 nodes, w1: busiest node's CPU per call not measured against one node's, target <= 0.50x
`
	lines := strings.SplitAfter(b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \n")
	}
	got := strings.Join(lines, "\n")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cluster table (-want +got):\n%s", diff)
	}
}

func TestMetricValue(t *testing.T) {
	const exposition = `# HELP tally_shard_leaders_local Journal shard streams whose leader is this node's NATS server.
# TYPE tally_shard_leaders_local gauge
tally_shard_leaders_local_other 7
tally_shard_leaders_local 2
tally_partitions_owned{x="y"} 3
tally_groups_active 12 1700000000000
`
	for _, tc := range []struct {
		name string
		want float64
		ok   bool
	}{
		{"tally_shard_leaders_local", 2, true},
		{"tally_groups_active", 12, true},
		{"tally_partitions_owned", 0, false}, // with labels
		{"tally_missing", 0, false},
	} {
		got, ok := metricValue(exposition, tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("metricValue(%s) = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestLeadersPlaced(t *testing.T) {
	for _, tc := range []struct {
		counts []int
		spread bool
		want   bool
	}{
		{[]int{1, 1, 1}, true, true},
		{[]int{2, 1, 0}, true, false}, // all led, one node leads two
		{[]int{2, 1, 0}, false, true},
		{[]int{1, 1, 0}, true, false}, // a shard without a leader
		{[]int{1, 1, 0}, false, false},
		{[]int{1, 1, 1, 1, 1}, true, false}, // five nodes, three shards counted as five
	} {
		if got := leadersPlaced(tc.counts, 3, tc.spread); got != tc.want {
			t.Errorf("leadersPlaced(%v, 3, spread %v) = %v, want %v", tc.counts, tc.spread, got, tc.want)
		}
	}
	if got := leaderLine([]int{1, 0, 2}); got != "n1 1, n2 0, n3 2" {
		t.Errorf("leaderLine = %q", got)
	}
}

// TestNetOfIdle takes what each node spends idle off its CPU per call.
func TestNetOfIdle(t *testing.T) {
	// 2 s, 4,000 calls: 0.1 CPU s/s idle is 50 us a call.
	r := netOfIdle(result{Ops: 4000, CPUPerM: 300, ProcCPUPerM: []float64{120, 180}}, []float64{0.1, 0.05}, 2*time.Second)
	if r.CPUPerM != 300-75 || r.ProcCPUPerM[0] != 120-50 || r.ProcCPUPerM[1] != 180-25 {
		t.Errorf("net of idle: CPU %v, by node %v; want 225, [70 155]", r.CPUPerM, r.ProcCPUPerM)
	}
	if r := netOfIdle(result{Ops: 10, CPUPerM: 1, ProcCPUPerM: []float64{1}}, []float64{1}, time.Second); r.CPUPerM != 0 || r.ProcCPUPerM[0] != 0 {
		t.Errorf("an idle cost above the measured CPU: %v, %v; want 0", r.CPUPerM, r.ProcCPUPerM)
	}
}
