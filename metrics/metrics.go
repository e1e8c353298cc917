// Package metrics holds a node's Prometheus metrics (prometheus/
// client_golang) and serves them in the text exposition format. Every
// method of a nil *Metrics, and of a nil *Endpoint, records nothing, so
// that code paths need no check. The request path's counters are resolved
// once per endpoint and code, not per call.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tallyhq/tally/messages"
)

// Metrics are one node's.
type Metrics struct {
	reg            *prometheus.Registry
	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	appends        map[string]prometheus.Counter // by result
	appendLatency  prometheus.Histogram
	callsPerAppend prometheus.Histogram
	reloads        prometheus.Counter
	published      prometheus.Counter
	forwarded      *prometheus.CounterVec
	renewals       *prometheus.CounterVec
	leaderMoves    *prometheus.CounterVec
}

// New makes a node's metrics, with the Go runtime's and the process's.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_requests_total", Help: "Requests answered, by operation, API (user or admin) and result code (ok, or the contract's error code).",
	}, []string{"op", "api", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tally_request_duration_seconds", Help: "Time from taking a request to publishing its reply, by operation and API.",
		Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5},
	}, []string{"op", "api"})
	appends := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_journal_appends_total", Help: "Journal appends of the group actors, by result: ok, conflict (another writer appended first; the group reloads) or error.",
	}, []string{"result"})
	m.appends = map[string]prometheus.Counter{}
	for _, r := range []string{"ok", "conflict", "error"} {
		m.appends[r] = appends.WithLabelValues(r)
	}
	m.appendLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "tally_journal_append_duration_seconds", Help: "Time from sending an append to its acknowledgement.",
		Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2},
	})
	m.callsPerAppend = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "tally_journal_calls_per_append", Help: "Writes one journal append commits (the group commit).",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	})
	m.reloads = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tally_group_reloads_total", Help: "Groups reloaded from the journal after a conflict or a failed append.",
	})
	m.published = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tally_updates_published_total", Help: "Updates published on tally.v1.updates.<group>.",
	})
	m.forwarded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_forwarded_calls_total", Help: "Calls this node forwarded to another node of its cluster, by the forward's place on the call's way: hop 1 is a call's first forward, 2 its second (while a partition moves, or from an account without the servers' mapping of users' calls).",
	}, []string{"hop"})
	m.renewals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_lease_renewals_total", Help: "Lease renewals of this node's partitions, by result: ok, failed (tried again) or lost.",
	}, []string{"result"})
	m.leaderMoves = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_leader_moves_total", Help: "Step-downs of a journal shard stream's leader that this node asked for, by result: moved (to this node's server), elsewhere or failed.",
	}, []string{"result"})
	m.reg.MustRegister(m.requests, m.latency, appends, m.appendLatency, m.callsPerAppend, m.reloads, m.published, m.forwarded, m.renewals, m.leaderMoves)
	return m
}

// Handler serves the metrics, for /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Gauge registers a gauge read from f at every scrape.
func (m *Metrics) Gauge(name, help string, f func() float64) {
	if m != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
}

// Counter registers a counter read from f at every scrape.
func (m *Metrics) Counter(name, help string, f func() float64) {
	if m != nil {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
}

// codes are the results an endpoint's counters are resolved for ahead.
var codes = []messages.Code{messages.Code_CODE_RATE_LIMITED, messages.Code_CODE_INTERNAL, messages.Code_CODE_INVALID_PARAMETER,
	messages.Code_CODE_NOT_ALLOWED, messages.Code_CODE_INVALID_GROUP_ID}

// Endpoint records one endpoint's requests.
type Endpoint struct {
	ok      prometheus.Counter
	byCode  map[messages.Code]prometheus.Counter
	latency prometheus.Observer
	vec     *prometheus.CounterVec
	op, api string
}

// Endpoint returns the recorder of an operation's endpoint.
func (m *Metrics) Endpoint(op string, admin bool) *Endpoint {
	if m == nil {
		return nil
	}
	api := "user"
	if admin {
		api = "admin"
	}
	e := &Endpoint{ok: m.requests.WithLabelValues(op, api, "ok"), byCode: map[messages.Code]prometheus.Counter{},
		latency: m.latency.WithLabelValues(op, api), vec: m.requests, op: op, api: api}
	for _, c := range codes {
		e.byCode[c] = m.requests.WithLabelValues(op, api, strconv.Itoa(int(c)))
	}
	return e
}

// Done records a request answered after d with code (0: success).
func (e *Endpoint) Done(d time.Duration, code messages.Code) {
	if e == nil {
		return
	}
	e.latency.Observe(d.Seconds())
	if code == 0 {
		e.ok.Inc()
		return
	}
	c, ok := e.byCode[code]
	if !ok {
		c = e.vec.WithLabelValues(e.op, e.api, strconv.Itoa(int(code)))
	}
	c.Inc()
}

// Appended records a journal append of calls writes, acknowledged after
// d, with its result: "ok", "conflict" or "error".
func (m *Metrics) Appended(calls int, d time.Duration, result string) {
	if m == nil {
		return
	}
	m.appends[result].Inc()
	if result == "ok" {
		m.appendLatency.Observe(d.Seconds())
		m.callsPerAppend.Observe(float64(calls))
	}
}

// Reloaded records a group reloaded from the journal.
func (m *Metrics) Reloaded() {
	if m != nil {
		m.reloads.Inc()
	}
}

// Published records n updates published.
func (m *Metrics) Published(n int) {
	if m != nil {
		m.published.Add(float64(n))
	}
}

// Forwarded records a call forwarded to another node, its hop-th forward.
func (m *Metrics) Forwarded(hop uint32) {
	if m != nil {
		m.forwarded.WithLabelValues(strconv.FormatUint(uint64(hop), 10)).Inc()
	}
}

// Renewed records a lease renewal's result: "ok", "failed" or "lost".
func (m *Metrics) Renewed(result string) {
	if m != nil {
		m.renewals.WithLabelValues(result).Inc()
	}
}

// LeaderMoved records the result of a step-down this node asked of a
// journal shard stream's leader: "moved", "elsewhere" or "failed".
func (m *Metrics) LeaderMoved(result string) {
	if m != nil {
		m.leaderMoves.WithLabelValues(result).Inc()
	}
}
