package main

import (
	"fmt"
	"io"
	"strings"
)

// check is one of issue 3's targets judged for one peer.
type check struct {
	figure string
	ok     bool
}

func writeSummary(w io.Writer, res results, o reportOpts) {
	peers := res.peers()
	fmt.Fprintf(w, "#### Targets (issue 3): medians over rounds of same-round figures\n\n")
	fmt.Fprintf(w, "| Target | %s | airlock: holds? |\n", strings.Join(peers, " | "))
	fmt.Fprintf(w, "|---|%s---|\n", strings.Repeat("---|", len(peers)))
	rows := []struct {
		name string
		fn   func(string) check
		info bool
	}{
		{"1 upstream GET per blob, 1 client (blob GETs per pull; most GETs of one blob)", func(t string) check { return res.getsPerBlob(t, "pull1", o) }, false},
		{fmt.Sprintf("1 upstream GET per blob, %d clients", o.clients), func(t string) check { return res.getsPerBlob(t, "pullN", o) }, false},
		{"cold first byte by digest ≤ 2× upstream + 5 ms (median over rounds of same-round medians)", func(t string) check { return res.ttfbCheck(t, "digest") }, false},
		{"cold first byte through the manifest ≤ 2× upstream + 5 ms", func(t string) check { return res.ttfbCheck(t, "manifest") }, false},
		{"cold pull, 1 client ≤ 1.1× direct (ratio, range)", func(t string) check { return res.pullRatio(t, "pull1", 1.1) }, false},
		{"CPU-s per GiB of a cold 1-client pull: peer / upstream / client, and direct's upstream / client (medians; no target)", func(t string) check { return res.cpuPerGiB(t) }, true},
		{fmt.Sprintf("cold pull, %d clients vs direct (no target)", o.clients), func(t string) check { return res.pullRatio(t, "pullN", 0) }, true},
		{"warm pull with the upstream down, tag within tagTTL, ≤ 1.1× with it up (ratio, range)", func(t string) check { return res.downRatio(t, "warm_down_fresh") }, false},
		{fmt.Sprintf("warm pull with the upstream down, tag older than tagTTL (%.0f s), ≤ 1.1× with it up", o.tagTTL), func(t string) check { return res.downRatio(t, "warm_down") }, false},
		{fmt.Sprintf("cold miss with the upstream down: 503 saying unreachable, within upstreamTimeout (%.0f s)", o.upstreamTimeout), func(t string) check { return res.missCheck(t, o) }, false},
		{fmt.Sprintf("server CPU-s and peak RSS during the %d-client cold pull (no target)", o.clients), func(t string) check { return res.cpuRSS(t) }, true},
	}
	for _, row := range rows {
		var cells []string
		var al check
		for _, p := range peers {
			c := row.fn(p)
			cells = append(cells, c.figure)
			if p == "airlock" {
				al = c
			}
		}
		v := verdict(al.ok)
		if row.info {
			v = "–"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", row.name, strings.Join(cells, " | "), v)
	}
	fmt.Fprintln(w)
}

func (res results) getsPerBlob(t, phase string, o reportOpts) check {
	var gets []float64
	worst, ok, n := 0, true, 0
	for _, round := range res.rounds {
		r, found := res.one(round, phase, t, "")
		if !found || r.Upstream == nil {
			continue
		}
		n++
		u := r.Upstream
		gets = append(gets, float64(u.BlobGETs))
		worst = max(worst, u.MaxGETsPerBlb)
		if u.MaxGETsPerBlb != 1 || len(u.GETsPerBlob) != o.blobs || r.pull().Errors > 0 {
			ok = false
		}
	}
	if n == 0 {
		return check{figure: "not measured"}
	}
	return check{figure: fmt.Sprintf("%.0f GETs for %d blobs; worst %d of one blob", median(gets), o.blobs, worst), ok: ok}
}

func (res results) ttfbCheck(t, mode string) check {
	var peer, bars, ratios []float64
	within, n, errs := 0, 0, 0
	for _, round := range res.rounds {
		s := res.ttfbStats(round, t, mode)
		up := res.ttfbStats(round, "direct", mode)
		errs += s.errs
		if len(s.ttfb) == 0 || len(up.ttfb) == 0 {
			if s.errs > 0 {
				n++
			}
			continue
		}
		n++
		m, bar := median(s.ttfb), 2*median(up.ttfb)+5
		peer, bars, ratios = append(peer, m), append(bars, bar), append(ratios, m/bar)
		if m <= bar {
			within++
		}
	}
	if len(ratios) == 0 {
		return check{figure: "not measured"}
	}
	fig := fmt.Sprintf("%.1f ms vs bar %.1f ms (within in %d of %d rounds)", median(peer), median(bars), within, n)
	if errs > 0 {
		fig += fmt.Sprintf(", %d failed samples", errs)
	}
	return check{figure: fig, ok: median(ratios) <= 1 && errs == 0}
}

func (res results) pullRatio(t, phase string, limit float64) check {
	var rs []float64
	errs := 0
	for _, round := range res.rounds {
		r, ok1 := res.one(round, phase, t, "")
		d, ok2 := res.one(round, phase, "direct", "")
		if !ok1 || !ok2 || d.pull().WallSeconds <= 0 {
			continue
		}
		errs += r.pull().Errors
		rs = append(rs, r.pull().WallSeconds/d.pull().WallSeconds)
	}
	if len(rs) == 0 {
		return check{figure: "not measured"}
	}
	m := median(rs)
	return check{figure: fmt.Sprintf("%.2f× (%s)", m, minMax2(rs)), ok: m <= limit && errs == 0}
}

func (res results) downRatio(t, phase string) check {
	var rs []float64
	errs := 0
	for _, round := range res.rounds {
		up, ok1 := res.one(round, "warm_up", t, "")
		down, ok2 := res.one(round, phase, t, "")
		if !ok1 || !ok2 || up.pull().WallSeconds <= 0 {
			continue
		}
		errs += down.pull().Errors + up.pull().Errors
		rs = append(rs, down.pull().WallSeconds/up.pull().WallSeconds)
	}
	if len(rs) == 0 {
		return check{figure: "not measured"}
	}
	m := median(rs)
	fig := fmt.Sprintf("%.2f× (%s)", m, minMax2(rs))
	if errs > 0 {
		fig += fmt.Sprintf(", %d failed pulls", errs)
	}
	return check{figure: fig, ok: m <= 1.1 && errs == 0}
}

func (res results) missCheck(t string, o reportOpts) check {
	var statuses []string
	var secs []float64
	ok, n := true, 0
	for _, round := range res.rounds {
		for _, phase := range []string{"miss_tag", "miss_blob"} {
			r, found := res.one(round, phase, t, "")
			if !found {
				continue
			}
			n++
			p := r.probe()
			statuses = append(statuses, fmt.Sprintf("%d", p.Status))
			secs = append(secs, p.Seconds)
			if p.Status != 503 || !strings.Contains(strings.ToLower(p.Body), "unreachable") || p.Seconds > o.upstreamTimeout {
				ok = false
			}
		}
	}
	if n == 0 {
		return check{figure: "not measured"}
	}
	return check{figure: fmt.Sprintf("status %s in %s s", strings.Join(uniq(statuses), "/"), minMax3(secs)), ok: ok}
}

func (res results) cpuRSS(t string) check {
	var cpu, rss []float64
	for _, round := range res.rounds {
		if r, ok := res.one(round, "pullN", t, ""); ok {
			cpu = append(cpu, r.pull().CPUSeconds)
			rss = append(rss, float64(r.pull().HWMBytes)/(1<<20))
		}
	}
	if len(cpu) == 0 {
		return check{figure: "not measured"}
	}
	return check{figure: fmt.Sprintf("%.2f CPU-s, %.0f MiB", median(cpu), median(rss))}
}

func minMax2(xs []float64) string {
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return fmt.Sprintf("%.2f–%.2f", lo, hi)
}

func minMax3(xs []float64) string {
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return fmt.Sprintf("%.3f–%.3f", lo, hi)
}

func uniq(ss []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// cpuPerGiB is the CPU time per GiB of blob bytes of the 1-client cold
// pull: the peer's, the upstream's and the client's, beside the direct
// pull's upstream and client in the same rounds.
func (res results) cpuPerGiB(t string) check {
	var peer, up, cl, dUp, dCl []float64
	for _, round := range res.rounds {
		r, ok := res.one(round, "pull1", t, "")
		d, dok := res.one(round, "pull1", "direct", "")
		if !ok || !dok || r.pull().Bytes == 0 || d.pull().Bytes == 0 {
			continue
		}
		p, q := r.pull(), d.pull()
		gib, dgib := float64(p.Bytes)/(1<<30), float64(q.Bytes)/(1<<30)
		peer = append(peer, p.CPUSeconds/gib)
		up = append(up, p.UpCPUSeconds/gib)
		cl = append(cl, p.ClientCPUSeconds/gib)
		dUp = append(dUp, q.UpCPUSeconds/dgib)
		dCl = append(dCl, q.ClientCPUSeconds/dgib)
	}
	if len(peer) == 0 {
		return check{figure: "not measured"}
	}
	return check{figure: fmt.Sprintf("%.2f / %.2f / %.2f (direct: %.2f / %.2f)", median(peer), median(up), median(cl), median(dUp), median(dCl))}
}
