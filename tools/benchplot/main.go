// Command benchplot draws the benchmark plots from `make bench` output.
// -mode delivery (docs/benchmarks-delivery.png): the delivery rate against
// worker count, one line per message size, beside the plain SMTP client's
// ceiling measured in the same run. -mode accept
// (docs/benchmarks-accept.png): the accept rate and p99 against client
// concurrency, beside pgbench's in the same run (see accept.go).
// It is its own module so the gateway's binary doesn't carry a plotting
// library.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"image/color"
	"log"
	"os"
	"regexp"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// scalingLine matches one BenchmarkDeliveryScaling result.
var scalingLine = regexp.MustCompile(`^BenchmarkDeliveryScaling/size=(\d+)KB/workers=(\d+)\S*\s+\d+\s+\d+ ns/op(.*)$`)

var metric = regexp.MustCompile(`([\d.e+]+) (\S+)`)

type point struct{ workers, rate, ceiling float64 }

func main() {
	in := flag.String("in", "bench.out", "make bench output")
	out := flag.String("out", "docs/benchmarks-delivery.png", "PNG to write")
	mode := flag.String("mode", "delivery", "which plot: delivery or accept")
	flag.Parse()
	switch *mode {
	case "delivery":
	case "accept":
		if err := plotAccept(*in, *out); err != nil {
			log.Fatal(err)
		}
		return
	default:
		log.Fatalf("unknown -mode %q (delivery or accept)", *mode)
	}
	series, err := read(*in)
	if err != nil {
		log.Fatal(err)
	}
	if len(series) == 0 {
		log.Fatalf("%s has no BenchmarkDeliveryScaling results", *in)
	}
	if err := draw2(series, *out); err != nil {
		log.Fatal(err)
	}
}

func read(path string) (map[int][]point, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	series := map[int][]point{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := scalingLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		size, _ := strconv.Atoi(m[1])
		workers, _ := strconv.ParseFloat(m[2], 64)
		p := point{workers: workers}
		for _, mm := range metric.FindAllStringSubmatch(m[3], -1) {
			v, _ := strconv.ParseFloat(mm[1], 64)
			switch mm[2] {
			case "msg/s":
				p.rate = v
			case "ceiling_msg/s":
				p.ceiling = v
			}
		}
		series[size] = append(series[size], p)
	}
	return series, sc.Err()
}

func draw2(series map[int][]point, out string) error {
	p := plot.New()
	p.Title.Text = "Delivery rate by workers and message size (one tenant, discarding go-smtp sink)"
	p.X.Label.Text = "MAILGATE_WORKERS (relay connections: min(workers, 50) for gateway and ceiling client)"
	p.Y.Label.Text = "messages per second"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	sizes := make([]int, 0, len(series))
	for s := range series {
		sizes = append(sizes, s)
	}
	sort.Ints(sizes)
	colors := []color.Color{color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255}, color.RGBA{214, 39, 40, 255}}
	for i, size := range sizes {
		pts := series[size]
		sort.Slice(pts, func(a, b int) bool { return pts[a].workers < pts[b].workers })
		gw, ceil := make(plotter.XYs, len(pts)), make(plotter.XYs, len(pts))
		for j, pt := range pts {
			gw[j] = plotter.XY{X: pt.workers, Y: pt.rate}
			ceil[j] = plotter.XY{X: pt.workers, Y: pt.ceiling}
		}
		c := colors[i%len(colors)]
		line, points, err := plotter.NewLinePoints(gw)
		if err != nil {
			return err
		}
		line.Color, points.Color = c, c
		cl, err := plotter.NewLine(ceil)
		if err != nil {
			return err
		}
		cl.Color, cl.Dashes = c, []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(line, points, cl)
		p.Legend.Add(fmt.Sprintf("gateway, %d KB", size), line, points)
		p.Legend.Add(fmt.Sprintf("plain client ceiling, %d KB", size), cl)
	}
	// Room above the highest ceiling for the legend.
	p.Y.Max *= 6
	p.Legend.Padding = vg.Points(2)
	p.Legend.YOffs = -vg.Points(4)
	return p.Save(9*vg.Inch, 5.5*vg.Inch, out)
}
