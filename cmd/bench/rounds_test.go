package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestMedianRows(t *testing.T) {
	row := func(system, sync, workload string, ops float64) result {
		return result{System: system, Sync: sync, Workload: workload, OpsPerS: ops, P99ms: ops / 1000}
	}
	round := func(tally, redis, nats float64) []result {
		rows := []result{row("tally", "interval", "w1", tally), row("redis+lua", "everysec", "w1", redis), row("nats-counters", "interval", "w1", nats)}
		setRatios(rows)
		return rows
	}
	r1 := round(20_000, 40_000, 25_000)
	r1 = append(r1, row("tally", "interval", "w4", 15_000)) // w4: first round only
	r2 := round(30_000, 40_000, 20_000)
	r2[2].Failed, r2[2].FirstErr = 2, "timeout"
	r3 := round(25_000, 50_000, 30_000)
	r3[1] = result{System: "redis+lua", Sync: "everysec", Workload: "w1", Skipped: "did not start"}

	got := medianRows([][]result{r1, r2, r3})

	want := []result{
		{System: "tally", Sync: "interval", Workload: "w1", OpsPerS: 25_000, P99ms: 25, RoundsOpsPerS: []float64{20_000, 30_000, 25_000}},
		// two measured rounds: the upper one, and the median of two ratios
		// is the upper one too.
		{System: "redis+lua", Sync: "everysec", Workload: "w1", OpsPerS: 40_000, P99ms: 40, Ratio: 0.75,
			RoundsOpsPerS: []float64{40_000, 40_000}, RoundsRatio: []float64{0.5, 0.75}},
		// the median round's figures, with every round's failures.
		{System: "nats-counters", Sync: "interval", Workload: "w1", OpsPerS: 25_000, P99ms: 25, Ratio: 25_000.0 / 30_000, Failed: 2, FirstErr: "timeout",
			RoundsOpsPerS: []float64{25_000, 20_000, 30_000}, RoundsRatio: []float64{0.8, 1.5, 25_000.0 / 30_000}},
		{System: "tally", Sync: "interval", Workload: "w4", OpsPerS: 15_000, P99ms: 15, RoundsOpsPerS: []float64{15_000}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("medianRows (-want +got):\n%s", diff)
	}
}

func TestMedianRowsAllSkipped(t *testing.T) {
	skip := result{System: "redis+lua", Sync: "always", Workload: "all", Skipped: "redis-server not found"}
	got := medianRows([][]result{{skip}, {skip}})
	if diff := cmp.Diff([]result{skip}, got); diff != "" {
		t.Fatalf("medianRows (-want +got):\n%s", diff)
	}
}

func TestParsePatterns(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []pattern
	}{
		{"64x1,1x64,4x64", []pattern{{64, 1}, {1, 64}, {4, 64}}},
		{" 1x64 , 1x64", []pattern{{1, 64}}},
		{"64", nil},
		{"0x64", nil},
		{"1x64x2", nil},
		{"1x064", nil},
	} {
		got, err := parsePatterns(tc.in)
		if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(pattern{})); diff != "" || (err == nil) != (tc.want != nil) {
			t.Errorf("parsePatterns(%q) = %v, %v; want %v (-want +got):\n%s", tc.in, got, err, tc.want, diff)
		}
	}
}

// TestSetRatiosPerPattern checks that a row is compared with tally's row of
// its own pattern.
func TestSetRatiosPerPattern(t *testing.T) {
	rows := []result{
		{Pattern: "64x1", System: "tally", Sync: "interval", Workload: "w1", OpsPerS: 20_000},
		{Pattern: "1x64", System: "tally", Sync: "interval", Workload: "w1", OpsPerS: 40_000},
		{Pattern: "64x1", System: "nats-echo-journal", Sync: "interval", Workload: "w1", OpsPerS: 40_000},
		{Pattern: "1x64", System: "nats-echo-journal", Sync: "interval", Workload: "w1", OpsPerS: 80_000},
		{Pattern: "1x64", System: "nats-echo", Sync: "none", Workload: "w1", OpsPerS: 160_000},
		{Pattern: "4x64", System: "nats-echo", Sync: "none", Workload: "w1", OpsPerS: 160_000}, // no tally row
	}
	setRatios(rows)
	var got []float64
	for _, r := range rows {
		got = append(got, r.Ratio)
	}
	if diff := cmp.Diff([]float64{0, 0, 0.5, 0.5, 0.25, 0}, got); diff != "" {
		t.Errorf("setRatios ratios (-want +got):\n%s", diff)
	}
}

func TestCeilingRatios(t *testing.T) {
	round := func(tally, echo, journal, batched, atomic float64) []result {
		rows := []result{
			{Pattern: "1x64", System: "tally", Sync: "interval", Workload: "w1", OpsPerS: tally},
			{Pattern: "1x64", System: "tally", Sync: "interval", Workload: "w2", OpsPerS: tally},
			{Pattern: "1x64", System: "nats-echo", Sync: "none", Workload: "w1", OpsPerS: echo},
			{Pattern: "1x64", System: "nats-echo-journal", Sync: "interval", Workload: "w1", OpsPerS: journal},
			{Pattern: "1x64", System: "nats-echo-batched-journal", Sync: "interval", Workload: "w1", OpsPerS: batched},
			{Pattern: "1x64", System: "nats-echo-atomic-journal", Sync: "interval", Workload: "w1", OpsPerS: atomic},
			{Pattern: "1x64", System: "tally", Sync: "interval", Workload: "w3", OpsPerS: tally / 2},
			{Pattern: "1x64", System: "nats-echo-journal", Sync: "interval", Workload: "w3", OpsPerS: journal},
		}
		setRatios(rows)
		return rows
	}
	rows := medianRows([][]result{
		round(30_000, 60_000, 40_000, 60_000, 20_000),
		round(36_000, 60_000, 40_000, 60_000, 30_000),
		round(33_000, 66_000, 60_000, 60_000, 30_000),
	})

	got := ceilingRatios(rows)

	want := []ceilingRow{{Pattern: "1x64", Workload: "w1", TallyOpsPerS: 33_000, Ratios: []namedRatio{
		{"tally/nats-echo", 0.5, 0.5, 0.6},
		{"tally/nats-echo-journal", 0.75, 0.55, 0.9},
		{"tally/nats-echo-batched-journal", 0.55, 0.5, 0.6},
		{"tally/nats-echo-atomic-journal", 1.2, 1.1, 1.5},
		{"nats-echo-atomic-journal/nats-echo-journal", 0.5, 0.5, 0.75},
		{"nats-echo-atomic-journal/nats-echo-batched-journal", 0.5, 1.0 / 3, 0.5},
	}}, {Pattern: "1x64", Workload: "w3", TallyOpsPerS: 16_500, Ratios: []namedRatio{
		{"tally/nats-echo-journal", 0.375, 0.275, 0.45},
	}}}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("ceilingRatios (-want +got):\n%s", diff)
	}
}
