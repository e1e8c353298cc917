package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// ceilingRow is tally against the ceilings in one pattern, on w1 or w3
// with tally at --sync=interval.
type ceilingRow struct {
	Pattern      string  `json:"pattern"`
	Workload     string  `json:"workload"`
	TallyOpsPerS float64 `json:"tally_ops_per_s"`
	// Ratios: tally's ops/s over each ceiling's, then the atomic
	// journal's over the per-request and the batched journal's.
	Ratios []namedRatio `json:"ratios"`
}

// namedRatio is the median of the rounds' ratios of two systems' ops/s
// and their range.
type namedRatio struct {
	Name   string  `json:"name"` // "a/b"
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// ceilingRatios takes, for each pattern and workload with a tally row on
// w1 or w3, tally's
// ratio to each ceiling from the rows (the median of the rounds' ratios)
// and the atomic journal's to the other two journals (the median of the
// ratios of the rounds, each round's two runs close in time).
func ceilingRatios(rows []result) []ceilingRow {
	var out []ceilingRow
	for _, t := range rows {
		if t.System != "tally" || t.Sync != "interval" || (t.Workload != "w1" && t.Workload != "w3") || t.Skipped != "" {
			continue
		}
		c := ceilingRow{Pattern: t.Pattern, Workload: t.Workload, TallyOpsPerS: t.OpsPerS}
		row := func(system string) (result, bool) {
			i := slices.IndexFunc(rows, func(r result) bool {
				return r.Pattern == t.Pattern && r.System == system && r.Workload == t.Workload && r.Skipped == "" && r.OpsPerS > 0
			})
			if i < 0 {
				return result{}, false
			}
			return rows[i], true
		}
		for _, e := range ceilings {
			if r, ok := row(e.system); ok && len(r.RoundsRatio) > 0 {
				c.Ratios = append(c.Ratios, namedRatio{"tally/" + e.system, r.Ratio, slices.Min(r.RoundsRatio), slices.Max(r.RoundsRatio)})
			}
		}
		if atomic, ok := row("nats-echo-atomic-journal"); ok {
			for _, other := range []string{"nats-echo-journal", "nats-echo-batched-journal"} {
				if r, ok := row(other); ok {
					c.Ratios = append(c.Ratios, roundsRatio(atomic, r))
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// roundsRatio is a's ops/s over b's: the median of the rounds' ratios
// when both ran in every round, else the ratio of their median rows.
func roundsRatio(a, b result) namedRatio {
	n := namedRatio{Name: a.System + "/" + b.System}
	if len(a.RoundsOpsPerS) == 0 || len(a.RoundsOpsPerS) != len(b.RoundsOpsPerS) {
		n.Median = a.OpsPerS / b.OpsPerS
		n.Min, n.Max = n.Median, n.Median
		return n
	}
	ratios := make([]float64, len(a.RoundsOpsPerS))
	for i := range ratios {
		ratios[i] = a.RoundsOpsPerS[i] / b.RoundsOpsPerS[i]
	}
	n.Median, n.Min, n.Max = median(ratios), slices.Min(ratios), slices.Max(ratios)
	return n
}

// printCeilings prints one line per pattern: tally's ops/s and the ratios.
func printCeilings(w io.Writer, rows []ceilingRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\ntally (--sync=interval) against the ceilings on w1 and w3, per pattern: the median of the rounds' ratios of ops/s, then their range\n\n")
	var names []string
	for _, r := range rows {
		for _, x := range r.Ratios {
			if !slices.Contains(names, x.Name) {
				names = append(names, x.Name)
			}
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "pattern\tworkload\ttally ops/s\t")
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t", shortRatioName(n))
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t", r.Pattern, r.Workload, r.TallyOpsPerS)
		for _, n := range names {
			i := slices.IndexFunc(r.Ratios, func(x namedRatio) bool { return x.Name == n })
			if i < 0 {
				fmt.Fprint(tw, "\t")
				continue
			}
			x := r.Ratios[i]
			fmt.Fprintf(tw, "%.2fx (%.2f-%.2f)\t", x.Median, x.Min, x.Max)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// shortRatioName names a ratio's column without the ceilings' common
// prefix: tally/journal, atomic/batched.
func shortRatioName(n string) string {
	short := func(system string) string {
		if s, ok := map[string]string{
			"nats-echo": "echo", "nats-echo-journal": "journal",
			"nats-echo-batched-journal": "batched", "nats-echo-atomic-journal": "atomic",
			"nats-echo-fenced-journal": "fenced",
		}[system]; ok {
			return s
		}
		return system
	}
	a, b, _ := strings.Cut(n, "/")
	return short(a) + "/" + short(b)
}
