package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/messages"
)

// dashboardPanel is what the picture takes of a Grafana panel.
type dashboardPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr   string `json:"expr"`
		Legend string `json:"legendFormat"`
	} `json:"targets"`
}

// series is one line of a panel.
type series struct {
	name   string
	points [][2]float64 // unix seconds, value
}

// dashboard runs a node with --http under w1, w2 and w3 (and one user
// over its rate limit) while Debian's Prometheus scrapes it every second,
// then draws every panel of deploy/monitoring/tally-dashboard.json from
// Prometheus's series into path: the dashboard over a real run, without
// Grafana (which Debian does not package).
func (b *bench) dashboard(ctx context.Context, path string) error {
	raw, err := os.ReadFile("deploy/monitoring/tally-dashboard.json")
	if err != nil {
		return err
	}
	var dash struct {
		Panels []dashboardPanel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		if err := installDebian("prometheus", "prometheus"); err != nil {
			return err
		}
		if promBin, err = exec.LookPath("prometheus"); err != nil {
			return err
		}
	}
	httpPort, err := freePort()
	if err != nil {
		return err
	}
	dir := b.dir("dashboard")
	node, err := startServing("tally", exec.Command(b.tallyBin, "--data", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0",
		"--http", fmt.Sprintf("127.0.0.1:%d", httpPort), "--log-level", "warn"), "tally: serving on ")
	if err != nil {
		return err
	}
	defer node.stop()
	promPort, err := freePort()
	if err != nil {
		return err
	}
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`global: {scrape_interval: 1s}
scrape_configs:
  - job_name: tally
    metrics_path: /metrics
    static_configs: [{targets: ["127.0.0.1:%d"]}]
`, httpPort)), 0o644); err != nil {
		return err
	}
	prom, err := start("prometheus", exec.Command(promBin, "--config.file", conf, "--storage.tsdb.path", filepath.Join(dir, "tsdb"),
		"--web.listen-address", fmt.Sprintf("127.0.0.1:%d", promPort)))
	if err != nil {
		return err
	}
	defer prom.stop()
	if err := waitTCP(prom, promPort); err != nil {
		return err
	}
	c, err := newTallyClient(node.url, b.o.workers)
	if err != nil {
		return err
	}
	defer c.close()
	// A subscriber to every group's updates, so that the node publishes.
	watch, err := nats.Connect(node.url)
	if err != nil {
		return err
	}
	defer watch.Close()
	if _, err := watch.Subscribe("tally.v1.updates.>", func(*nats.Msg) {}); err != nil {
		return err
	}
	if err := watch.Flush(); err != nil {
		return err
	}
	from := time.Now()
	for _, w := range []string{"w1", "w2", "w3"} {
		b.logf("dashboard: %s for %v ...", w, 3*b.o.duration)
		runFor(b.o.workers, 0, 3*b.o.duration, node.pid(), c.workload(w))
		// One user past its limit, so that the errors panel shows 2996.
		for range 40 {
			c.call(0, c.subj["increase"][0], &messages.ChangeRequest{GroupId: "dashboard", Key: "k", Value: 1})
		}
	}
	time.Sleep(3 * time.Second) // the last scrapes, not synchronisation
	to := time.Now()
	api := fmt.Sprintf("http://127.0.0.1:%d/api/v1/query_range", promPort)
	var panels [][]series
	for _, p := range dash.Panels {
		var lines []series
		for _, t := range p.Targets {
			// Grafana's variables, as the picture's 1 s scrapes want them.
			expr := strings.NewReplacer(`instance=~"$instance"`, `instance=~".*"`, "$__rate_interval", "5s").Replace(t.Expr)
			s, err := queryRange(ctx, api, expr, t.Legend, from, to)
			if err != nil {
				return fmt.Errorf("panel %q: %w", p.Title, err)
			}
			for _, l := range s {
				if !allZero(l) {
					lines = append(lines, l)
				}
			}
		}
		panels = append(panels, lines)
	}
	return drawDashboard(path, dash.Panels, panels, from, to)
}

// queryRange asks Prometheus for expr's series over [from, to], each
// named by legend with its labels filled in.
func queryRange(ctx context.Context, api, expr, legend string, from, to time.Time) ([]series, error) {
	q := url.Values{"query": {expr}, "start": {strconv.FormatInt(from.Unix(), 10)}, "end": {strconv.FormatInt(to.Unix(), 10)}, "step": {"1"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("prometheus: %s", r.Error)
	}
	var out []series
	for _, res := range r.Data.Result {
		name := legend
		for k, v := range res.Metric {
			name = strings.ReplaceAll(name, "{{"+k+"}}", v)
		}
		s := series{name: name}
		for _, v := range res.Values {
			t, _ := v[0].(float64)
			str, _ := v[1].(string)
			f, err := strconv.ParseFloat(str, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				continue
			}
			s.points = append(s.points, [2]float64{t, f})
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func allZero(s series) bool {
	for _, p := range s.points {
		if p[1] != 0 {
			return false
		}
	}
	return true
}

var lineColors = []color.RGBA{
	{0x2b, 0x6c, 0xb0, 0xff}, {0xc0, 0x39, 0x2b, 0xff}, {0x27, 0xae, 0x60, 0xff}, {0x8e, 0x44, 0xad, 0xff},
	{0xd3, 0x54, 0x00, 0xff}, {0x16, 0xa0, 0x85, 0xff}, {0x7f, 0x8c, 0x8d, 0xff}, {0xf1, 0xc4, 0x0f, 0xff},
}

// drawDashboard draws the panels two by two, each a line chart of its
// series over [from, to].
func drawDashboard(path string, meta []dashboardPanel, panels [][]series, from, to time.Time) error {
	const panelW, panelH, cols = 600, 260, 2
	rows := (len(panels) + cols - 1) / cols
	img := image.NewRGBA(image.Rect(0, 0, cols*panelW, rows*panelH+30))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	text(img, 10, 18, fmt.Sprintf("tally dashboard (deploy/monitoring/tally-dashboard.json) over %v of w1, w2, w3: one node, Prometheus scraping every second", to.Sub(from).Round(time.Second)), color.Black)
	for i, lines := range panels {
		x0, y0 := (i%cols)*panelW, 30+(i/cols)*panelH
		drawPanel(img, x0, y0, panelW, panelH, meta[i].Title, lines, from, to)
	}
	return writePNG(path, img)
}

func drawPanel(img *image.RGBA, x0, y0, w, h int, title string, lines []series, from, to time.Time) {
	const left, right, top, bottom = 60, 10, 22, 40
	text(img, x0+left, y0+14, title, color.Black)
	px0, px1, py0, py1 := x0+left, x0+w-right, y0+top, y0+h-bottom
	frame := color.RGBA{0xbb, 0xbb, 0xbb, 0xff}
	for x := px0; x <= px1; x++ {
		img.Set(x, py1, frame)
	}
	for y := py0; y <= py1; y++ {
		img.Set(px0, y, frame)
	}
	hi := 0.0
	for _, s := range lines {
		for _, p := range s.points {
			hi = max(hi, p[1])
		}
	}
	if hi == 0 {
		hi = 1
	}
	text(img, px0-len(short3(hi))*7-4, py0+8, short3(hi), color.Black)
	text(img, px0-11, py1, "0", color.Black)
	t0, t1 := float64(from.Unix()), float64(to.Unix())
	for j, s := range lines {
		c := lineColors[j%len(lineColors)]
		prevX, prevY := -1, -1
		for _, p := range s.points {
			x := px0 + int((p[0]-t0)/(t1-t0)*float64(px1-px0))
			y := py1 - int(p[1]/hi*float64(py1-py0))
			if prevX >= 0 {
				segment(img, prevX, prevY, x, y, c)
			}
			prevX, prevY = x, y
		}
		lx := x0 + left + (j%3)*180
		ly := y0 + h - 22 + (j/3)*12
		draw.Draw(img, image.Rect(lx, ly-8, lx+10, ly), &image.Uniform{c}, image.Point{}, draw.Src)
		name := s.name
		if len(name) > 22 {
			name = name[:22]
		}
		text(img, lx+14, ly, name, color.Black)
	}
	if len(lines) == 0 {
		text(img, px0+10, (py0+py1)/2, "nothing but zeros over the run", color.Gray{0x88})
	}
}

// short3 labels an axis with three significant figures.
func short3(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}

// segment draws a line from (x0,y0) to (x1,y1).
func segment(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	steps := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= steps; i++ {
		img.Set(x0+(x1-x0)*i/steps, y0+(y1-y0)*i/steps, c)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
