package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

type bench struct {
	o        options
	round    int // the round being measured, from 0
	tmp      string
	tallyBin string
	natsBin  string
	echoBin  string
	log      io.Writer
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, format+"\n", args...)
}

func (b *bench) dir(name string) string {
	d, err := os.MkdirTemp(b.tmp, name+"-")
	if err != nil {
		panic(err)
	}
	return d
}

var workloads = []string{"w1", "w2", "w3"}

// workloadsOf lists the workloads a pattern runs: w1-w3 for clients with
// one call in flight, w1 for the service patterns (-workloads filters
// both).
func (b *bench) workloadsOf(p pattern) []string {
	wls := workloads
	if p.service() {
		wls = wls[:1]
	}
	var out []string
	for _, w := range wls {
		if b.o.wants(w) {
			out = append(out, w)
		}
	}
	return out
}

// ceilings are natsecho's modes, each a system of the run.
var ceilings = []struct{ system, sync, mode string }{
	{"nats-echo", "none", "echo"},
	{"nats-echo-journal", "interval", "journal"},
	{"nats-echo-batched-journal", "interval", "batched-journal"},
	{"nats-echo-atomic-journal", "interval", "atomic-journal"},
	{"nats-echo-fenced-journal", "interval", "fenced-journal"},
}

func skipped(p pattern, system, sync, workload string, err error) result {
	return result{Pattern: p.String(), System: system, Sync: sync, Workload: workload, Skipped: err.Error()}
}

// tally measures a node on wls with pattern p, and with cold w4 after a
// restart.
func (b *bench) tally(p pattern, sync string, wls []string, cold bool) []result {
	var rows []result
	data := filepath.Join(b.dir("tally"), "data")
	node, err := startTally(b.tallyBin, data, sync, b.profiling())
	if err != nil {
		return append(rows, skipped(p, "tally", sync, "all", err))
	}
	c, err := newTallyClient(node.url, p.conns)
	if err != nil {
		node.stop()
		return append(rows, skipped(p, "tally", sync, "all", err))
	}
	for _, w := range wls {
		b.logf("%s tally --sync=%s %s ...", p, sync, w)
		profile := fmt.Sprintf("tally-%s-%s-%s", p, sync, w)
		stopProfile := b.startProfile(node, profile)
		r := runFor(p.callers(), b.o.warmup, b.o.duration, node.pid(), c.workload(w))
		stopProfile()
		b.heapProfile(node, profile) // what is live at the end
		r.Pattern, r.System, r.Sync, r.Workload = p.String(), "tally", sync, w
		rows = append(rows, r)
	}
	if !cold || !b.o.wants("w4") {
		c.close()
		node.stop()
		return rows
	}
	b.logf("%s tally --sync=%s w4: writing %d groups ...", p, sync, b.o.coldGroups)
	err = c.fill("w4-", b.o.coldGroups, 1)
	c.close()
	node.stop()
	if err != nil {
		return append(rows, skipped(p, "tally", sync, "w4", err))
	}
	node, err = startTally(b.tallyBin, data, sync, b.profiling())
	if err != nil {
		return append(rows, skipped(p, "tally", sync, "w4", err))
	}
	defer node.stop()
	if c, err = newTallyClient(node.url, p.conns); err != nil {
		return append(rows, skipped(p, "tally", sync, "w4", err))
	}
	defer c.close()
	b.logf("%s tally --sync=%s w4: first get of %d groups after a restart ...", p, sync, b.o.coldGroups)
	stopProfile := b.startProfile(node, fmt.Sprintf("tally-%s-%s-w4", p, sync))
	r := runN(p.callers(), uint64(b.o.coldGroups), node.pid(), c.coldGets("w4-", b.o.coldGroups))
	stopProfile()
	r.Pattern, r.System, r.Sync, r.Workload = p.String(), "tally", sync, "w4"
	return append(rows, r)
}

// redis measures Redis with Lua on wls with pattern p, and with cold w4
// after a restart.
func (b *bench) redis(p pattern, fsync string, wls []string, cold bool) []result {
	var rows []result
	dir := b.dir("redis")
	srv, err := startRedis(dir, fsync)
	if err != nil {
		return append(rows, skipped(p, "redis+lua", fsync, "all", err))
	}
	c, err := newRedisClient(srv.url, p)
	if err != nil {
		srv.stop()
		return append(rows, skipped(p, "redis+lua", fsync, "all", err))
	}
	for _, w := range wls {
		b.logf("%s redis appendfsync %s %s ...", p, fsync, w)
		r := runFor(p.callers(), b.o.warmup, b.o.duration, srv.pid(), c.workload(w))
		r.Pattern, r.System, r.Sync, r.Workload = p.String(), "redis+lua", fsync, w
		rows = append(rows, r)
	}
	if !cold || !b.o.wants("w4") {
		c.close()
		srv.stop()
		return rows
	}
	b.logf("%s redis appendfsync %s w4: writing %d groups ...", p, fsync, b.o.coldGroups)
	err = c.fill("w4-", b.o.coldGroups, 1)
	c.close()
	srv.stop()
	if err != nil {
		return append(rows, skipped(p, "redis+lua", fsync, "w4", err))
	}
	if srv, err = startRedis(dir, fsync); err != nil {
		return append(rows, skipped(p, "redis+lua", fsync, "w4", err))
	}
	defer srv.stop()
	if c, err = newRedisClient(srv.url, p); err != nil {
		return append(rows, skipped(p, "redis+lua", fsync, "w4", err))
	}
	defer c.close()
	r := runN(p.callers(), uint64(b.o.coldGroups), srv.pid(), c.coldGets("w4-"))
	r.Pattern, r.System, r.Sync, r.Workload = p.String(), "redis+lua", fsync, "w4"
	return append(rows, r)
}

// nats measures JetStream's native counters on the workloads of wls they
// can run (w1, w2) with pattern p.
func (b *bench) nats(p pattern, sync string, wls []string) []result {
	var rows []result
	srv, err := startNATS(b.natsBin, b.dir("nats"), sync)
	if err != nil {
		return append(rows, skipped(p, "nats-counters", sync, "all", err))
	}
	defer srv.stop()
	c, err := newNATSCounters(srv.url, p.conns)
	if err != nil {
		return append(rows, skipped(p, "nats-counters", sync, "all", err))
	}
	defer c.close()
	for _, w := range wls {
		if w != "w1" && w != "w2" {
			continue
		}
		b.logf("%s nats counters sync %s %s ...", p, sync, w)
		r := runFor(p.callers(), b.o.warmup, b.o.duration, srv.pid(), c.workload(w))
		r.Pattern, r.System, r.Sync, r.Workload = p.String(), "nats-counters", sync, w
		rows = append(rows, r)
	}
	return rows
}

// ceilingWorkloads are those of wls the ceilings run: w1 and w3 (uniform
// and mixed), not w2, whose one hot group tally serves by gathering its
// commands into one append while the ceilings append each request.
func ceilingWorkloads(wls []string) []string {
	var out []string
	for _, w := range wls {
		if w == "w1" || w == "w3" {
			out = append(out, w)
		}
	}
	return out
}

// echo drives a ceiling (a mode of natsecho) with tally's requests of
// workloads wls and pattern p: the same client, subjects and payloads.
// Every mode answers a get at once, as tally answers it from memory;
// nats-echo answers a change at once too; the journals answer it once it
// is appended to a JetStream stream, fsynced every second as tally's
// --sync=interval: one append per request, or the requests gathered
// meanwhile as one message or as one atomic batch on their groups'
// subjects.
func (b *bench) echo(p pattern, system, sync, mode string, wls []string) []result {
	var rows []result
	srv, err := startEcho(b.echoBin, "-mode", mode)
	if err != nil {
		for _, w := range wls {
			rows = append(rows, skipped(p, system, sync, w, err))
		}
		return rows
	}
	defer srv.stop()
	c, err := newTallyClient(srv.url, p.conns)
	if err != nil {
		for _, w := range wls {
			rows = append(rows, skipped(p, system, sync, w, err))
		}
		return rows
	}
	defer c.close()
	for _, w := range wls {
		b.logf("%s %s %s ...", p, system, w)
		r := runFor(p.callers(), b.o.warmup, b.o.duration, srv.pid(), c.workload(w))
		r.Pattern, r.System, r.Sync, r.Workload = p.String(), system, sync, w
		rows = append(rows, r)
	}
	return rows
}
