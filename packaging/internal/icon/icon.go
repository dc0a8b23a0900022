// Package icon draws homenet's package icon: a white house on a blue
// rounded square, as a PNG of any size. Drawn in code, so the repository
// holds no binary image files.
package icon

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
)

// PNG returns the icon as a size×size PNG.
func PNG(size int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	blue := color.NRGBA{0x1f, 0x6f, 0xd0, 0xff}
	white := color.NRGBA{0xff, 0xff, 0xff, 0xff}
	s := float64(size)
	r := s * 0.18 // corner radius
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			fx, fy := float64(x)+0.5, float64(y)+0.5
			if !inRoundedSquare(fx, fy, s, r) {
				continue
			}
			c := blue
			if inHouse(fx/s, fy/s) {
				c = white
			}
			img.SetNRGBA(x, y, c)
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img) // writing to a bytes.Buffer cannot fail
	return b.Bytes()
}

func inRoundedSquare(x, y, s, r float64) bool {
	cx := math.Max(r, math.Min(s-r, x))
	cy := math.Max(r, math.Min(s-r, y))
	return math.Hypot(x-cx, y-cy) <= r
}

// inHouse reports whether (x, y), in units of the icon's size, is in the
// house: a roof triangle over a body with a door cut out.
func inHouse(x, y float64) bool {
	// Roof: apex (0.5, 0.2), eaves at y=0.48 from x=0.18 to 0.82.
	if y >= 0.2 && y <= 0.48 {
		half := (y - 0.2) / 0.28 * 0.32
		return x >= 0.5-half && x <= 0.5+half
	}
	// Body, minus the door.
	if y > 0.48 && y <= 0.8 && x >= 0.27 && x <= 0.73 {
		door := x >= 0.44 && x <= 0.56 && y >= 0.62
		return !door
	}
	return false
}
