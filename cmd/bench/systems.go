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

func skipped(system, sync, workload string, err error) result {
	return result{System: system, Sync: sync, Workload: workload, Skipped: err.Error()}
}

func (b *bench) tally(sync string, cold bool) []result {
	var rows []result
	data := filepath.Join(b.dir("tally"), "data")
	node, err := startTally(b.tallyBin, data, sync, b.profiling())
	if err != nil {
		return append(rows, skipped("tally", sync, "all", err))
	}
	c, err := newTallyClient(node.url, b.o.workers)
	if err != nil {
		node.stop()
		return append(rows, skipped("tally", sync, "all", err))
	}
	for _, w := range workloads {
		if !b.o.wants(w) {
			continue
		}
		b.logf("tally --sync=%s %s ...", sync, w)
		profile := fmt.Sprintf("tally-%s-%s", sync, w)
		stopProfile := b.startProfile(node, profile)
		r := runFor(b.o.workers, b.o.warmup, b.o.duration, node.pid(), c.workload(w))
		stopProfile()
		b.heapProfile(node, profile) // what is live at the end
		r.System, r.Sync, r.Workload = "tally", sync, w
		rows = append(rows, r)
	}
	if !cold || !b.o.wants("w4") {
		c.close()
		node.stop()
		return rows
	}
	b.logf("tally --sync=%s w4: writing %d groups ...", sync, b.o.coldGroups)
	err = c.fill("w4-", b.o.coldGroups, 1)
	c.close()
	node.stop()
	if err != nil {
		return append(rows, skipped("tally", sync, "w4", err))
	}
	node, err = startTally(b.tallyBin, data, sync, b.profiling())
	if err != nil {
		return append(rows, skipped("tally", sync, "w4", err))
	}
	defer node.stop()
	if c, err = newTallyClient(node.url, b.o.workers); err != nil {
		return append(rows, skipped("tally", sync, "w4", err))
	}
	defer c.close()
	b.logf("tally --sync=%s w4: first get of %d groups after a restart ...", sync, b.o.coldGroups)
	stopProfile := b.startProfile(node, fmt.Sprintf("tally-%s-w4", sync))
	r := runN(b.o.workers, uint64(b.o.coldGroups), node.pid(), c.coldGets("w4-", b.o.coldGroups))
	stopProfile()
	r.System, r.Sync, r.Workload = "tally", sync, "w4"
	return append(rows, r)
}

func (b *bench) redis(fsync string, cold bool) []result {
	var rows []result
	dir := b.dir("redis")
	srv, err := startRedis(dir, fsync)
	if err != nil {
		return append(rows, skipped("redis+lua", fsync, "all", err))
	}
	c, err := newRedisClient(srv.url, b.o.workers)
	if err != nil {
		srv.stop()
		return append(rows, skipped("redis+lua", fsync, "all", err))
	}
	for _, w := range workloads {
		if !b.o.wants(w) {
			continue
		}
		b.logf("redis appendfsync %s %s ...", fsync, w)
		r := runFor(b.o.workers, b.o.warmup, b.o.duration, srv.pid(), c.workload(w))
		r.System, r.Sync, r.Workload = "redis+lua", fsync, w
		rows = append(rows, r)
	}
	if !cold || !b.o.wants("w4") {
		c.close()
		srv.stop()
		return rows
	}
	b.logf("redis appendfsync %s w4: writing %d groups ...", fsync, b.o.coldGroups)
	err = c.fill("w4-", b.o.coldGroups, 1)
	c.close()
	srv.stop()
	if err != nil {
		return append(rows, skipped("redis+lua", fsync, "w4", err))
	}
	if srv, err = startRedis(dir, fsync); err != nil {
		return append(rows, skipped("redis+lua", fsync, "w4", err))
	}
	defer srv.stop()
	if c, err = newRedisClient(srv.url, b.o.workers); err != nil {
		return append(rows, skipped("redis+lua", fsync, "w4", err))
	}
	defer c.close()
	r := runN(b.o.workers, uint64(b.o.coldGroups), srv.pid(), c.coldGets("w4-"))
	r.System, r.Sync, r.Workload = "redis+lua", fsync, "w4"
	return append(rows, r)
}

func (b *bench) nats(sync string) []result {
	var rows []result
	srv, err := startNATS(b.natsBin, b.dir("nats"), sync)
	if err != nil {
		return append(rows, skipped("nats-counters", sync, "all", err))
	}
	defer srv.stop()
	c, err := newNATSCounters(srv.url, b.o.workers)
	if err != nil {
		return append(rows, skipped("nats-counters", sync, "all", err))
	}
	defer c.close()
	for _, w := range []string{"w1", "w2"} {
		if !b.o.wants(w) {
			continue
		}
		b.logf("nats counters sync %s %s ...", sync, w)
		r := runFor(b.o.workers, b.o.warmup, b.o.duration, srv.pid(), c.workload(w))
		r.System, r.Sync, r.Workload = "nats-counters", sync, w
		rows = append(rows, r)
	}
	return rows
}

// echo drives natsecho, the ceilings of request/reply, with tally's w1
// requests: the same client, subjects and payloads. nats-echo answers at
// once; nats-echo-journal answers once the request is appended to a
// JetStream stream, fsynced every second as tally's --sync=interval.
func (b *bench) echo() []result {
	if !b.o.wants("w1") {
		return nil
	}
	var rows []result
	for _, e := range []struct {
		system, sync string
		args         []string
	}{
		{"nats-echo", "none", nil},
		{"nats-echo-journal", "interval", []string{"-mode", "journal"}},
	} {
		rows = append(rows, b.echoOne(e.system, e.sync, e.args))
	}
	return rows
}

func (b *bench) echoOne(system, sync string, args []string) result {
	srv, err := startEcho(b.echoBin, args...)
	if err != nil {
		return skipped(system, sync, "w1", err)
	}
	defer srv.stop()
	c, err := newTallyClient(srv.url, b.o.workers)
	if err != nil {
		return skipped(system, sync, "w1", err)
	}
	defer c.close()
	b.logf("%s w1 ...", system)
	r := runFor(b.o.workers, b.o.warmup, b.o.duration, srv.pid(), c.workload("w1"))
	r.System, r.Sync, r.Workload = system, sync, "w1"
	return r
}
