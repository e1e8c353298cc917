package main

import (
	"errors"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// errRefused marks an operation the system refused by its rate limit: it is
// counted apart, never as throughput.
var errRefused = errors.New("refused by the rate limit")

// op performs operation n (numbered from 0 across all workers) on worker w.
type op func(w int, n uint64) error

// result is one row of the report.
type result struct {
	Pattern  string  `json:"pattern"` // connections x calls in flight per connection
	System   string  `json:"system"`
	Sync     string  `json:"sync"`
	Workload string  `json:"workload"`
	Ops      int64   `json:"ops"`
	Seconds  float64 `json:"seconds"`
	OpsPerS  float64 `json:"ops_per_s"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	P999ms   float64 `json:"p999_ms"`
	CPUPerM  float64 `json:"cpu_s_per_million_ops"`
	// With several processes (the nodes of a cluster): each one's CPU per
	// call, in the order they were given.
	ProcCPUPerM []float64 `json:"cpu_s_per_million_ops_by_process,omitempty"`
	// The load generator's CPU per call (this process, every client
	// connection): it shares the cores with the system under test.
	ClientCPUPerM float64 `json:"client_cpu_s_per_million_ops"`
	PeakRSS       int64   `json:"peak_rss_bytes"`
	Refused       int64   `json:"refused"`
	Failed        int64   `json:"failed"`
	FirstErr      string  `json:"first_error,omitempty"`
	Skipped       string  `json:"skipped,omitempty"`
	Ratio         float64 `json:"tally_ratio,omitempty"` // tally's ops/s over this row's, in the same pattern; with rounds, the median of RoundsRatio
	// With several rounds: each round's ops/s and tally/peer ratio, in
	// the order the rounds ran.
	RoundsOpsPerS []float64 `json:"rounds_ops_per_s,omitempty"`
	RoundsRatio   []float64 `json:"rounds_tally_ratio,omitempty"`
}

// recorder collects one measurement.
type recorder struct {
	mu        sync.Mutex
	latencies []time.Duration
	refused   atomic.Int64
	failed    atomic.Int64
	firstErr  atomic.Value
}

func (r *recorder) fail(err error) {
	if errors.Is(err, errRefused) {
		r.refused.Add(1)
	} else {
		r.failed.Add(1)
	}
	r.firstErr.CompareAndSwap(nil, err.Error())
}

// runFor runs op on workers for warmup and then dur, and measures the
// operations that complete within dur. server is the process under test.
func runFor(workers int, warmup, dur time.Duration, server int, do op) result {
	return runForAll(workers, warmup, dur, []int{server}, do)
}

// runForAll is runFor on a system of several processes: its CPU time is
// theirs summed (and, with more than one, each one's apart), its peak
// memory the sum of their peaks.
func runForAll(workers int, warmup, dur time.Duration, servers []int, do op) result {
	return runForAllAt(workers, warmup, dur, servers, do, 0)
}

// runForAllAt is runForAll with the workers starting rate calls a second
// together (see pacer); 0 is as fast as the system answers.
func runForAllAt(workers int, warmup, dur time.Duration, servers []int, do op, rate float64) result {
	var pace func(w int)
	if rate > 0 {
		pace = pacer(workers, rate)
	}
	var next atomic.Uint64
	rec := &recorder{}
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(dur)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 1<<16)
			for {
				if pace != nil {
					pace(w)
				}
				t := time.Now()
				if t.After(end) {
					break
				}
				err := do(w, next.Add(1)-1)
				done := time.Now()
				if done.Before(measureFrom) || done.After(end) {
					continue
				}
				if err != nil {
					rec.fail(err)
					continue
				}
				lat = append(lat, done.Sub(t))
			}
			rec.mu.Lock()
			rec.latencies = append(rec.latencies, lat...)
			rec.mu.Unlock()
		})
	}
	cpu, self, peak := window(servers, measureFrom, end)
	wg.Wait()
	res := rec.result(dur, sum(cpu), self, peak)
	if len(servers) > 1 && res.Ops > 0 {
		for _, c := range cpu {
			res.ProcCPUPerM = append(res.ProcCPUPerM, c/float64(res.Ops)*1e6)
		}
	}
	return res
}

// window waits for the measurement, from measureFrom to end, and returns
// the CPU seconds each server and this process spent in it and the
// servers' summed peak memory.
func window(servers []int, measureFrom, end time.Time) (cpu []float64, self float64, peak int64) {
	time.Sleep(time.Until(measureFrom)) // the warm-up, not synchronisation
	cpu0, self0 := cpuOf(servers), cpuSeconds(os.Getpid())
	for _, pid := range servers {
		resetPeakRSS(pid)
	}
	time.Sleep(time.Until(end))
	cpu1, self1 := cpuOf(servers), cpuSeconds(os.Getpid())
	for _, pid := range servers {
		_, p := memory(pid)
		peak += p
	}
	for i := range cpu1 {
		cpu1[i] -= cpu0[i]
	}
	return cpu1, self1 - self0, peak
}

// cpuOf reads the CPU seconds of each process.
func cpuOf(pids []int) []float64 {
	out := make([]float64, len(pids))
	for i, pid := range pids {
		out[i] = cpuSeconds(pid)
	}
	return out
}

func sum(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s
}

// runN runs operations 0..n-1 on workers and measures them all.
func runN(workers int, n uint64, server int, do op) result {
	var next atomic.Uint64
	rec := &recorder{}
	cpu0, self0 := cpuSeconds(server), cpuSeconds(os.Getpid())
	resetPeakRSS(server)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var lat []time.Duration
			for {
				i := next.Add(1) - 1
				if i >= n {
					break
				}
				t := time.Now()
				if err := do(w, i); err != nil {
					rec.fail(err)
					continue
				}
				lat = append(lat, time.Since(t))
			}
			rec.mu.Lock()
			rec.latencies = append(rec.latencies, lat...)
			rec.mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	_, peak := memory(server)
	return rec.result(elapsed, cpuSeconds(server)-cpu0, cpuSeconds(os.Getpid())-self0, peak)
}

// result reports the latencies recorded over d, with the CPU seconds the
// system under test and the load generator spent meanwhile.
func (r *recorder) result(d time.Duration, cpu, clientCPU float64, peak int64) result {
	slices.Sort(r.latencies)
	ops := int64(len(r.latencies))
	res := result{
		Ops:     ops,
		Seconds: d.Seconds(),
		OpsPerS: float64(ops) / d.Seconds(),
		P50ms:   quantile(r.latencies, 0.50),
		P99ms:   quantile(r.latencies, 0.99),
		P999ms:  quantile(r.latencies, 0.999),
		PeakRSS: peak,
		Refused: r.refused.Load(),
		Failed:  r.failed.Load(),
	}
	if ops > 0 {
		res.CPUPerM = cpu / float64(ops) * 1e6
		res.ClientCPUPerM = clientCPU / float64(ops) * 1e6
	}
	if e, ok := r.firstErr.Load().(string); ok {
		res.FirstErr = e
	}
	return res
}

func quantile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(q*float64(len(sorted))), len(sorted)-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}

// pacer returns what a worker calls before each call so that workers
// together start about rate calls a second, as an application's steady
// load would, rather than as fast as the system answers: each worker
// starts one every workers/rate seconds, the workers staggered. A worker
// that falls behind goes on at once, but does not catch up in a burst.
func pacer(workers int, rate float64) func(w int) {
	gap := time.Duration(float64(workers) / rate * float64(time.Second))
	start := time.Now()
	next := make([]time.Time, workers) // each worker's own
	for w := range next {
		next[w] = start.Add(gap * time.Duration(w) / time.Duration(workers))
	}
	return func(w int) {
		time.Sleep(time.Until(next[w])) // the pace, not synchronisation
		next[w] = next[w].Add(gap)
		if now := time.Now(); next[w].Before(now) {
			next[w] = now
		}
	}
}

// idleCPU measures the CPU seconds a second each process spends over d
// without load.
func idleCPU(pids []int, d time.Duration) []float64 {
	cpu0 := cpuOf(pids)
	time.Sleep(d) // the measurement's window
	cpu1 := cpuOf(pids)
	for i := range cpu1 {
		cpu1[i] = (cpu1[i] - cpu0[i]) / d.Seconds()
	}
	return cpu1
}

// netOfIdle takes off r's CPU per call what its processes spend idle
// (idle: CPU seconds a second, each) over a measurement of dur.
func netOfIdle(r result, idle []float64, dur time.Duration) result {
	if r.Ops == 0 {
		return r
	}
	perCall := func(cpuPerSecond float64) float64 { return cpuPerSecond * dur.Seconds() / float64(r.Ops) * 1e6 }
	r.CPUPerM = max(0, r.CPUPerM-perCall(sum(idle)))
	for i := range r.ProcCPUPerM {
		r.ProcCPUPerM[i] = max(0, r.ProcCPUPerM[i]-perCall(idle[i]))
	}
	return r
}
