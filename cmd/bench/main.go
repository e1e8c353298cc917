// Command bench measures tally side by side with Redis (one Lua script per
// call doing the same work), NATS JetStream's native counters and the
// ceilings of a service on NATS (natsecho), on the same machine, in one
// run, in several client patterns, and reports ratios.
//
//	go run ./cmd/bench -out docs/bench
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

type options struct {
	warmup, duration time.Duration
	workers          int
	coldGroups       int
	memGroups        []int
	replayEvents     int
	out              string
	patterns         []pattern       // client patterns of the main run and of -baseline
	systems          map[string]bool // systems to run; all when empty
	only             map[string]bool // workloads to run; all when empty
	profile          bool
	clusterAll       bool    // -cluster: every setup, not only those that predict scale-out
	clusterOnly      string  // -cluster: only the setups whose name has it, when set
	clusterRate      float64 // -cluster: calls a second of every setup, 0 as fast as it answers
	// members: with -baseline, this build's runs make every load group
	// members-only, with the users that call it as members.
	members bool
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up before each measurement")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "measurement of each workload in each round")
	fs.IntVar(&o.workers, "workers", 64, "connections, each with one request in flight, of -cluster, -dashboard and the extras (the main run and -baseline use -patterns)")
	patterns := fs.String("patterns", "64x1,1x64,4x64", "client patterns, each connections x calls in flight per connection: 64x1 runs w1-w3 (and w4) for every system at both durability levels, a pattern with more than one call in flight (the service pattern) runs w1 at --sync=interval; with -baseline the default is 64x1,1x64, each on w1-w3")
	systemList := fs.String("systems", "", "comma-separated systems to run ("+strings.Join(systemNames, ",")+"); all when empty")
	fs.IntVar(&o.coldGroups, "cold-groups", 100_000, "groups of w4 (cold activation)")
	fs.IntVar(&o.replayEvents, "replay-events", 1_000_000, "events of the replay measurement")
	fs.StringVar(&o.out, "out", "docs/bench", "directory for results.json and results.png")
	tallyOnly := fs.Bool("tally-only", false, "measure tally alone, no peers or ceilings (-systems tally)")
	mem := fs.String("mem-groups", "100000,1000000", "active-group counts of the memory measurement")
	only := fs.String("workloads", "", "comma-separated workloads to run (w1,w2,w3,w4,extras); all when empty")
	fs.BoolVar(&o.profile, "profile", false, "write CPU and allocation profiles of the tally node for each workload (first round), its live heap at the end of w1-w3, and heap profiles for the memory measurement, to -out; with -cluster, of every node of each setup and of the forwarding measurement (first round)")
	quick := fs.Bool("quick", false, "short run: 1 s warm-up, 3 s per workload, smaller extras")
	cluster := fs.Bool("cluster", false, "measure w1 and w2 on one node and on clusters of three and five nodes (a journal of one shard stream per node, R3, each led by the node holding its partitions; connections spread over every node), fresh nodes for each, and the same of the ceiling (natsecho's journal on one, three and five servers, sharded the same way), in alternating rounds: calls/s, latency, the nodes' CPU per call summed and the busiest node's, and the busiest node's over one node's of the same system and round against the targets (w1: at most 0.75x at three nodes, 0.5x at five); then, unless -workloads leaves out extras, the cost of a forwarded call and the write pauses of a SIGKILL and of a rolling restart; instead of the peers")
	fs.BoolVar(&o.clusterAll, "cluster-all", false, "with -cluster, also measure three nodes with every connection on one node, three nodes with the journal on one replica, and the atomic journal's ceiling on one server and on three")
	fs.StringVar(&o.clusterOnly, "cluster-only", "", "with -cluster, only the setups whose name contains this text (\"ceiling\": the ceilings'; \"node\": tally's); each system's ratios need its one-server setup among them")
	fs.Float64Var(&o.clusterRate, "cluster-rate", 1000, "with -cluster, the calls a second every setup runs at, the same for all so that their CPU per call compares (a saturated machine inflates it, and more so for more processes); CPU per call is then net of what the nodes spend idle, measured before; 0: as fast as each setup answers, CPU as measured")
	dashboard := fs.Bool("dashboard", false, "draw deploy/monitoring's Grafana dashboard over a run of w1-w3 on one node into -out/dashboard.png, from the series Debian's Prometheus (installed when missing) scraped, instead of the peers")
	hostile := fs.Bool("hostile", false, "measure what one hostile client costs the others on one node (a user's flood of 15 KB requests from 8 connections; a subscriber to every update that never reads), each against a quiet run, instead of the peers; writes -out/hostile.json")
	endUsers := fs.Int("endusers", 0, "measure this many end users on one node (WebSocket connections signed in with user signatures, each calling at the per-user limit) beside a back end's calls over TCP, against the back end alone and with one user flooding, instead of the peers; writes -out/endusers.json")
	baseline := fs.String("baseline", "", "compare tally built from this checkout with this one on w1-w3 (alternating rounds), instead of the peers")
	fs.BoolVar(&o.members, "members", false, "with -baseline: run this build with every group of w1-w3 members-only, the load's users its members (w2's hot group padded to 100,000 members), against the baseline's open groups; -baseline of this checkout measures the membership check alone")
	rounds := fs.Int("rounds", 3, "rounds of w1-w3: each round measures every system once, in alternating order, and the report gives each row's median round and the median of the per-round ratios; with -baseline, alternating rounds of the two builds")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if *only != "" {
		o.only = map[string]bool{}
		for _, w := range strings.Split(*only, ",") {
			o.only[strings.TrimSpace(w)] = true
		}
	}
	if *tallyOnly {
		*systemList = "tally"
	}
	if *systemList != "" {
		o.systems = map[string]bool{}
		for _, name := range strings.Split(*systemList, ",") {
			name = strings.TrimSpace(name)
			if !slices.Contains(systemNames, name) {
				return fmt.Errorf("-systems: unknown system %q", name)
			}
			o.systems[name] = true
		}
	}
	if *baseline != "" && !setFlags(fs)["patterns"] {
		*patterns = "64x1,1x64"
	}
	if o.patterns, err = parsePatterns(*patterns); err != nil {
		return fmt.Errorf("-patterns: %w", err)
	}
	if o.memGroups, err = parseInts(*mem); err != nil {
		return fmt.Errorf("-mem-groups: %w", err)
	}
	if *quick {
		o.warmup, o.duration, o.coldGroups, o.replayEvents, o.memGroups = time.Second, 3*time.Second, 10_000, 100_000, []int{10_000, 50_000}
		if !setFlags(fs)["rounds"] {
			*rounds = 1
		}
	}
	if *rounds < 1 {
		return fmt.Errorf("-rounds %d: must be at least 1", *rounds)
	}
	if (o.clusterAll || o.clusterOnly != "") && !*cluster {
		return errors.New("-cluster-all and -cluster-only choose -cluster's setups: give -cluster too")
	}
	if o.members && *baseline == "" {
		return errors.New("-members compares with a baseline: give -baseline too")
	}
	tmp, err := os.MkdirTemp("", "tally-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	b := &bench{o: o, tmp: tmp, log: os.Stderr}
	if b.tallyBin, err = build(ctx, tmp, "./cmd/node", "tally-node"); err != nil {
		return err
	}
	if b.natsBin, err = build(ctx, tmp, "github.com/nats-io/nats-server/v2", "nats-server"); err != nil {
		return err
	}
	if b.echoBin, err = build(ctx, tmp, "./cmd/bench/natsecho", "natsecho"); err != nil {
		return err
	}
	if *baseline != "" {
		return b.compare(ctx, *baseline, *rounds, stdout)
	}
	if *cluster {
		return b.cluster(ctx, *rounds, stdout)
	}
	if *hostile {
		return b.hostile(ctx, *rounds, stdout)
	}
	if *endUsers > 0 {
		return b.endUsers(ctx, *rounds, *endUsers, stdout)
	}
	if *dashboard {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			return err
		}
		return b.dashboard(ctx, filepath.Join(o.out, "dashboard.png"))
	}
	rep := report{
		Cores:   runtime.NumCPU(),
		When:    time.Now().UTC().Format(time.RFC3339),
		Command: "go run ./cmd/bench " + joinArgs(args),
		Rounds:  *rounds,
	}
	for _, p := range o.patterns {
		rep.Patterns = append(rep.Patterns, p.String())
	}
	var perRound [][]result
	for b.round = range *rounds {
		perRound = append(perRound, b.measureRound())
	}
	rep.Rows = medianRows(perRound)
	rep.Ceilings = ceilingRatios(rep.Rows)
	if o.wants("extras") {
		rep.Extras = b.extras()
	}
	rep.print(stdout)
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.out, "results.json"), js, 0o644); err != nil {
		return err
	}
	return writeChart(filepath.Join(o.out, "results.png"), rep)
}

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

func (o options) wants(part string) bool { return len(o.only) == 0 || o.only[part] }

// systemNames are the systems of the main run: tally, its peers and the
// ceilings.
var systemNames = append([]string{"tally", "redis+lua", "nats-counters"}, ceilingNames()...)

func ceilingNames() []string {
	var names []string
	for _, c := range ceilings {
		names = append(names, c.system)
	}
	return names
}

func (o options) runs(system string) bool { return len(o.systems) == 0 || o.systems[system] }

func redisFsync(mode string) string {
	if mode == "always" {
		return "always"
	}
	return "everysec"
}
