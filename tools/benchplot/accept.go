package main

import (
	"bufio"
	"fmt"
	"image/color"
	"os"
	"regexp"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// acceptLine matches one BenchmarkAccept result at a client concurrency.
var acceptLine = regexp.MustCompile(`^BenchmarkAccept/c=(\d+)\S*\s+\d+\s+\d+ ns/op(.*)$`)

// acceptPoint is one concurrency's metrics by unit (msg/s, p99_ms, ...).
type acceptPoint struct {
	clients float64
	metrics map[string]float64
}

func readAccept(path string) ([]acceptPoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var pts []acceptPoint
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := acceptLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		c, _ := strconv.ParseFloat(m[1], 64)
		p := acceptPoint{clients: c, metrics: map[string]float64{}}
		for _, mm := range metric.FindAllStringSubmatch(m[2], -1) {
			v, _ := strconv.ParseFloat(mm[1], 64)
			p.metrics[mm[2]] = v
		}
		pts = append(pts, p)
	}
	sort.Slice(pts, func(a, b int) bool { return pts[a].clients < pts[b].clients })
	return pts, sc.Err()
}

// acceptSeries is one line: a metric of the points that have it.
type acceptSeries struct {
	unit, label string
	color       color.Color
	dashed      bool
}

// plotAccept draws throughput (top) and p99 latency (bottom) against client
// concurrency: the gateway's, and pgbench's on the same SQL and on the
// minimal outbox transaction.
func plotAccept(in, out string) error {
	pts, err := readAccept(in)
	if err != nil {
		return err
	}
	if len(pts) == 0 {
		return fmt.Errorf("%s has no BenchmarkAccept results", in)
	}
	blue, orange, green := color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255}
	rate, err := acceptPlot(pts, "Accept rate by client concurrency (serve --role api, one tenant; pgbench alternated in the same run)",
		"messages (or pgbench transactions) per second", []acceptSeries{
			{"msg/s", "gateway, messages/s", blue, false},
			{"same_sql_tps", "pgbench, the gateway's SQL for one message, tx/s", orange, true},
			{"outbox_tps", "pgbench, minimal outbox transaction, tx/s", green, true},
		})
	if err != nil {
		return err
	}
	p99, err := acceptPlot(pts, "p99 latency by client concurrency", "p99 (ms)", []acceptSeries{
		{"p99_ms", "gateway (HTTP request)", blue, false},
		{"same_sql_p99_ms", "pgbench, the gateway's SQL for one message", orange, true},
	})
	if err != nil {
		return err
	}
	const width, height = 9 * vg.Inch, 9 * vg.Inch
	img := vgimg.New(width, height)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadY: vg.Points(12), PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(6)}
	canvases := plot.Align([][]*plot.Plot{{rate}, {p99}}, tiles, dc)
	rate.Draw(canvases[0][0])
	p99.Draw(canvases[1][0])
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		return err
	}
	return f.Close()
}

func acceptPlot(pts []acceptPoint, title, ylabel string, series []acceptSeries) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "concurrent clients (HTTP clients; pgbench -c)"
	p.Y.Label.Text = ylabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	for _, s := range series {
		var xys plotter.XYs
		for _, pt := range pts {
			if v, ok := pt.metrics[s.unit]; ok {
				xys = append(xys, plotter.XY{X: pt.clients, Y: v})
			}
		}
		if len(xys) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		line.Color, points.Color = s.color, s.color
		if s.dashed {
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(line, points)
		p.Legend.Add(s.label, line, points)
	}
	p.Y.Min = 0
	p.Y.Max *= 1.35 // room for the legend
	return p, nil
}
