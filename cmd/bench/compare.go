package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
)

// compare measures the tally node built from another checkout (the
// baseline) against this one in each pattern, alternating the two on each
// workload for -rounds rounds, and prints the median of each with the
// ratio. On a machine whose speed drifts from run to run, alternating is
// what makes a before/after comparison hold.
func (b *bench) compare(ctx context.Context, baseline string, rounds int, w io.Writer) error {
	base, err := buildIn(ctx, baseline, b.tmp, "./cmd/node", "tally-node-baseline")
	if err != nil {
		return fmt.Errorf("-baseline: %w", err)
	}
	type sample struct{ ops, cpu []float64 }
	fmt.Fprintf(w, "tally against the baseline %s, median of %d alternating rounds, patterns %s (connections x calls in flight per connection)\n", baseline, rounds, b.patternList())
	if b.o.members {
		fmt.Fprintf(w, "this build's groups members-only (the load's users their members; w2's hot group of %d members), the baseline's open\n", hotMembers)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pattern\tsync\tworkload\tbaseline ops/s\tops/s\tratio\trounds' ratios\tbaseline CPU s/M ops\tCPU s/M ops\tratio\trounds' ratios\t")
	for _, p := range b.o.patterns {
		for _, mode := range []string{"interval", "always"} {
			for _, wl := range workloads {
				if !b.o.wants(wl) {
					continue
				}
				runs := map[string]*sample{"baseline": {}, "this": {}}
				for round := range rounds {
					for _, who := range []string{"baseline", "this"} {
						bin := b.tallyBin
						if who == "baseline" {
							bin = base
						}
						b.logf("compare %s --sync=%s %s round %d: %s ...", p, mode, wl, round+1, who)
						r, err := b.tallyOnce(bin, p, mode, wl, who == "this" && b.o.members)
						if err != nil {
							return fmt.Errorf("%s %s %s %s: %w", who, p, mode, wl, err)
						}
						runs[who].ops = append(runs[who].ops, r.OpsPerS)
						runs[who].cpu = append(runs[who].cpu, r.CPUPerM)
					}
				}
				bo, to := median(runs["baseline"].ops), median(runs["this"].ops)
				bc, tc := median(runs["baseline"].cpu), median(runs["this"].cpu)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.0f\t%.2fx\t%s\t%.1f\t%.1f\t%.2fx\t%s\t\n", p, mode, wl,
					bo, to, to/bo, ratioRange(runs["this"].ops, runs["baseline"].ops),
					bc, tc, tc/bc, ratioRange(runs["this"].cpu, runs["baseline"].cpu))
			}
		}
	}
	return tw.Flush()
}

func (b *bench) patternList() string {
	names := make([]string, len(b.o.patterns))
	for i, p := range b.o.patterns {
		names[i] = p.String()
	}
	return strings.Join(names, ", ")
}

// tallyOnce measures one workload with pattern p on a fresh node, its
// groups members-only when members is set.
func (b *bench) tallyOnce(binary string, p pattern, sync, workload string, members bool) (result, error) {
	node, err := startTally(binary, filepath.Join(b.dir("compare"), "data"), sync, false)
	if err != nil {
		return result{}, err
	}
	defer node.stop()
	c, err := newTallyClient(node.url, p.conns)
	if err != nil {
		return result{}, err
	}
	defer c.close()
	if members {
		if err := c.makeMembers(workload); err != nil {
			return result{}, err
		}
	}
	r := runFor(p.callers(), b.o.warmup, b.o.duration, node.pid(), c.workload(workload))
	if r.Failed > 0 || r.Refused > 0 {
		return r, fmt.Errorf("%d calls failed and %d were refused", r.Failed, r.Refused)
	}
	return r, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// ratioRange is the range of the per-round ratios this/baseline, each
// round's two runs having run one after the other.
func ratioRange(this, baseline []float64) string {
	ratios := make([]float64, len(this))
	for i := range this {
		ratios[i] = this[i] / baseline[i]
	}
	return fmt.Sprintf("%.2f-%.2f", slices.Min(ratios), slices.Max(ratios))
}
