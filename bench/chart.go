// This file draws the report as an SVG chart, with the standard library:
// one bar per step, its median, stacked by where the time goes; under it a
// thin bar for unshare with the same namespaces; a dashed line across for
// each runtime; an axis in milliseconds, a legend, and the machine.

package main

import (
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// colors are the parts', in the Okabe-Ito palette, which colour-blind
// readers tell apart; the rest is grey, what every container pays.
var colors = map[string]string{
	partClone:    "#0072B2",
	partTeardown: "#56B4E9",
	partCgroup:   "#009E73",
	partOverlay:  "#E69F00",
	partVethAdd:  "#CC79A7",
	partVethDel:  "#D55E00",
	partRest:     "#BBBBBB",
}

// The chart's geometry, in pixels.
const (
	chartWidth = 900
	plotLeft   = 170 // where 0 ms is; the steps' names are to its left
	plotWidth  = 610
	rowHeight  = 34
	barHeight  = 16
	refHeight  = 5 // unshare's bar, under the step's
	charWidth  = 6.6
)

// writeChart writes the chart to file.
func writeChart(file string, r *report) error {
	if err := os.WriteFile(file, []byte(r.svg()), 0o644); err != nil {
		return fmt.Errorf("-svg: %w", err)
	}
	giveBack(file)
	return nil
}

// svg draws the chart.
func (r *report) svg() string {
	var b strings.Builder
	top := 40.0

	// The legend: the parts that some bar has, then the references.
	type key struct{ kind, name, svg string }
	var keys []key
	for _, name := range partOrder {
		for _, bar := range r.bars {
			if bar.has(name) {
				keys = append(keys, key{"part", name, fmt.Sprintf(`<rect x="0" y="-10" width="12" height="12" fill="%s"/>`, colors[name])})
				break
			}
		}
	}
	for _, bar := range r.bars {
		if bar.unshare != nil {
			keys = append(keys, key{"reference", "unshare, same namespaces", `<rect x="0" y="-5" width="12" height="5" fill="#555555"/>`})
			break
		}
	}
	for i, rt := range r.runtimes {
		keys = append(keys, key{"runtime", rt.name, fmt.Sprintf(`<line x1="6" y1="-12" x2="6" y2="4" stroke="#000000" stroke-width="1.5" stroke-dasharray="%s"/>`, dashes(i))})
	}
	fmt.Fprintf(&b, `<g class="legend">`+"\n")
	x, y := 20.0, top+8
	for _, k := range keys {
		width := 18 + charWidth*float64(len(k.name)) + 18
		if x+width > chartWidth-10 {
			x, y = 20, y+20
		}
		fmt.Fprintf(&b, `<g class="key" data-%s="%s" transform="translate(%.2f,%.2f)">%s<text x="18" y="0">%s</text></g>`+"\n",
			k.kind, esc(k.name), x, y, k.svg, esc(k.name))
		x += width
	}
	b.WriteString("</g>\n")

	// The axis: round numbers of milliseconds, from 0 past the longest bar.
	plotTop := y + 26
	plotBottom := plotTop + float64(len(r.bars))*rowHeight
	longest := 0.0
	for _, bar := range r.bars {
		longest = max(longest, bar.median, bar.sum())
		if bar.unshare != nil {
			longest = max(longest, bar.unshare.median)
		}
	}
	for _, rt := range r.runtimes {
		longest = max(longest, rt.median)
	}
	tick := niceStep(longest / 6)
	end := tick * math.Ceil(longest/tick)
	if end <= 0 {
		end = tick
	}
	scale := plotWidth / end
	xOf := func(ms float64) float64 { return plotLeft + ms*scale }
	b.WriteString(`<g class="axis" font-size="11" fill="#444444">` + "\n")
	for i := 0; float64(i)*tick <= end+tick/1000; i++ {
		v := float64(i) * tick
		fmt.Fprintf(&b, `<line class="tick" data-ms="%s" x1="%.2f" y1="%.2f" x2="%.2f" y2="%.2f" stroke="#DDDDDD"/>`+"\n",
			num(v), xOf(v), plotTop-6, xOf(v), plotBottom+4)
		fmt.Fprintf(&b, `<text x="%.2f" y="%.2f" text-anchor="middle">%s</text>`+"\n", xOf(v), plotBottom+18, num(v))
	}
	fmt.Fprintf(&b, `<text x="%.2f" y="%.2f" text-anchor="middle">ms, median start to exit of /bin/true</text>`+"\n", float64(plotLeft+plotWidth/2), plotBottom+34)
	b.WriteString("</g>\n")

	// A bar per step, stacked; unshare's thin bar under it.
	for i, bar := range r.bars {
		y := plotTop + float64(i)*rowHeight
		fmt.Fprintf(&b, `<g class="bar" data-step="%s" data-median="%.3f">`+"\n", esc(bar.step), bar.median)
		fmt.Fprintf(&b, `<text x="%d" y="%.2f" text-anchor="end">%s</text>`+"\n", plotLeft-8, y+barHeight-4, esc(bar.step))
		x := xOf(0)
		for _, p := range bar.parts {
			w := p.ms * scale
			fmt.Fprintf(&b, `<rect class="part" data-part="%s" data-ms="%.3f" x="%.2f" y="%.2f" width="%.2f" height="%d" fill="%s"><title>%s: %s ms</title></rect>`+"\n",
				esc(p.name), p.ms, x, y, w, barHeight, colors[p.name], esc(p.name), num2(p.ms))
			x += w
		}
		label := num2(bar.median) + " ms"
		if bar.exceeds > 0 {
			label += fmt.Sprintf(" (parts measured alone: %s ms more)", num2(bar.exceeds))
		}
		fmt.Fprintf(&b, `<text class="value" x="%.2f" y="%.2f" font-size="11">%s</text>`+"\n", max(x, xOf(bar.sum()))+5, y+barHeight-4, esc(label))
		if u := bar.unshare; u != nil {
			fmt.Fprintf(&b, `<rect class="reference" data-name="%s" data-ms="%.3f" x="%.2f" y="%.2f" width="%.2f" height="%d" fill="#555555"><title>%s: %s ms</title></rect>`+"\n",
				esc(u.name), u.median, xOf(0), y+barHeight+3, u.median*scale, refHeight, esc(u.name), num2(u.median))
		}
		b.WriteString("</g>\n")
	}

	// The runtimes, a dashed line each, across the bars.
	for i, rt := range r.runtimes {
		fmt.Fprintf(&b, `<g class="runtime" data-name="%s" data-ms="%.3f">`, esc(rt.name), rt.median)
		fmt.Fprintf(&b, `<line x1="%.2f" y1="%.2f" x2="%.2f" y2="%.2f" stroke="#000000" stroke-width="1.5" stroke-dasharray="%s"/>`,
			xOf(rt.median), plotTop-8, xOf(rt.median), plotBottom, dashes(i))
		fmt.Fprintf(&b, `<text x="%.2f" y="%.2f" font-size="11">%s %s ms</text></g>`+"\n", xOf(rt.median)+4, plotTop-10+float64(i)*12, esc(rt.name), num2(rt.median))
	}

	// The machine, under it all, in as many lines as it takes.
	y = plotBottom + 56
	for _, line := range wrap("Medians of "+strconv.Itoa(r.runs)+" runs each, interleaved. "+r.machine, (chartWidth-40)*10/56) {
		fmt.Fprintf(&b, `<text class="machine" x="20" y="%.2f" font-size="10" fill="#444444">%s</text>`+"\n", y, esc(line))
		y += 14
	}
	height := y + 6

	return fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%.0f" viewBox="0 0 %d %.0f" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, height, chartWidth, height) +
		fmt.Sprintf(`<rect width="%d" height="%.0f" fill="#FFFFFF"/>`+"\n", chartWidth, height) +
		fmt.Sprintf(`<text x="20" y="26" font-size="15" font-weight="bold">%s</text>`+"\n", esc("Start to exit of a container of /bin/true, and where the time goes")) +
		b.String() + "</svg>\n"
}

// has reports whether the bar has the part.
func (b bar) has(name string) bool {
	for _, p := range b.parts {
		if p.name == name {
			return true
		}
	}
	return false
}

// sum is the length of the stacked parts.
func (b bar) sum() float64 {
	s := 0.0
	for _, p := range b.parts {
		s += p.ms
	}
	return s
}

// niceStep rounds a step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*pow {
			return m * pow
		}
	}
	return 10 * pow
}

// dashes tells the runtimes' lines apart.
func dashes(i int) string { return []string{"5 3", "2 2", "8 2 2 2"}[i%3] }

// num writes a tick's value with no needless digits.
func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// num2 writes a time to a hundredth of a millisecond.
func num2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

// esc escapes text for XML.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// wrap breaks a line at spaces into lines of at most width characters.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	return append(lines, line)
}

// giveBack gives a file that bench wrote to whoever ran it with sudo:
// root's file in their clone would refuse them later.
func giveBack(file string) {
	uid, err1 := strconv.Atoi(os.Getenv("SUDO_UID"))
	gid, err2 := strconv.Atoi(os.Getenv("SUDO_GID"))
	if err1 == nil && err2 == nil {
		_ = os.Lchown(file, uid, gid)
	}
}
