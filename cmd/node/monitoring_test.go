package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal/journaltest"
)

// healthURL finds the address a node's --http serves on in its log.
var healthURL = regexp.MustCompile(`msg="serving health" url=http://(\S+)/readyz`)

func httpAddrOf(t *testing.T, p *proc) string {
	t.Helper()
	var addr string
	journaltest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		m := healthURL.FindStringSubmatch(p.stderr.String())
		if m == nil {
			return fmt.Errorf("no health address in the log yet")
		}
		addr = m[1]
		return nil
	})
	return addr
}

// TestMonitoringConfigs parses deploy/monitoring's Prometheus scrape
// configuration and Grafana dashboard, and checks that every metric the
// dashboard queries is one that nodes serve: scraped from a three-node
// cluster under writes (the cluster's metrics) and a node with
// --sync=always (its fsyncs).
func TestMonitoringConfigs(t *testing.T) {
	b, err := os.ReadFile("../../deploy/monitoring/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		ScrapeConfigs []struct {
			JobName     string `yaml:"job_name"`
			MetricsPath string `yaml:"metrics_path"`
			Static      []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &prom); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	if len(prom.ScrapeConfigs) != 1 || prom.ScrapeConfigs[0].JobName != "tally" || prom.ScrapeConfigs[0].MetricsPath != "/metrics" ||
		len(prom.ScrapeConfigs[0].Static) == 0 || len(prom.ScrapeConfigs[0].Static[0].Targets) == 0 {
		t.Errorf("prometheus.yml scrapes %+v, want job tally on /metrics with a target", prom.ScrapeConfigs)
	}
	b, err = os.ReadFile("../../deploy/monitoring/tally-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("tally-dashboard.json: %v", err)
	}
	names := map[string]bool{}
	metric := regexp.MustCompile(`\b((?:tally|process|go)_[a-z_]+?)(?:_bucket|_sum|_count)?\b`)
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range metric.FindAllStringSubmatch(tg.Expr, -1) {
				names[m[1]] = true
			}
		}
	}
	if len(names) < 10 {
		t.Fatalf("the dashboard queries only %v", names)
	}

	c := startCluster(t, 3, false, "--http", "127.0.0.1:0")
	single := startProc(t, "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--sync", "always")
	addrs := []string{httpAddrOf(t, single)}
	for _, m := range c.members {
		addrs = append(addrs, httpAddrOf(t, m.p))
	}
	ctx := context.Background()
	for i := range c.members {
		u, err := client.New(c.connect(i), fmt.Sprintf("u%d", i))
		if err != nil {
			t.Fatal(err)
		}
		for g := range 10 {
			if _, err := u.IncreaseGroupCounter(ctx, fmt.Sprintf("g%d", g), "n", 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	one, err := client.NewAdmin(journaltest.ConnectURL(t, single.url))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := one.IncreaseGroupCounter(ctx, "g", "n", 1); err != nil {
		t.Fatal(err)
	}
	// Lease renewals come every second: scrape until every name shows.
	journaltest.CheckFor(t, 15*time.Second, 200*time.Millisecond, func() error {
		served := map[string]bool{}
		for _, a := range addrs {
			for name := range scrape(t, a) {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					name = strings.TrimSuffix(name, suffix)
				}
				served[name] = true
			}
		}
		var missing []string
		for n := range names {
			if !served[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			return fmt.Errorf("the dashboard queries metrics no node serves: %v", missing)
		}
		return nil
	})
}
