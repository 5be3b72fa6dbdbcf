// Command chart draws the benchmark's summary as a PNG: for each scenario, one horizontal bar per
// server with its figure relative to the baseline server (ws), which is the line at 1. It reads
// the chart as JSON on stdin (bench/run.mjs writes it) and writes the PNG to the file named by its
// argument. Pure Go (image/png and a bitmap font), so the benchmark needs no plotting tool.
//
//	chart out.png < chart.json
package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// spec is the input.
type spec struct {
	Title    string   `json:"title"`
	Subtitle string   `json:"subtitle"`
	Baseline string   `json:"baseline"` // the name of the line at 1
	Clip     float64  `json:"clip"`     // if > 0, the scale ends here and longer bars end in an arrow
	Series   []string `json:"series"`   // one bar per series in every group
	Groups   []group  `json:"groups"`
}

type group struct {
	Label  string     `json:"label"`
	Values []*float64 `json:"values"` // per series; null: no figure (failed or not run)
}

const (
	width    = 1100
	left     = 250 // label column
	right    = 90  // room for the value after the longest bar
	top      = 70
	barH     = 13
	groupGap = 12
	lineH    = 13 // the font's height
)

var (
	white = color.RGBA{255, 255, 255, 255}
	black = color.RGBA{30, 30, 30, 255}
	grey  = color.RGBA{200, 200, 200, 255}
	// Distinguishable colours for up to six series.
	palette = []color.RGBA{{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {148, 103, 189, 255}, {214, 39, 40, 255}, {140, 86, 75, 255}}
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: chart out.png < chart.json")
		os.Exit(2)
	}
	var s spec
	if err := json.NewDecoder(os.Stdin).Decode(&s); err != nil {
		fmt.Fprintln(os.Stderr, "chart: reading the chart:", err)
		os.Exit(1)
	}
	if len(s.Series) == 0 || len(s.Series) > len(palette) {
		fmt.Fprintf(os.Stderr, "chart: %d series (1 to %d)\n", len(s.Series), len(palette))
		os.Exit(1)
	}
	f, err := os.Create(os.Args[1])
	if err == nil {
		err = png.Encode(f, render(&s))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}

func render(s *spec) *image.RGBA {
	groupH := len(s.Series)*barH + groupGap
	height := top + len(s.Groups)*groupH + 40
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)

	// The scale: 0 to the largest value (at least 2, so that the line at 1 is not at the edge).
	maxV := 2.0
	for _, g := range s.Groups {
		for _, v := range g.Values {
			if v != nil && !math.IsInf(*v, 0) && !math.IsNaN(*v) {
				maxV = max(maxV, *v)
			}
		}
	}
	if s.Clip > 0 {
		maxV = min(maxV, s.Clip)
	}
	maxV = math.Ceil(maxV)
	plotW := width - left - right
	x := func(v float64) int { return left + int(v/maxV*float64(plotW)) }

	text(img, 10, 18, s.Title, black)
	text(img, 10, 34, s.Subtitle, black)
	lx := 10
	for i, name := range s.Series {
		fill(img, lx, 44, lx+12, 56, palette[i])
		text(img, lx+16, 54, name, black)
		lx += 16 + 7*len(name) + 24
	}

	bottom := top + len(s.Groups)*groupH
	// Grid: a line per unit, the baseline at 1 darker.
	step := math.Max(1, math.Ceil(maxV/10))
	for v := 0.0; v <= maxV; v += step {
		fill(img, x(v), top-6, x(v)+1, bottom, grey)
		text(img, x(v)-3, bottom+16, fmt.Sprintf("%gx", v), black)
	}
	fill(img, x(1)-1, top-6, x(1)+1, bottom, black)
	text(img, x(1)+4, top-8, s.Baseline+" = 1", black)

	for gi, g := range s.Groups {
		y0 := top + gi*groupH
		text(img, 10, y0+(len(s.Series)*barH)/2+4, g.Label, black)
		for si := range s.Series {
			y := y0 + si*barH
			if si >= len(g.Values) || g.Values[si] == nil {
				text(img, left+4, y+barH-2, "-", black)
				continue
			}
			v := *g.Values[si]
			label := fmt.Sprintf("%.2f", v)
			if v > maxV {
				v, label = maxV, ">> "+label // off the scale
			}
			fill(img, left, y+1, max(x(v), left+1), y+barH-1, palette[si])
			text(img, max(x(v), left+1)+4, y+barH-2, label, black)
		}
	}
	return img
}

func fill(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	draw.Draw(img, image.Rect(x0, y0, x1, y1), image.NewUniform(c), image.Point{}, draw.Src)
}

// text draws s with its baseline at y.
func text(img *image.RGBA, x, y int, s string, c color.RGBA) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}
