package main

import (
	"slices"
)

// measureRound measures every system once in each pattern: with one call
// in flight per connection on w1-w3 (w4 in the first round only, in the
// first such pattern: it needs 100,000 groups written first), tally at both
// durability levels and each peer at the matching one; in the service
// patterns on w1 at --sync=interval. The ceilings run w1 at
// --sync=interval in every pattern. It sets each row's tally/row ratio
// from this round's tally row of the same pattern. Odd rounds run the
// systems in reverse order, so that a machine whose speed drifts during
// the run does not favour the systems measured first.
func (b *bench) measureRound() []result {
	var rows []result
	coldDone := false
	for _, p := range b.o.patterns {
		cold := b.round == 0 && !p.service() && !coldDone
		coldDone = coldDone || cold
		wls := b.workloadsOf(p)
		if len(wls) == 0 && !cold {
			continue // -workloads leaves this pattern nothing to run
		}
		modes := []string{"interval", "always"}
		if p.service() {
			modes = modes[:1]
		}
		for _, mode := range modes {
			var systems []func() []result
			if b.o.runs("tally") {
				systems = append(systems, func() []result { return b.tally(p, mode, wls, cold) })
			}
			if b.o.runs("redis+lua") {
				systems = append(systems, func() []result { return b.redis(p, redisFsync(mode), wls, cold) })
			}
			if b.o.runs("nats-counters") {
				systems = append(systems, func() []result { return b.nats(p, mode, wls) })
			}
			if cw := ceilingWorkloads(wls); mode == "interval" && len(cw) > 0 {
				for _, c := range ceilings {
					if b.o.runs(c.system) {
						systems = append(systems, func() []result { return b.echo(p, c.system, c.sync, c.mode, cw) })
					}
				}
			}
			if b.round%2 == 1 {
				slices.Reverse(systems)
			}
			for _, measure := range systems {
				rows = append(rows, measure()...)
			}
		}
	}
	setRatios(rows)
	return rows
}

// profiling reports whether to profile the tally node: with -profile, in
// the first round.
func (b *bench) profiling() bool { return b.o.profile && b.round == 0 }

// setRatios sets each other row's Ratio: tally's ops/s in the same
// pattern, at the matching durability and on the same workload, over the
// row's, both from rows.
func setRatios(rows []result) {
	tally := map[string]float64{}
	for _, row := range rows {
		if row.System == "tally" && row.Skipped == "" {
			tally[row.Pattern+"/"+row.Sync+"/"+row.Workload] = row.OpsPerS
		}
	}
	for i, row := range rows {
		if row.System == "tally" || row.Skipped != "" || row.OpsPerS == 0 {
			continue
		}
		sync := row.Sync
		switch sync {
		case "everysec", "none": // nats-echo has no journal
			sync = "interval"
		}
		if t, ok := tally[row.Pattern+"/"+sync+"/"+row.Workload]; ok {
			rows[i].Ratio = t / row.OpsPerS
		}
	}
}

// medianRows merges the rounds into one row per pattern, system,
// durability and workload, in the first round's order: the round with the median ops/s
// (the upper one of an even count), with the median of the rounds' ratios,
// every round's ops/s and ratio, and the refused and failed calls of all
// rounds, so that a failure in any round shows.
func medianRows(rounds [][]result) []result {
	type key struct{ pattern, system, sync, workload string }
	var order []key
	all := map[key][]result{}
	for _, rows := range rounds {
		for _, r := range rows {
			k := key{r.Pattern, r.System, r.Sync, r.Workload}
			if _, ok := all[k]; !ok {
				order = append(order, k)
			}
			all[k] = append(all[k], r)
		}
	}
	out := make([]result, 0, len(order))
	for _, k := range order {
		rs := all[k]
		measured := slices.DeleteFunc(slices.Clone(rs), func(r result) bool { return r.Skipped != "" })
		if len(measured) == 0 {
			out = append(out, rs[0])
			continue
		}
		slices.SortStableFunc(measured, func(a, b result) int {
			switch {
			case a.OpsPerS < b.OpsPerS:
				return -1
			case a.OpsPerS > b.OpsPerS:
				return 1
			}
			return 0
		})
		row := measured[len(measured)/2]
		row.Refused, row.Failed, row.RoundsOpsPerS, row.RoundsRatio = 0, 0, nil, nil
		for _, r := range rs {
			row.Refused += r.Refused
			row.Failed += r.Failed
			if row.FirstErr == "" {
				row.FirstErr = r.FirstErr
			}
			if r.Skipped == "" {
				row.RoundsOpsPerS = append(row.RoundsOpsPerS, r.OpsPerS)
			}
			if r.Ratio > 0 {
				row.RoundsRatio = append(row.RoundsRatio, r.Ratio)
			}
		}
		row.Ratio = 0
		if len(row.RoundsRatio) > 0 {
			row.Ratio = median(row.RoundsRatio)
		}
		out = append(out, row)
	}
	return out
}
