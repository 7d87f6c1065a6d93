package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// record is one measurement of bench/cache.sh, one JSON line of its
// results file. Data holds a pullResult (phases pull1, pullN, warm_up,
// warm_down), a ttfbResult (ttfb) or a probeResult (miss_tag, miss_blob).
type record struct {
	Round    int             `json:"round"`
	Phase    string          `json:"phase"`
	Target   string          `json:"target"` // airlock, docker-registry, direct
	Mode     string          `json:"mode,omitempty"`
	Data     json.RawMessage `json:"data"`
	Upstream *upstreamLoad   `json:"upstream"`
	Error    string          `json:"error,omitempty"`
	// StaleServes is airlock_cache_stale_serves_total's increase during a
	// warm pull with the upstream down (airlock only).
	StaleServes *int `json:"stale_serves,omitempty"`
}

func (r record) pull() pullResult {
	var p pullResult
	_ = json.Unmarshal(r.Data, &p)
	return p
}

func (r record) ttfb() ttfbResult {
	var t ttfbResult
	_ = json.Unmarshal(r.Data, &t)
	return t
}

func (r record) probe() probeResult {
	var p probeResult
	_ = json.Unmarshal(r.Data, &p)
	return p
}

// reportOpts are the run's parameters the report states and judges by.
type reportOpts struct {
	clients         int
	blobs           int     // blobs of the pulled image, config included
	upstreamTimeout float64 // seconds
	image, big      string  // what bench/img:v1 and bench/blob:v1 hold, for headings
	tagTTL          float64 // airlock's tagTTL, seconds
}

func runReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	in := fs.String("in", "", "results file (JSON lines)")
	var o reportOpts
	fs.IntVar(&o.clients, "clients", 20, "clients of the concurrent pull")
	fs.IntVar(&o.blobs, "blobs", 4, "blobs of the pulled image, config included")
	fs.Float64Var(&o.upstreamTimeout, "upstream-timeout", 10, "airlock's upstreamTimeout, seconds")
	fs.StringVar(&o.image, "image", "3 × 64 MiB layers + config", "what the pulled image holds")
	fs.StringVar(&o.big, "big", "256 MiB", "size of the blob of the first-byte test")
	fs.Float64Var(&o.tagTTL, "tag-ttl", 3, "airlock's tagTTL, seconds")
	_ = fs.Parse(args)
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	recs, err := readRecords(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", *in, err)
	}
	writeReport(os.Stdout, recs, o)
	return nil
}

func readRecords(r io.Reader) ([]record, error) {
	var out []record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var rec record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}

// warm_up, warm_down_fresh, warm_down record pullResults too.

// results indexes records by round, phase, target (and mode).
type results struct {
	recs    []record
	rounds  []int
	targets []string // peers and direct, in first-seen order
}

func index(recs []record) results {
	res := results{recs: recs}
	for _, r := range recs {
		if !slices.Contains(res.rounds, r.Round) {
			res.rounds = append(res.rounds, r.Round)
		}
		if !slices.Contains(res.targets, r.Target) {
			res.targets = append(res.targets, r.Target)
		}
	}
	slices.Sort(res.rounds)
	return res
}

func (res results) find(round int, phase, target, mode string) []record {
	var out []record
	for _, r := range res.recs {
		if r.Round == round && r.Phase == phase && r.Target == target && r.Mode == mode {
			out = append(out, r)
		}
	}
	return out
}

func (res results) one(round int, phase, target, mode string) (record, bool) {
	rs := res.find(round, phase, target, mode)
	if len(rs) == 0 {
		return record{}, false
	}
	return rs[0], true
}

// peers are the targets other than the direct baseline.
func (res results) peers() []string {
	var out []string
	for _, t := range res.targets {
		if t != "direct" {
			out = append(out, t)
		}
	}
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mib(b int64) string { return fmt.Sprintf("%.0f", float64(b)/(1<<20)) }

func ratio(a, b float64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func verdict(ok bool) string {
	if ok {
		return "**holds**"
	}
	return "**misses**"
}

func cell(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}

func writeReport(w io.Writer, recs []record, o reportOpts) {
	res := index(recs)
	writePulls(w, res, o)
	writeTTFB(w, res, o)
	writeDown(w, res, o)
	writeSummary(w, res, o)
}

func upstreamCells(u *upstreamLoad) string {
	if u == nil {
		return "– | – | –"
	}
	return fmt.Sprintf("%d (max %d per blob) | %d / %d / %d / %d | %s",
		u.BlobGETs, u.MaxGETsPerBlb, u.BlobHEADs, u.ManifestHEADs, u.ManifestGETs, u.Pings, mib(u.Bytes))
}

func writePulls(w io.Writer, res results, o reportOpts) {
	fmt.Fprintf(w, "#### Cold pulls (%s; each client: manifest, then every blob, sha256 verified)\n\n", o.image)
	fmt.Fprintf(w, "Upstream columns count the upstream's access log during the pull; a peer is started on empty storage for each pull. \"direct\" pulls from the upstream itself.\n\n")
	fmt.Fprintln(w, "| Round | Clients | Target | Wall s | vs direct | Upstream blob GETs | Upstream blob HEAD / manifest HEAD / manifest GET / ping | Upstream MiB | Peer CPU-s | Upstream CPU-s | Client CPU-s | Peer peak RSS MiB (VmHWM) | Errors |")
	fmt.Fprintln(w, "|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|")
	for _, round := range res.rounds {
		for _, phase := range []string{"pull1", "pullN"} {
			direct, _ := res.one(round, phase, "direct", "")
			for _, r := range res.recs {
				if r.Round != round || r.Phase != phase {
					continue
				}
				p := r.pull()
				errs := fmt.Sprintf("%d", p.Errors)
				if p.FirstError != "" {
					errs += ": " + cell(p.FirstError)
				}
				if r.Error != "" {
					errs = cell(r.Error)
				}
				up := upstreamCells(r.Upstream)
				cpu, rss := fmt.Sprintf("%.2f", p.CPUSeconds), mib(p.HWMBytes)
				if r.Target == "direct" {
					up, cpu, rss = "– | – | –", "–", "–"
				}
				fmt.Fprintf(w, "| %d | %d | %s | %.3f | %s | %s | %s | %.2f | %.2f | %s | %s |\n", round, p.Clients, r.Target, p.WallSeconds,
					ratio(p.WallSeconds, direct.pull().WallSeconds), up, cpu, p.UpCPUSeconds, p.ClientCPUSeconds, rss, errs)
			}
		}
	}
	fmt.Fprintln(w)
}

// ttfbStats are the samples of one target and mode in one round.
type ttfbStats struct {
	ttfb, total, last []float64
	blobGETs, errs    int
	firstErr          string
}

func (res results) ttfbStats(round int, target, mode string) ttfbStats {
	var s ttfbStats
	for _, r := range res.find(round, "ttfb", target, mode) {
		if r.Error != "" {
			s.errs++
			if s.firstErr == "" {
				s.firstErr = r.Error
			}
			continue
		}
		t := r.ttfb()
		s.ttfb = append(s.ttfb, t.TTFBMS)
		s.total = append(s.total, t.TotalMS)
		s.last = append(s.last, t.LastByteMS)
		if r.Upstream != nil {
			s.blobGETs = max(s.blobGETs, r.Upstream.BlobGETs)
		}
	}
	return s
}

func minMax(xs []float64) string {
	if len(xs) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f–%.1f", slices.Min(xs), slices.Max(xs))
}

func writeTTFB(w io.Writer, res results, o reportOpts) {
	fmt.Fprintf(w, "#### Time to first byte of a cold %s blob\n\n", o.big)
	fmt.Fprintf(w, "One fresh connection per sample, dialled before the clock starts; the clock runs from writing the blob request to reading its first body byte. \"manifest\": GET the manifest first on the same connection, then the blob (\"manifest+blob\" is from the manifest request to the blob's first byte). Each peer sample runs on a freshly started peer with empty storage; the body is read to the end and verified. Bar: 2× the upstream's median in the same round and mode + 5 ms.\n\n")
	fmt.Fprintln(w, "| Round | Mode | Target | Samples | TTFB ms median (min–max) | manifest+blob ms median | last byte ms median | bar ms | Upstream blob GETs per sample (max) | Errors |")
	fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---:|---:|---:|---|")
	for _, round := range res.rounds {
		for _, mode := range []string{"digest", "manifest"} {
			up := res.ttfbStats(round, "direct", mode)
			bar := 2*median(up.ttfb) + 5
			for _, t := range res.targets {
				s := res.ttfbStats(round, t, mode)
				if len(s.ttfb) == 0 && s.errs == 0 {
					continue
				}
				barCell, gets := fmt.Sprintf("%.1f", bar), fmt.Sprintf("%d", s.blobGETs)
				if t == "direct" {
					barCell, gets = "–", "–"
				}
				errs := fmt.Sprintf("%d", s.errs)
				if s.firstErr != "" {
					errs += ": " + cell(s.firstErr)
				}
				fmt.Fprintf(w, "| %d | %s | %s | %d | %.1f (%s) | %.1f | %.0f | %s | %s | %s |\n", round, mode, t, len(s.ttfb),
					median(s.ttfb), minMax(s.ttfb), median(s.total), median(s.last), barCell, gets, errs)
			}
		}
	}
	fmt.Fprintln(w)
}

func writeDown(w io.Writer, res results, o reportOpts) {
	fmt.Fprintf(w, "#### Upstream down (stopped by PID)\n\n")
	fmt.Fprintf(w, "Each peer is the one that served the concurrent cold pull, so the image is cached. Warm pulls, 1 client: with the upstream up (its tag older than airlock's tagTTL of %.0f s, so it is revalidated); then, upstream stopped, one within tagTTL of that revalidation (\"fresh\") and one after it (\"stale\": airlock must try the upstream before serving the cached tag; docker-registry's proxy tries on every pull). \"stale serves\" is the increase of airlock_cache_stale_serves_total during the pull. Cold misses: the tag and the blob of bench/blob, which this peer never fetched.\n\n", o.tagTTL)
	fmt.Fprintln(w, "| Round | Target | warm, up s | upstream requests (up) | warm, down, fresh s | ratio to up | warm, down, stale s | ratio to up | stale serves (fresh / stale) | cold tag: status, s | cold blob: status, s | cold tag body | cold blob body |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---|---|")
	for _, round := range res.rounds {
		for _, t := range res.peers() {
			upR, ok := res.one(round, "warm_up", t, "")
			if !ok {
				continue
			}
			freshR, hasFresh := res.one(round, "warm_down_fresh", t, "")
			staleR, hasStale := res.one(round, "warm_down", t, "")
			tagR, _ := res.one(round, "miss_tag", t, "")
			blobR, _ := res.one(round, "miss_blob", t, "")
			up := upR.pull()
			reqs := "–"
			if upR.Upstream != nil {
				reqs = fmt.Sprintf("%d", upR.Upstream.Requests)
			}
			tag, blob := tagR.probe(), blobR.probe()
			fmt.Fprintf(w, "| %d | %s | %.3f | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s | %s |\n", round, t, up.WallSeconds, reqs,
				pullCell(freshR.pull(), hasFresh), ratio(freshR.pull().WallSeconds, up.WallSeconds),
				pullCell(staleR.pull(), hasStale), ratio(staleR.pull().WallSeconds, up.WallSeconds),
				staleCell(freshR.StaleServes), staleCell(staleR.StaleServes),
				probeCell(tag), probeCell(blob), bodyCell(tag), bodyCell(blob))
		}
	}
	fmt.Fprintln(w)
}

func pullCell(p pullResult, found bool) string {
	if !found {
		return "–"
	}
	s := fmt.Sprintf("%.3f", p.WallSeconds)
	if p.Errors > 0 {
		s += " (" + cell(p.FirstError) + ")"
	}
	return s
}

func staleCell(n *int) string {
	if n == nil {
		return "–"
	}
	return fmt.Sprintf("%d", *n)
}

func probeCell(p probeResult) string {
	return fmt.Sprintf("%d, %.3f", p.Status, p.Seconds)
}

func bodyCell(p probeResult) string {
	s := p.Body
	if p.Error != "" {
		s = "error: " + p.Error
	}
	if s == "" {
		return "(empty)"
	}
	return "`" + strings.ReplaceAll(cell(s), "`", "'") + "`"
}
