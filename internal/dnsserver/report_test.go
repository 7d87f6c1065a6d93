package dnsserver

import (
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/airlockdev/airlock/internal/policy"
	"github.com/airlockdev/airlock/internal/testkit/dnstest"
)

// reportZone is baseZone with a few names that exercise report mode.
func reportZone() map[string][]string {
	z := baseZone()
	z["other.test./A"] = []string{"other.test. 300 IN A 1.2.4.1"}
	z["alias.allowed.test./A"] = []string{"alias.allowed.test. 300 IN CNAME edge.denied.test.", "edge.denied.test. 300 IN A 1.2.4.2"}
	z["internal.denied.test./A"] = []string{"internal.denied.test. 300 IN A 10.9.9.9"}
	z["other.test./TXT"] = []string{`other.test. 300 IN TXT "data"`}
	return z
}

// lastRecord returns the last decision record for qname.
func lastRecord(t *testing.T, e *env, qname string) map[string]any {
	t.Helper()
	recs := e.logs.Records(t)
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i]["qname"] == qname {
			return recs[i]
		}
	}
	t.Fatalf("no record for %s in:\n%s", qname, e.logs.String())
	return nil
}

func wantFields(t *testing.T, rec map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("record[%s] = %v, want %v (record %v)", k, rec[k], v, rec)
		}
	}
}

// TestReportModeAnswersDenied: in report mode a name the policy denies (no
// rule, or a deny rule, or a CNAME chain into such a name) is forwarded,
// cached, replayed by the fast path, observed for FQDN network rules, and
// logged as a would-be deny every time.
func TestReportModeAnswersDenied(t *testing.T) {
	up := dnstest.NewZone(t, reportZone())
	cfg := defaults(up.Addr)
	cfg.Mode = ModeReport
	cfg.LogAllowed = LogNone // would-be denies are logged whatever logAllowed says
	e := start(t, cfg, Deps{})

	for i := range 3 { // a miss, a cache hit (stored for replay), a replay
		r := e.ask(t, "other.test", dns.TypeA, false, 1232)
		if r.Rcode != dns.RcodeSuccess || !slices.Equal(addrs(r), []string{"1.2.4.1"}) {
			t.Fatalf("query %d: other.test = %s %v, want NOERROR [1.2.4.1]", i, dns.RcodeToString[r.Rcode], addrs(r))
		}
		if opt := r.IsEdns0(); opt != nil && len(opt.Option) > 0 {
			t.Errorf("query %d: answer carries %v, want no Blocked EDE (it was not blocked)", i, opt.Option)
		}
	}
	if n := up.Queries.Load(); n != 1 {
		t.Errorf("upstream queries = %d, want 1 (cached like an allowed name)", n)
	}
	if e.srv.fast.len() != 1 {
		t.Errorf("fast path entries = %d, want 1", e.srv.fast.len())
	}
	var caches []string
	for _, r := range e.logs.Records(t) {
		if r["qname"] != "other.test" {
			continue
		}
		caches = append(caches, r["cache"].(string))
		wantFields(t, r, map[string]any{"verdict": "deny", "reason": "no_match", "rcode": "NOERROR", "mode": "report", "would_deny": true})
	}
	if !slices.Equal(caches, []string{"miss", "hit", "hit"}) {
		t.Errorf("other.test records by cache = %v, want miss, hit, hit (the replay logged too)", caches)
	}
	if got := e.srv.Observations().NamesFor(mustAddr("1.2.4.1"), e.clock.Now()); len(got) != 1 || got[0].String() != "other.test" {
		t.Errorf("NamesFor(1.2.4.1) = %v, want [other.test] (observed for FQDN network rules)", got)
	}

	// A deny rule is reported too, with the rule.
	if r := e.ask(t, "deny.allowed.test", dns.TypeA, false, 0); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("deny.allowed.test = %s %v, want its address", dns.RcodeToString[r.Rcode], r.Answer)
	}
	wantFields(t, lastRecord(t, e, "deny.allowed.test"), map[string]any{
		"verdict": "deny", "reason": "rule_deny", "collection": "appdeny", "rule": "bad", "mode": "report", "would_deny": true})

	// An allowed name whose chain enters a denied name: the chain's name
	// decides the record.
	if r := e.ask(t, "alias.allowed.test", dns.TypeA, false, 0); !slices.Equal(addrs(r), []string{"1.2.4.2"}) {
		t.Errorf("alias.allowed.test = %s %v, want the chain's address", dns.RcodeToString[r.Rcode], r.Answer)
	}
	wantFields(t, lastRecord(t, e, "alias.allowed.test"), map[string]any{
		"verdict": "deny", "reason": "no_match", "decided_name": "edge.denied.test", "would_deny": true})

	// An allowed name: mode in the record, no would_deny, sampled out by
	// logAllowed none.
	e.ask(t, "www.allowed.test", dns.TypeA, false, 0)
	for _, r := range e.logs.Records(t) {
		if r["qname"] == "www.allowed.test" {
			t.Errorf("allowed query logged with logAllowed none: %v", r)
		}
	}
}

// TestReportModeKeepsNodeFilters: report mode never answers what the
// checks protecting the node refuse.
func TestReportModeKeepsNodeFilters(t *testing.T) {
	up := dnstest.NewZone(t, reportZone())
	cfg := defaults(up.Addr)
	cfg.Mode = ModeReport
	cfg.PrivateZones = privateZones()
	e := start(t, cfg, Deps{})
	for _, tc := range []struct {
		name   string
		qtype  uint16
		rcode  int
		reason string
	}{
		{"internal.denied.test", dns.TypeA, dns.RcodeNameError, "rebinding"},     // denied name, internal address
		{"meta.allowed.test", dns.TypeA, dns.RcodeNameError, "rebinding"},        // allowed name, metadata address
		{"other.test", dns.TypeTXT, dns.RcodeNameError, "qtype_denied"},          // denied name, type not allowed
		{"www.allowed.test", dns.TypeTXT, dns.RcodeNameError, "qtype_denied"},    // allowed name, type not allowed
		{"use-application-dns.net", dns.TypeA, dns.RcodeNameError, "doh_canary"}, // DoH stays off
		{"bad_name!.test", dns.TypeA, dns.RcodeNameError, "name_invalid"},        // not a host name
		{"nx.denied.test", dns.TypeA, dns.RcodeNameError, "no_match"},            // denied, upstream NXDOMAIN: reported, forwarded
		{"evil.allowed.test", dns.TypeA, dns.RcodeSuccess, "no_match"},           // chain into denied: reported
		{"acr.privatelink.test", dns.TypeA, dns.RcodeSuccess, "private_zone"},    // private zones unchanged
	} {
		r := e.ask(t, tc.name, tc.qtype, false, 0)
		if r.Rcode != tc.rcode {
			t.Errorf("%s %s rcode = %s, want %s", tc.name, dns.Type(tc.qtype), dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
		}
		qname := tc.name
		if tc.reason == "name_invalid" {
			qname += "." // logged as sent
		}
		rec := lastRecord(t, e, qname)
		if rec["reason"] != tc.reason {
			t.Errorf("%s %s reason = %v, want %s", tc.name, dns.Type(tc.qtype), rec["reason"], tc.reason)
		}
		reported := tc.reason == "no_match"
		if (rec["would_deny"] == true) != reported {
			t.Errorf("%s %s would_deny = %v, want %v", tc.name, dns.Type(tc.qtype), rec["would_deny"], reported)
		}
		if rec["mode"] != "report" {
			t.Errorf("%s %s mode = %v, want report", tc.name, dns.Type(tc.qtype), rec["mode"])
		}
	}
	if got := e.srv.Observations().NamesFor(mustAddr("10.9.9.9"), e.clock.Now()); len(got) != 0 {
		t.Errorf("NamesFor(10.9.9.9) = %v, want none (refused)", got)
	}
}

// TestEnforceModeRecordUnchanged: enforce mode denies as before and its
// records carry no mode.
func TestEnforceModeRecordUnchanged(t *testing.T) {
	up := dnstest.NewZone(t, reportZone())
	e := start(t, defaults(up.Addr), Deps{})
	if r := e.ask(t, "other.test", dns.TypeA, false, 0); r.Rcode != dns.RcodeNameError {
		t.Errorf("other.test rcode = %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	rec := lastRecord(t, e, "other.test")
	if _, ok := rec["mode"]; ok {
		t.Errorf("enforce record has mode: %v", rec)
	}
	if _, ok := rec["would_deny"]; ok {
		t.Errorf("enforce record has would_deny: %v", rec)
	}
	if up.Queries.Load() != 0 {
		t.Errorf("upstream queries = %d, want 0", up.Queries.Load())
	}
}

// TestHitsCountEveryQuestion: rule hits count every question, those the
// fast path replays and those logAllowed leaves out included.
func TestHitsCountEveryQuestion(t *testing.T) {
	up := dnstest.NewZone(t, reportZone())
	for _, log := range []string{LogNone, LogSampled} {
		t.Run(log, func(t *testing.T) {
			hits := policy.NewHits(time.Time{})
			cfg := defaults(up.Addr)
			cfg.LogAllowed = log
			cfg.PrivateZones = privateZones()
			e := start(t, cfg, Deps{Hits: hits})
			for range 5 {
				e.ask(t, "www.allowed.test", dns.TypeA, false, 0) // UDP: miss, hit, replays
			}
			e.ask(t, "www.allowed.test", dns.TypeA, true, 0) // TCP
			e.ask(t, "ntp.test", dns.TypeA, false, 0)
			e.ask(t, "other.test", dns.TypeA, false, 0)
			e.ask(t, "deny.allowed.test", dns.TypeA, false, 0)
			e.ask(t, "acr.privatelink.test", dns.TypeA, false, 0)
			got := map[string]uint64{}
			for _, r := range hits.Snapshot() {
				got[r.RuleRef.String()] = r.ByComponent["dns"]
			}
			want := map[string]uint64{"g/app/web": 6, "g/net/ntp": 1, "g/appdeny/bad": 1}
			if len(got) != len(want) {
				t.Errorf("hits = %v, want %v", got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("hits[%s] = %d, want %d (all: %v)", k, got[k], v, got)
				}
			}
			rep := hits.Report(policy.Config{})
			if rep.NoRule["dns deny"] != 1 || rep.NoRule["dns allow"] != 1 {
				t.Errorf("NoRule = %v, want dns deny 1 (other.test), dns allow 1 (private zone)", rep.NoRule)
			}
			if !rep.Since.Equal(e.clock.Now()) {
				t.Errorf("Since = %v, want the server's clock %v", rep.Since, e.clock.Now())
			}
		})
	}
}
