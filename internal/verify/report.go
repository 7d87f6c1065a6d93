package verify

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Outcome is what a probe found.
type Outcome string

// Outcomes. Leak and Failed are findings; NotTested and NotTestable say
// plainly what the battery could not establish.
const (
	Blocked     Outcome = "blocked"      // nothing came back from the far side
	Leak        Outcome = "LEAK"         // the far side answered
	Reachable   Outcome = "reachable"    // a positive check passed
	Failed      Outcome = "FAILED"       // a positive check failed
	NotTested   Outcome = "not tested"   // a target is unset or the probe lacks a privilege
	NotTestable Outcome = "not testable" // no probe can establish it from the node
)

// Row is one channel's result.
type Row struct {
	// Channel is a stable identifier such as "tcp-ip" or "dns-outside-udp".
	Channel string `json:"channel"`
	// Target is what was probed ("198.19.0.10:443"), empty when untested.
	Target string `json:"target,omitempty"`
	// Expected is "blocked" for an escape channel, "reachable" for a
	// positive check.
	Expected Outcome `json:"expected"`
	// Got is what the probe found.
	Got Outcome `json:"got"`
	// Evidence says what was seen: an errno, bytes received, an rcode, a
	// certificate fingerprint, or why the channel was not tested.
	Evidence string `json:"evidence"`
}

// Report is the outcome of one run.
type Report struct {
	// Netns is the network namespace probed from ("" = the caller's).
	Netns string `json:"netns,omitempty"`
	// Resolver is the node's DNS server the DNS probes used and where it
	// was found ("127.0.0.1:53 (nameserver in /r/etc/resolv.conf)").
	Resolver string `json:"resolver"`
	// Rows are in the battery's fixed channel order.
	Rows []Row `json:"results"`
}

// Verdict is the overall result, which main maps to an exit code.
type Verdict int

// Verdicts, from best to worst.
const (
	Clean          Verdict = iota // no leak, every positive check that ran passed
	PositiveFailed                // no leak, but a positive check failed
	Leaked                        // at least one channel leaked
)

// Count returns how many rows got o.
func (r Report) Count(o Outcome) int {
	n := 0
	for _, row := range r.Rows {
		if row.Got == o {
			n++
		}
	}
	return n
}

// Verdict returns Leaked when any channel leaked, else PositiveFailed when
// a positive check failed, else Clean.
func (r Report) Verdict() Verdict {
	switch {
	case r.Count(Leak) > 0:
		return Leaked
	case r.Count(Failed) > 0:
		return PositiveFailed
	}
	return Clean
}

// Summary is the one-line conclusion printed under the table.
func (r Report) Summary() string {
	from := "this namespace"
	if r.Netns != "" {
		from = "netns " + r.Netns
	}
	s := fmt.Sprintf("%s, %d blocked, %d positive %s passed, %d failed, %d not tested, %d not testable (from %s; resolver %s)",
		plural(r.Count(Leak), "leak", "leaks"), r.Count(Blocked), r.Count(Reachable), pluralWord(r.Count(Reachable), "check", "checks"),
		r.Count(Failed), r.Count(NotTested), r.Count(NotTestable), from, r.Resolver)
	switch r.Verdict() {
	case Leaked:
		return "LEAK: " + s
	case PositiveFailed:
		return "FAILED: " + s
	}
	return "ok: " + s
}

// WriteTable prints the rows as an aligned table and the summary line.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANNEL\tTARGET\tEXPECTED\tGOT\tEVIDENCE")
	for _, row := range r.Rows {
		target := row.Target
		if target == "" {
			target = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", row.Channel, target, row.Expected, row.Got, oneLine(row.Evidence))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing the table: %w", err)
	}
	_, err := fmt.Fprintln(w, r.Summary())
	return err
}

// jsonReport is the --json form: the report plus its summary counts.
type jsonReport struct {
	Report
	Leaks   int    `json:"leaks"`
	Failed  int    `json:"failedChecks"`
	Summary string `json:"summary"`
	Outcome string `json:"verdict"`
}

// WriteJSON prints the report as one indented JSON object.
func (r Report) WriteJSON(w io.Writer) error {
	verdict := map[Verdict]string{Clean: "clean", PositiveFailed: "positive-check-failed", Leaked: "leak"}[r.Verdict()]
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(jsonReport{Report: r, Leaks: r.Count(Leak), Failed: r.Count(Failed), Summary: r.Summary(), Outcome: verdict}); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func plural(n int, one, many string) string {
	return fmt.Sprintf("%d %s", n, pluralWord(n, one, many))
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
