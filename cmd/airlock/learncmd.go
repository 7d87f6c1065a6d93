package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/airlockdev/airlock/internal/config"
	"github.com/airlockdev/airlock/internal/learn"
	"github.com/airlockdev/airlock/internal/policy"
)

const policyLearnSummary = "propose the policy that allows what was denied, from decision records"

const policyLearnUsage = `
Reads airlock's decision records (its JSON log as written: gateway "egress
decision" and DNS "dns decision" lines; other lines are skipped) from --from
FILE (- for stdin) or from a running server's recent records (--server, the
admin listener), and writes a policy proposal that allows what was denied, or
would have been in report mode, and nothing more. Sources are grouped by
learn.sources (or --sources); names collapse into *.domain at --threshold
siblings under one registrable domain; names of a built-in FQDN tag become
the tag when two or more were seen; flows without a name become network rules.
Each rule carries its evidence as a comment. The output is a config document
(version: 1 and policy:) that passes 'airlock policy check' as it is.

--merge FILE adds the proposal to FILE's policy as a new group (leaving out
what FILE's policy already allows), prints the diff, and writes the whole
merged config. Exit 0 on success, 1 when the result fails the check or the
records cannot be read, 2 on usage errors.

Example:
  airlock policy learn --from /var/log/airlock.json --sources 'nodes=10.224.0.0/16;pods=10.244.0.0/16' > learned.yaml
  journalctl -u airlock -o cat | airlock policy learn --from - --config /etc/airlock/airlock.yaml
  airlock policy learn --server http://127.0.0.1:9090 --merge /etc/airlock/airlock.yaml --output airlock.new.yaml`

var policyLearnCmd = command{summary: policyLearnSummary, usage: policyLearnUsage, run: runPolicyLearn}

// recordFlags are the flags both learn and hits read records with.
type recordFlags struct {
	from, server *string
	auth         adminAuth
}

func addRecordFlags(fs *flag.FlagSet) recordFlags {
	return recordFlags{
		from:   fs.String("from", "", "read decision records from `FILE` (- for stdin)"),
		server: fs.String("server", "", "read from a running airlock's admin listener at `URL` (http://127.0.0.1:9090)"),
		auth:   addAdminAuthFlags(fs),
	}
}

// check returns a usage message, or "".
func (f recordFlags) check() string {
	switch {
	case (*f.from == "") == (*f.server == ""):
		return "give --from FILE (- for stdin) or --server URL"
	case f.auth.check() != "":
		return f.auth.check()
	case *f.server != "":
		u, err := url.Parse(*f.server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Sprintf("--server %q: want http://HOST:PORT or https://HOST:PORT", *f.server)
		}
	}
	return ""
}

// open returns the stream of --from, or the body of GET --server + path.
func (f recordFlags) open(path string, stdin io.Reader) (io.ReadCloser, error) {
	switch {
	case *f.from == "-":
		return io.NopCloser(stdin), nil
	case *f.from != "":
		r, err := os.Open(*f.from)
		if err != nil {
			return nil, fmt.Errorf("--from: %w", err)
		}
		return r, nil
	}
	body, err := f.auth.get(strings.TrimSuffix(*f.server, "/")+path, 2*time.Minute)
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	return body, nil
}

// stdin is what --from - reads; tests replace it.
var stdin io.Reader = os.Stdin

// readRecords feeds every record of r to add, printing progress on
// progress about once a second.
func readRecords(r io.Reader, progress io.Writer, add func(learn.Record)) (*learn.Reader, error) {
	rd := learn.NewReader(r)
	last := time.Now()
	var n int64
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return rd, nil
		}
		if err != nil {
			return rd, fmt.Errorf("reading records: %w", err)
		}
		add(rec)
		if n++; n%4096 == 0 && time.Since(last) >= time.Second {
			last = time.Now()
			fmt.Fprintf(progress, "read %d records, %d lines skipped\n", n, rd.Skipped+rd.Malformed)
		}
	}
}

func runPolicyLearn(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("policy learn", policyLearnSummary, policyLearnUsage, stderr)
	rf := addRecordFlags(fs)
	merge := fs.String("merge", "", "add the proposal to this config `FILE`'s policy; print the diff, write the merged config")
	threshold := fs.Int("threshold", 0, "sibling names under one registrable domain that collapse into *.domain (default: learn.threshold, 3)")
	sources := fs.String("sources", "", "source groups `NAME=CIDR[,CIDR];...` (default: learn.sources)")
	output := fs.String("output", "", "write the YAML to `FILE` instead of stdout")
	maxKeys := fs.Int("max-keys", learn.DefaultMaxKeys, "distinct (source, name or address, port, protocol) keys kept; bounds memory")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "airlock policy learn: %s; see 'airlock policy learn --help'\n", msg)
		return exitUsage
	}
	if fs.NArg() > 0 {
		return usage(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if msg := rf.check(); msg != "" {
		return usage(msg)
	}
	if *threshold < 0 || *threshold == 1 {
		return usage("--threshold must be at least 2")
	}
	if *maxKeys < 1 {
		return usage("--max-keys must be at least 1")
	}
	// learn settings from --config (or the merge target when it is the only
	// file given); the existing policy from the merge target, else --config.
	settingsPath := *cfgPath
	if settingsPath == "" {
		settingsPath = *merge
	}
	cfg, err := config.Load(settingsPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFinding
	}
	existing := cfg
	if *merge != "" && *merge != settingsPath {
		if existing, err = config.Load(*merge); err != nil {
			fmt.Fprintln(stderr, err)
			return exitFinding
		}
	}
	opts := learn.Options{Sources: cfg.Learn.Sources, Threshold: cfg.Learn.Threshold, Existing: existing.Policy, MaxKeys: *maxKeys}
	if *sources != "" {
		if opts.Sources, err = learn.ParseSources(*sources); err != nil {
			return usage(err.Error())
		}
	}
	if *threshold > 0 {
		opts.Threshold = *threshold
	}
	in, err := rf.open("/api/decisions?limit=10000", stdin)
	if err != nil {
		fmt.Fprintf(stderr, "airlock policy learn: %v\n", err)
		return exitFinding
	}
	l := learn.New(opts)
	rd, err := readRecords(in, stderr, l.Add)
	in.Close()
	if err != nil {
		fmt.Fprintf(stderr, "airlock policy learn: %v\n", err)
		return exitFinding
	}
	p := l.Proposal()

	var out []byte
	checkName := "learned policy"
	if *merge == "" {
		var buf bytes.Buffer
		if err := p.WriteYAML(&buf); err != nil {
			fmt.Fprintf(stderr, "airlock policy learn: %v\n", err)
			return exitFinding
		}
		out = buf.Bytes()
	} else {
		doc, err := os.ReadFile(*merge)
		if err != nil {
			fmt.Fprintf(stderr, "airlock policy learn: --merge: %v\n", err)
			return exitFinding
		}
		var q *learn.Proposal
		if out, q, err = learn.MergeYAML(doc, existing.Policy, p); err != nil {
			fmt.Fprintf(stderr, "airlock policy learn: --merge %s: %v\n", *merge, err)
			return exitFinding
		}
		p, checkName = q, "merged "+*merge
		diffTo := stderr
		if *output != "" {
			diffTo = stdout
		}
		writeDiff(diffTo, *merge, "merged", doc, out)
	}
	// The promise: what is written passes config check and policy check;
	// nothing is written when it does not.
	if f, err := config.Parse(checkName, out); err != nil {
		fmt.Fprintf(stderr, "airlock policy learn: the %s fails the config check, so nothing was written:\n%v\n", checkName, err)
		return exitFinding
	} else if _, err := policy.Compile(f.Policy); err != nil {
		fmt.Fprintf(stderr, "airlock policy learn: the %s fails the policy check, so nothing was written:\n%v\n", checkName, err)
		return exitFinding
	}
	if *output != "" {
		if err := os.WriteFile(*output, out, 0o600); err != nil {
			fmt.Fprintf(stderr, "airlock policy learn: --output: %v\n", err)
			return exitFinding
		}
	} else if _, err := stdout.Write(out); err != nil {
		return exitFinding
	}
	st := p.Stats
	fmt.Fprintf(stderr, "airlock policy learn: %d lines: %d records (%d allowed, %d denied), %d skipped, %d malformed; %d rules proposed",
		rd.Lines, st.Records, st.Allowed, st.Denied, rd.Skipped, rd.Malformed, p.Rules())
	if p.AlreadyAllowed > 0 {
		fmt.Fprintf(stderr, ", %d already allowed", p.AlreadyAllowed)
	}
	fmt.Fprintln(stderr)
	if p.LeftOut > 0 {
		fmt.Fprintf(stderr, "warning: %d rules with the fewest hits were left out to keep the document under the config size limit (4 MiB)\n", p.LeftOut)
	}
	if st.Dropped > 0 {
		fmt.Fprintf(stderr, "warning: the key limit (%d, --max-keys) was reached: %d denied records of new keys were not learned; learn from a shorter stretch of log or set learn.sources\n", *maxKeys, st.Dropped)
	}
	return exitOK
}

// writeDiff prints a unified line diff of a and b (3 lines of context).
// Lines common to both ends are trimmed first; the middle is matched by a
// longest-common-subsequence table when it is small enough (4M cells),
// else shown as one replaced stretch.
func writeDiff(w io.Writer, aName, bName string, a, b []byte) {
	lines := func(s []byte) []string {
		l := strings.SplitAfter(string(s), "\n")
		if l[len(l)-1] == "" {
			l = l[:len(l)-1]
		}
		return l
	}
	ops := diffLines(lines(a), lines(b))
	changed := false
	for _, o := range ops {
		changed = changed || o.kind != ' '
	}
	if !changed {
		fmt.Fprintln(w, "no change")
		return
	}
	fmt.Fprintf(w, "--- %s\n+++ %s\n", aName, bName)
	const ctx = 3
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		// A hunk: from ctx lines before this change to ctx lines after the
		// last change that is within 2*ctx of the next.
		start := max(0, i-ctx)
		end := i
		for j := i; j < len(ops); j++ {
			if ops[j].kind != ' ' {
				end = j
			} else if j-end > 2*ctx {
				break
			}
		}
		end = min(len(ops), end+ctx+1)
		aStart, bStart, aN, bN := ops[start].a, ops[start].b, 0, 0
		for _, o := range ops[start:end] {
			if o.kind != '+' {
				aN++
			}
			if o.kind != '-' {
				bN++
			}
		}
		fmt.Fprintf(w, "@@ -%d,%d +%d,%d @@\n", aStart+1, aN, bStart+1, bN)
		for _, o := range ops[start:end] {
			fmt.Fprintf(w, "%c%s\n", o.kind, strings.TrimSuffix(o.line, "\n"))
		}
		i = end
	}
}

// diffOp is one line of a diff: kind ' ', '-' or '+', with the line's
// index in a and b (the next one, for lines not in that side).
type diffOp struct {
	kind byte
	line string
	a, b int
}

func diffLines(al, bl []string) []diffOp {
	pre := 0
	for pre < len(al) && pre < len(bl) && al[pre] == bl[pre] {
		pre++
	}
	suf := 0
	for suf < len(al)-pre && suf < len(bl)-pre && al[len(al)-1-suf] == bl[len(bl)-1-suf] {
		suf++
	}
	var ops []diffOp
	for i := 0; i < pre; i++ {
		ops = append(ops, diffOp{' ', al[i], i, i})
	}
	am, bm := al[pre:len(al)-suf], bl[pre:len(bl)-suf]
	n, m := len(am), len(bm)
	if n*m <= 4<<20 {
		// lcs[i][j] = LCS length of am[i:] and bm[j:].
		lcs := make([]int32, (n+1)*(m+1))
		at := func(i, j int) int32 { return lcs[i*(m+1)+j] }
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				v := max(at(i+1, j), at(i, j+1))
				if am[i] == bm[j] {
					v = at(i+1, j+1) + 1
				}
				lcs[i*(m+1)+j] = v
			}
		}
		i, j := 0, 0
		for i < n || j < m {
			switch {
			case i < n && j < m && am[i] == bm[j]:
				ops = append(ops, diffOp{' ', am[i], pre + i, pre + j})
				i, j = i+1, j+1
			case i < n && (j == m || at(i+1, j) >= at(i, j+1)):
				ops = append(ops, diffOp{'-', am[i], pre + i, pre + j})
				i++
			default:
				ops = append(ops, diffOp{'+', bm[j], pre + i, pre + j})
				j++
			}
		}
	} else {
		for i, l := range am {
			ops = append(ops, diffOp{'-', l, pre + i, pre})
		}
		for j, l := range bm {
			ops = append(ops, diffOp{'+', l, pre + n, pre + j})
		}
	}
	for k := 0; k < suf; k++ {
		ops = append(ops, diffOp{' ', al[len(al)-suf+k], len(al) - suf + k, len(bl) - suf + k})
	}
	return ops
}

const policyHitsSummary = "show each rule's hits, first and last, and the rules never hit"

const policyHitsUsage = `
Counts the decisions each rule made, from decision records (--from FILE, -
for stdin: every gateway and DNS record counted by the rule that decided it)
or from a running server's counters (--server, the admin listener's
/api/policy/hits), and lists every rule of the policy (--config) in
processing order with its hits by component, first and last hit. Rules never
hit are listed again at the end; rules with hits that the policy no longer
has are marked stale. DNS allows are logged sampled (dns.logAllowed), so
counts from a log undercount them.

Example:
  airlock policy hits --from /var/log/airlock.json --config /etc/airlock/airlock.yaml
  airlock policy hits --server http://127.0.0.1:9090 --json`

var policyHitsCmd = command{summary: policyHitsSummary, usage: policyHitsUsage, run: runPolicyHits}

func runPolicyHits(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("policy hits", policyHitsSummary, policyHitsUsage, stderr)
	rf := addRecordFlags(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON (policy.HitsReport)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "airlock policy hits: %s; see 'airlock policy hits --help'\n", msg)
		return exitUsage
	}
	if fs.NArg() > 0 {
		return usage(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if msg := rf.check(); msg != "" {
		return usage(msg)
	}
	var rep policy.HitsReport
	if *rf.server != "" {
		in, err := rf.open("/api/policy/hits", stdin)
		if err != nil {
			fmt.Fprintf(stderr, "airlock policy hits: %v\n", err)
			return exitFinding
		}
		err = json.NewDecoder(io.LimitReader(in, 64<<20)).Decode(&rep)
		in.Close()
		if err != nil {
			fmt.Fprintf(stderr, "airlock policy hits: --server: decoding the hits report: %v\n", err)
			return exitFinding
		}
	} else {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitFinding
		}
		in, err := rf.open("", stdin)
		if err != nil {
			fmt.Fprintf(stderr, "airlock policy hits: %v\n", err)
			return exitFinding
		}
		hits := policy.NewHits(time.Time{})
		_, err = readRecords(in, stderr, func(r learn.Record) { hits.Count(r.Component, r.Decision, r.Time) })
		in.Close()
		if err != nil {
			fmt.Fprintf(stderr, "airlock policy hits: %v\n", err)
			return exitFinding
		}
		rep = hits.Report(cfg.Policy)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return exitFinding
		}
		return exitOK
	}
	writeHits(stdout, rep)
	return exitOK
}

func writeHits(w io.Writer, rep policy.HitsReport) {
	at := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	if !rep.Since.IsZero() {
		fmt.Fprintf(w, "counting since %s\n\n", at(rep.Since))
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tTYPE\tACTION\tHITS\tGATEWAY\tDNS\tFIRST\tLAST")
	for _, r := range rep.Rules {
		name := r.RuleRef.String()
		if r.Stale {
			name += " (stale: not in the policy)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", name, dash(string(r.Type)), dash(string(r.Action)),
			r.Hits, r.ByComponent["gateway"], r.ByComponent["dns"], at(r.First), at(r.Last))
	}
	tw.Flush()
	if len(rep.NoRule) > 0 {
		keys := make([]string, 0, len(rep.NoRule))
		for k := range rep.NoRule {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %d", k, rep.NoRule[k]))
		}
		fmt.Fprintf(w, "\ndecided by no rule: %s\n", strings.Join(parts, ", "))
	}
	never := rep.NeverHit()
	fmt.Fprintf(w, "\nnever hit: %d of %d rules\n", len(never), len(rep.Rules))
	for _, r := range never {
		fmt.Fprintf(w, "  %s (%s %s)\n", r.RuleRef.String(), r.Type, r.Action)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
