package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal/journaltest"
)

// scrape reads a node's /metrics with prometheus/common's text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return families
}

// value is the value of family's metric with exactly labels, and whether
// there is one.
func value(families map[string]*dto.MetricFamily, family string, labels map[string]string) (float64, bool) {
	f := families[family]
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if fmt.Sprint(got) != fmt.Sprint(labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetrics makes requests of every kind and result through a node
// process and reads its /metrics: the text parses, the request counters
// say exactly what was asked by operation, API and code, the latency
// histograms counted every request, and the journal, update and memory
// metrics follow; the embedded server's own monitoring answers on
// --nats-monitor.
func TestMetrics(t *testing.T) {
	httpAddr, monitor := freeAddr(t), freeAddr(t)
	p := startProc(t, "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--http", httpAddr, "--nats-monitor", monitor)
	ctx := context.Background()
	nc := journaltest.ConnectURL(t, p.url)
	// A subscriber, so that the node publishes the updates.
	sub, err := nc.SubscribeSync("tally.v1.updates.>")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	flood, err := client.New(nc, "flood", client.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.NewAdmin(nc, client.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	limited := 0
	for i := range 21 {
		if _, err := flood.IncreaseGroupCounter(ctx, fmt.Sprintf("m%d", i%3), "n", 1); errors.Is(err, client.ErrRateLimited) {
			limited++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if limited != 1 {
		t.Fatalf("%d of 21 writes refused, want 1", limited)
	}
	if _, err := admin.SetGroupCounters(ctx, "m0", map[string]int64{"a": 1, "b": 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.GetGroupCounters(ctx, "m0"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct{ subject, payload string }{
		{"tally.v1.admin.increase", `{"groupID":"m0","key":"n"}`},            // no value: 10004
		{"tally.v1.admin.increase", `{"groupID":"a.b","key":"n","value":1}`}, // 10015
		{"tally.v1.admin.get", `[]`},                                         // 10004
	} {
		if _, err := nc.Request(bad.subject, []byte(bad.payload), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	m := scrape(t, httpAddr)
	for _, c := range []struct {
		op, api, code string
		want          float64
	}{
		{"increase", "user", "ok", 20},
		{"increase", "user", "2996", 1},
		{"set", "admin", "ok", 1},
		{"get", "admin", "ok", 1},
		{"increase", "admin", "10004", 1},
		{"increase", "admin", "10015", 1},
		{"get", "admin", "10004", 1},
		{"decrease", "user", "ok", 0},
	} {
		got, _ := value(m, "tally_requests_total", map[string]string{"op": c.op, "api": c.api, "code": c.code})
		if got != c.want {
			t.Errorf("tally_requests_total{op=%s,api=%s,code=%s} = %v, want %v", c.op, c.api, c.code, got, c.want)
		}
	}
	if got, _ := value(m, "tally_request_duration_seconds", map[string]string{"op": "increase", "api": "user"}); got != 21 {
		t.Errorf("the user increases' latency histogram counted %v requests, want 21", got)
	}
	appends, _ := value(m, "tally_journal_appends_total", map[string]string{"result": "ok"})
	if appends < 1 || appends > 21 {
		t.Errorf("tally_journal_appends_total{result=ok} = %v, want 1..21 for 21 writes", appends)
	}
	if got, _ := value(m, "tally_journal_calls_per_append", map[string]string{}); got != appends {
		t.Errorf("calls per append observed %v appends, want %v", got, appends)
	}
	if f := m["tally_journal_calls_per_append"]; f == nil || len(f.GetMetric()) != 1 {
		t.Errorf("calls per append: %v, want one histogram", f)
	} else if sum := f.GetMetric()[0].GetHistogram().GetSampleSum(); sum != 21 {
		t.Errorf("calls per append sum to %v, want the 21 writes", sum)
	}
	// Updates: 20 increases and a set of two keys.
	if got, _ := value(m, "tally_updates_published_total", map[string]string{}); got != 22 {
		t.Errorf("tally_updates_published_total = %v, want 22", got)
	}
	if got, _ := value(m, "tally_groups_active", map[string]string{}); got < 1 || got > 3 {
		t.Errorf("tally_groups_active = %v, want 1..3", got)
	}
	if got, _ := value(m, "tally_request_ids", map[string]string{}); got != 21 {
		t.Errorf("tally_request_ids = %v, want the 21 writes' (the client gives each an ID)", got)
	}
	if got, ok := value(m, "tally_requests_in_flight", map[string]string{}); !ok || got != 0 {
		t.Errorf("tally_requests_in_flight = %v (%v), want 0", got, ok)
	}
	// The embedded server's own monitoring.
	resp, err := http.Get("http://" + monitor + "/jsz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jsz struct {
		Streams int `json:"streams"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jsz); err != nil || jsz.Streams < 1 {
		t.Errorf("--nats-monitor /jsz: %v, %+v", err, jsz)
	}
	if !strings.Contains(fmt.Sprint(m["go_goroutines"]), "gauge") {
		t.Error("/metrics lacks the Go runtime's metrics")
	}
}
