package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"strings"
)

// The chart: one horizontal bar per figure that has a reference, its
// length the ratio homenet ÷ reference on a log scale, with a line at 1.
// Green is better than the reference, red worse, grey the same or a
// ratio with no better side (control-plane scaling against N=10).

var (
	colBG     = color.RGBA{255, 255, 255, 255}
	colText   = color.RGBA{20, 20, 20, 255}
	colGrid   = color.RGBA{210, 210, 210, 255}
	colOne    = color.RGBA{60, 60, 60, 255}
	colBetter = color.RGBA{46, 139, 87, 255}
	colWorse  = color.RGBA{200, 50, 50, 255}
	colNeut   = color.RGBA{140, 140, 160, 255}
)

const (
	glyphW, glyphH = 6, 13
	barH           = 15
	labelCols      = 64 // characters of label
	plotW          = 420
	chartPad       = 10
)

type bar struct {
	label string
	ratio float64
	col   color.Color
}

func chartPNG(r *Report) ([]byte, error) {
	var bars []bar
	for _, row := range r.Rows {
		for _, m := range row.Metrics {
			refs := []Ref{{Name: m.RefName, Value: m.Ref, Ratio: m.Ratio}}
			refs = append(refs, m.Also...)
			for i, ref := range refs {
				if ref.Value == 0 || ref.Ratio <= 0 || math.IsNaN(ref.Ratio) || math.IsInf(ref.Ratio, 0) {
					continue
				}
				c := colNeut
				v := verdict(m.Value, ref.Value, m.Better)
				if i == 0 {
					v = m.Verdict
				}
				switch v {
				case "better":
					c = colBetter
				case "worse":
					c = colWorse
				}
				label := fmt.Sprintf("%s %s %s: %s vs %s", row.ID, row.Case, m.Name, "homenet", ref.Name)
				bars = append(bars, bar{label: label, ratio: ref.Ratio, col: c})
			}
		}
	}
	title := "homenet / reference (log scale; right of 1 = larger)"
	if r.Short {
		title += " -- smoke run"
	}
	w := chartPad*2 + labelCols*glyphW + plotW + 60
	h := chartPad*3 + glyphH*2 + len(bars)*barH + glyphH
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{colBG}, image.Point{}, draw.Src)
	drawText(img, chartPad, chartPad, title, colText)

	// Log scale from 1/16 to 16, clamped.
	const lo, hi = -4.0, 4.0
	x0 := chartPad + labelCols*glyphW + 10
	xOf := func(ratio float64) int {
		l := math.Log2(ratio)
		l = max(lo, min(hi, l))
		return x0 + int(float64(plotW)*(l-lo)/(hi-lo))
	}
	top := chartPad*2 + glyphH
	bottom := top + len(bars)*barH
	for _, g := range []float64{1.0 / 16, 1.0 / 4, 1, 4, 16} {
		x := xOf(g)
		vline(img, x, top, bottom, colGrid)
		drawText(img, x-glyphW, bottom+4, fmtRatio(g), colText)
	}
	vline(img, xOf(1), top, bottom, colOne)
	for i, b := range bars {
		y := top + i*barH
		label := asciiFold.Replace(b.label)
		if len(label) > labelCols {
			label = label[:labelCols-1] + "~"
		}
		drawText(img, chartPad, y+1, label, colText)
		a, c := xOf(1), xOf(b.ratio)
		if c < a {
			a, c = c, a
		}
		if c == a {
			c = a + 1
		}
		draw.Draw(img, image.Rect(a, y+2, c, y+barH-2), &image.Uniform{b.col}, image.Point{}, draw.Src)
		drawText(img, max(xOf(b.ratio), xOf(1))+4, y+1, fmt.Sprintf("%.2f", b.ratio), colText)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// asciiFold spells the non-ASCII characters of the labels in ASCII: the
// font has ASCII only.
var asciiFold = strings.NewReplacer("→", "->", "µ", "u", "÷", "/", "≈", "~", "—", "-")

func fmtRatio(g float64) string {
	if g < 1 {
		return fmt.Sprintf("1/%.0f", 1/g)
	}
	return fmt.Sprintf("%.0f", g)
}

func vline(img *image.RGBA, x, y0, y1 int, c color.Color) {
	for y := y0; y < y1; y++ {
		img.Set(x, y, c)
	}
}

// drawText draws ASCII text with its top-left corner at (x, y); other
// characters show as '?'.
func drawText(img *image.RGBA, x, y int, s string, c color.Color) {
	for _, r := range s {
		if r < 0x20 || r > 0x7f {
			r = '?'
		}
		g := glyphs7x13[r-0x20]
		for row := 0; row < glyphH; row++ {
			for col := 0; col < glyphW; col++ {
				if g[row]&(1<<(5-col)) != 0 {
					img.Set(x+col, y+row, c)
				}
			}
		}
		x += glyphW
	}
}
