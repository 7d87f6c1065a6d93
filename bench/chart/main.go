// Command chart draws a line chart as a self-contained SVG from a table of
// numbers, so every bench script can put its curve beside its table in
// docs/benchmarks.md with no plotting package installed.
//
// Input (a file or stdin) is whitespace- or comma-separated with a header
// line: the first column is x, every other column one series. Empty
// cells and "-" are gaps. Lines starting with '#' are skipped.
//
//	rules   airlock-indexed   airlock-linear
//	10      0.31              0.40
//	1000    0.35              15.2
//
// Example:
//
//	go run ./bench/chart --title "Decide cost against rules" --x rules --y "ns per Decide" \
//	    --logx --logy < decide.tsv > docs/img/bench-policy-decide.svg
package main

import (
	"bufio"
	"flag"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

type series struct {
	name string
	pts  [][2]float64
}

func main() {
	title := flag.String("title", "", "chart `TITLE`")
	xl := flag.String("x", "", "x axis `LABEL` (default: the first header)")
	yl := flag.String("y", "", "y axis `LABEL`")
	logx := flag.Bool("logx", false, "logarithmic x axis")
	logy := flag.Bool("logy", false, "logarithmic y axis")
	ymin0 := flag.Bool("zero", false, "start a linear y axis at 0")
	in := flag.String("in", "-", "input `FILE` (- for stdin)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: chart [flags] < table > chart.svg\n\nDraws a line chart (SVG) of a table: a header, then rows of x and one value per series.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	var r io.Reader = os.Stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chart:", err)
			os.Exit(1)
		}
		defer f.Close()
		r = f
	}
	header, ss, err := read(r)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
	if *xl == "" {
		*xl = header
	}
	if err := draw(os.Stdout, *title, *xl, *yl, ss, *logx, *logy, *ymin0); err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}

func fields(line string) []string {
	return strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == '\t' || r == ' ' })
}

// read parses the table: the x header and one series per other column.
func read(r io.Reader) (string, []series, error) {
	sc := bufio.NewScanner(r)
	var ss []series
	xname := ""
	n := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		n++
		f := fields(line)
		if ss == nil {
			if len(f) < 2 {
				return "", nil, fmt.Errorf("line %d: the header needs x and at least one series", n)
			}
			xname = f[0]
			for _, name := range f[1:] {
				ss = append(ss, series{name: name})
			}
			continue
		}
		x, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return "", nil, fmt.Errorf("line %d: x %q is not a number", n, f[0])
		}
		for i, cell := range f[1:] {
			if i >= len(ss) {
				return "", nil, fmt.Errorf("line %d: %d values for %d series", n, len(f)-1, len(ss))
			}
			if cell == "-" {
				continue
			}
			y, err := strconv.ParseFloat(cell, 64)
			if err != nil {
				return "", nil, fmt.Errorf("line %d: %q is not a number", n, cell)
			}
			ss[i].pts = append(ss[i].pts, [2]float64{x, y})
		}
	}
	if err := sc.Err(); err != nil {
		return "", nil, err
	}
	if ss == nil {
		return "", nil, fmt.Errorf("empty table")
	}
	return xname, ss, nil
}

// axis maps values to pixels, linear or logarithmic.
type axis struct {
	lo, hi float64
	log    bool
}

func (a axis) frac(v float64) float64 {
	if a.log {
		return (math.Log10(v) - math.Log10(a.lo)) / (math.Log10(a.hi) - math.Log10(a.lo))
	}
	return (v - a.lo) / (a.hi - a.lo)
}

// ticks returns tick values: powers of ten on a log axis, about five
// round steps on a linear one.
func (a axis) ticks() []float64 {
	var out []float64
	if a.log {
		for e := math.Floor(math.Log10(a.lo)); e <= math.Ceil(math.Log10(a.hi)); e++ {
			if v := math.Pow(10, e); v >= a.lo*0.999 && v <= a.hi*1.001 {
				out = append(out, v)
			}
		}
		return out
	}
	step := math.Pow(10, math.Floor(math.Log10((a.hi-a.lo)/5)))
	for _, m := range []float64{1, 2, 5, 10} {
		if (a.hi-a.lo)/(step*m) <= 6 {
			step *= m
			break
		}
	}
	for v := math.Ceil(a.lo/step) * step; v <= a.hi+step/1e6; v += step {
		out = append(out, v)
	}
	return out
}

func label(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 4, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'g', 4, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

func bounds(ss []series, dim int, log bool) (axis, error) {
	a := axis{lo: math.Inf(1), hi: math.Inf(-1), log: log}
	for _, s := range ss {
		for _, p := range s.pts {
			if log && p[dim] <= 0 {
				return a, fmt.Errorf("%s: %v cannot go on a logarithmic axis", s.name, p[dim])
			}
			a.lo, a.hi = math.Min(a.lo, p[dim]), math.Max(a.hi, p[dim])
		}
	}
	if math.IsInf(a.lo, 0) {
		return a, fmt.Errorf("no values")
	}
	if a.lo == a.hi {
		a.lo, a.hi = a.lo*0.9, a.hi*1.1+1e-9
	}
	if log {
		a.lo, a.hi = math.Pow(10, math.Floor(math.Log10(a.lo))), math.Pow(10, math.Ceil(math.Log10(a.hi)))
	}
	return a, nil
}

var colours = []string{"#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#4b5563"}

func draw(w io.Writer, title, xl, yl string, ss []series, logx, logy, zero bool) error {
	const width, height, left, right, top, bottom = 720, 400, 70, 170, 40, 50
	xa, err := bounds(ss, 0, logx)
	if err != nil {
		return err
	}
	ya, err := bounds(ss, 1, logy)
	if err != nil {
		return err
	}
	if zero && !logy && ya.lo > 0 {
		ya.lo = 0
	}
	pw, ph := float64(width-left-right), float64(height-top-bottom)
	px := func(v float64) float64 { return left + xa.frac(v)*pw }
	py := func(v float64) float64 { return top + (1-ya.frac(v))*ph }
	b := &strings.Builder{}
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(b, `<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	for _, t := range ya.ticks() {
		y := py(t)
		fmt.Fprintf(b, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e5e7eb"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left, left+pw, y, y, left-6, y+4, label(t))
	}
	for _, t := range xa.ticks() {
		x := px(t)
		fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%.1f" stroke="#e5e7eb"/><text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, x, top, top+ph, x, top+ph+16, label(t))
	}
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#9ca3af"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", left+pw/2, height-10, html.EscapeString(xl))
	fmt.Fprintf(b, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", top+ph/2, html.EscapeString(yl))
	for i, s := range ss {
		c := colours[i%len(colours)]
		var pts []string
		for _, p := range s.pts {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p[0]), py(p[1])))
		}
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		for _, p := range pts {
			xy := strings.Split(p, ",")
			fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], c)
		}
		ly := top + 10 + i*20
		fmt.Fprintf(b, `<line x1="%.0f" x2="%.0f" y1="%d" y2="%d" stroke="%s" stroke-width="3"/><text x="%.0f" y="%d">%s</text>`+"\n",
			left+pw+12, left+pw+32, ly, ly, c, left+pw+38, ly+4, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	_, err = io.WriteString(w, b.String())
	return err
}
