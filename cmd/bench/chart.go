package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

var palette = map[string]color.RGBA{
	"tally":             {0x2b, 0x6c, 0xb0, 0xff},
	"redis+lua":         {0xc0, 0x39, 0x2b, 0xff},
	"nats-counters":     {0x27, 0xae, 0x60, 0xff},
	"nats-echo":         {0x95, 0xa5, 0xa6, 0xff},
	"nats-echo-journal": {0x5d, 0x6d, 0x7e, 0xff},
}

// systems in the order of their bars.
var systems = []string{"tally", "redis+lua", "nats-counters", "nats-echo", "nats-echo-journal"}

// writeChart draws ops/s per workload and system in the run's first
// pattern as grouped bars, one panel per durability setting (the gathered
// journals' ceilings are in the table only).
func writeChart(path string, r report) error {
	if len(r.Patterns) == 0 {
		return nil
	}
	pat := r.Patterns[0]
	const (
		panelW, panelH = 560, 320
		margin         = 50
	)
	img := image.NewRGBA(image.Rect(0, 0, 2*panelW, panelH+60))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	text(img, 10, 16, fmt.Sprintf("ops/s, %d cores, pattern %s: connections x calls in flight each (higher is better)", r.Cores, pat), color.Black)
	for p, mode := range []string{"interval", "always"} {
		x0 := p*panelW + margin
		title := "tally --sync=interval vs redis everysec vs nats sync 1s, echo ceilings"
		if mode == "always" {
			title = "tally --sync=always vs redis always vs nats sync always"
		}
		text(img, x0, 40, title, color.Black)
		rows := map[string]map[string]float64{}
		top := 1.0
		for _, row := range r.Rows {
			if row.Skipped != "" || row.Pattern != pat || syncMode(row.Sync) != mode {
				continue
			}
			if rows[row.Workload] == nil {
				rows[row.Workload] = map[string]float64{}
			}
			rows[row.Workload][row.System] = row.OpsPerS
			top = max(top, row.OpsPerS)
		}
		base := panelH + 10
		height := panelH - 80
		line(img, x0, base, x0+panelW-2*margin+20, base)
		for i, w := range []string{"w1", "w2", "w3", "w4"} {
			gx := x0 + 4 + i*118
			text(img, gx+30, base+15, w, color.Black)
			for j, sys := range systems {
				v, ok := rows[w][sys]
				if !ok {
					continue
				}
				h := int(v / top * float64(height))
				bx := gx + j*22
				draw.Draw(img, image.Rect(bx, base-h, bx+19, base), &image.Uniform{palette[sys]}, image.Point{}, draw.Src)
				text(img, bx-1, base-h-4, short(v), color.Black)
			}
		}
	}
	for j, sys := range systems {
		x := 10 + j*200
		draw.Draw(img, image.Rect(x, panelH+35, x+12, panelH+47), &image.Uniform{palette[sys]}, image.Point{}, draw.Src)
		text(img, x+16, panelH+46, sys, color.Black)
	}
	return writePNG(path, img)
}

// writePNG writes img to path as a PNG.
func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncMode(s string) string {
	if s == "always" {
		return "always"
	}
	return "interval"
}

// short labels a bar in thousands, rounded, so that each label fits
// above its bar; the table has the exact figures.
func short(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.0fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

func text(img *image.RGBA, x, y int, s string, c color.Color) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func line(img *image.RGBA, x0, y, x1, _ int) {
	for x := x0; x <= x1; x++ {
		img.Set(x, y, color.Black)
	}
}
