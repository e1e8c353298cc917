package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

type report struct {
	Cores    int          `json:"cores"`
	When     string       `json:"when"`
	Command  string       `json:"command"`
	Patterns []string     `json:"patterns"` // connections x calls in flight per connection
	Rounds   int          `json:"rounds"`
	Rows     []result     `json:"rows"`
	Ceilings []ceilingRow `json:"ceilings"`
	Extras   extras       `json:"extras"`
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "tally benchmark, %d cores, patterns %s (connections x calls in flight per connection), %s\n", r.Cores, strings.Join(r.Patterns, ", "), r.When)
	fmt.Fprintf(w, "each row: the median of %d rounds (w4: one); tally/peer: tally's ops/s in the same pattern over the row's, the median of the rounds' ratios, then their range; CPU: the system's processes, seconds per million calls\n\n", r.Rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pattern\tsystem\tsync\tworkload\tops/s\tp50 ms\tp99 ms\tp99.9 ms\tCPU s/M ops\tclient CPU s/M\tpeak RSS MB\ttally/peer\trange\trefused\tfailed\t")
	for _, row := range r.Rows {
		if row.Skipped != "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\tskipped: %s\t\t\t\t\t\t\t\t\t\t\t\n", row.Pattern, row.System, row.Sync, row.Workload, row.Skipped)
			continue
		}
		ratio, spread := "", ""
		if row.Ratio > 0 {
			ratio = strconv.FormatFloat(row.Ratio, 'f', 2, 64) + "x"
		}
		if len(row.RoundsRatio) > 1 {
			spread = fmt.Sprintf("%.2f-%.2f", slices.Min(row.RoundsRatio), slices.Max(row.RoundsRatio))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f\t%.2f\t%.2f\t%.2f\t%.1f\t%.1f\t%.0f\t%s\t%s\t%d\t%d\t\n",
			row.Pattern, row.System, row.Sync, row.Workload, row.OpsPerS, row.P50ms, row.P99ms, row.P999ms,
			row.CPUPerM, row.ClientCPUPerM, float64(row.PeakRSS)/(1<<20), ratio, spread, row.Refused, row.Failed)
	}
	tw.Flush()
	printCeilings(w, r.Ceilings)
	for _, row := range r.Rows {
		if row.FirstErr != "" {
			fmt.Fprintf(w, "INVALID: %s %s %s %s: %d refused, %d failed; first error: %s\n",
				row.Pattern, row.System, row.Sync, row.Workload, row.Refused, row.Failed, row.FirstErr)
		}
	}
	e := r.Extras
	if e.ReplayEvents == 0 && e.ActivationGroups == 0 && len(e.Memory) == 0 && len(e.Notes) == 0 {
		return // -workloads left the extras out
	}
	fmt.Fprintf(w, "\ntally alone (--sync=interval):\n")
	if e.ReplayEvents > 0 {
		fmt.Fprintf(w, "  journal replay: %d events over %d groups in %.2f s: %.0f events/s; tally-node journal replay: %.0f events/s\n", e.ReplayEvents, e.ReplayGroups, e.ReplaySeconds, e.ReplayPerS, e.ToolReplayPerS)
	}
	if e.ActivationGroups > 0 {
		fmt.Fprintf(w, "  group activation (first get after a restart, one at a time): p50 %.3f ms, p99 %.3f ms over %d groups\n", e.ActivationP50ms, e.ActivationP99ms, e.ActivationGroups)
	}
	for _, m := range e.Memory {
		fmt.Fprintf(w, "  memory: %d active groups of 5 counters: RSS %.0f MB, %.0f bytes per group over an idle node\n", m.Groups, float64(m.RSS)/(1<<20), m.PerGroup)
	}
	for _, n := range e.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func joinArgs(args []string) string { return strings.Join(args, " ") }
