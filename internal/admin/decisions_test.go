package admin

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// rec is a gateway decision record as the logger writes it.
func rec(i int, verdict, src, name, rule string, wouldDeny bool) string {
	s := fmt.Sprintf(`{"time":"2026-12-05T09:00:00Z","level":"INFO","msg":"egress decision","component":"gateway","listener":"proxy","src":%q,"port":443,"name":%q,"proto":"tcp","verdict":%q,"reason":"x","seq":%d`, src, name, verdict, i)
	if rule != "" {
		s += fmt.Sprintf(`,"type":"application","group":"g","collection":"c","rule":%q`, rule)
	}
	if wouldDeny {
		s += `,"mode":"report","would_deny":true`
	}
	return s + "}\n"
}

func TestDecisionsRingIsBounded(t *testing.T) {
	d := NewDecisions(DecisionsOptions{Keep: 5})
	for i := 0; i < 12; i++ {
		if !d.Add([]byte(rec(i, "allow", "10.0.0.1:1", "a.example", "", false))) {
			t.Fatalf("Add(record %d) = false, want kept", i)
		}
	}
	if d.Len() != 5 {
		t.Errorf("Len after 12 records = %d, want 5", d.Len())
	}
	got := d.Recent(Filter{}, 0)
	if len(got) != 5 || !strings.Contains(string(got[0]), `"seq":7`) || !strings.Contains(string(got[4]), `"seq":11`) {
		t.Errorf("Recent = %q, want records 7..11 oldest first", got)
	}
	if got := d.Recent(Filter{}, 2); len(got) != 2 || !strings.Contains(string(got[1]), `"seq":11`) || !strings.Contains(string(got[0]), `"seq":10`) {
		t.Errorf("Recent(limit 2) = %q, want records 10, 11", got)
	}
	for _, line := range []string{"not json\n", `{"msg":"admin listening"}`, `["egress decision"]`, ""} {
		if d.Add([]byte(line)) {
			t.Errorf("Add(%q) = true, want skipped", line)
		}
	}
}

func TestDecisionsFilters(t *testing.T) {
	d := NewDecisions(DecisionsOptions{})
	d.Add([]byte(rec(0, "allow", "10.244.1.2:5000", "mcr.microsoft.com", "mcr", false)))
	d.Add([]byte(rec(1, "deny", "10.244.1.3:5000", "evil.example", "", false)))
	d.Add([]byte(rec(2, "deny", "10.224.0.4:5000", "Other.Example", "", true)))
	d.Add([]byte(`{"msg":"dns decision","src":"10.244.1.2:53001","qname":"evil.example.","verdict":"deny","reason":"no_match"}`))
	for _, tt := range []struct {
		name  string
		query map[string]string
		want  []string // seq or qname markers
	}{
		{name: "none", want: []string{`"seq":0`, `"seq":1`, `"seq":2`, `"qname"`}},
		{name: "verdict deny (report mode included)", query: map[string]string{"verdict": "deny"}, want: []string{`"seq":1`, `"seq":2`, `"qname"`}},
		{name: "verdict allow", query: map[string]string{"verdict": "allow"}, want: []string{`"seq":0`}},
		{name: "src address", query: map[string]string{"src": "10.244.1.2"}, want: []string{`"seq":0`, `"qname"`}},
		{name: "src prefix", query: map[string]string{"src": "10.244.0.0/16"}, want: []string{`"seq":0`, `"seq":1`, `"qname"`}},
		{name: "name part, any case, dns qname too", query: map[string]string{"name": "EVIL"}, want: []string{`"seq":1`, `"qname"`}},
		{name: "rule name", query: map[string]string{"rule": "mcr"}, want: []string{`"seq":0`}},
		{name: "rule path", query: map[string]string{"rule": "g/c/mcr"}, want: []string{`"seq":0`}},
		{name: "rule path of another group", query: map[string]string{"rule": "x/c/mcr"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFilter(func(k string) string { return tt.query[k] })
			if err != nil {
				t.Fatalf("ParseFilter(%v) = %v", tt.query, err)
			}
			got := d.Recent(f, 0)
			if len(got) != len(tt.want) {
				t.Fatalf("Recent(%v) = %d records %q, want %d", tt.query, len(got), got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(string(got[i]), w) {
					t.Errorf("record %d = %s, want it to hold %s", i, got[i], w)
				}
			}
		})
	}
	for _, q := range []map[string]string{{"verdict": "maybe"}, {"src": "10.0.0.300"}, {"src": "evil"}} {
		if _, err := ParseFilter(func(k string) string { return q[k] }); err == nil {
			t.Errorf("ParseFilter(%v) = nil error, want one", q)
		}
	}
}

func TestDecisionsPerMinute(t *testing.T) {
	now := time.Date(2026, 12, 5, 9, 30, 10, 0, time.UTC)
	d := NewDecisions(DecisionsOptions{Now: func() time.Time { return now }})
	d.Add([]byte(rec(0, "allow", "10.0.0.1:1", "a", "", false)))
	d.Add([]byte(rec(1, "deny", "10.0.0.1:1", "a", "", false)))
	d.Add([]byte(rec(2, "deny", "10.0.0.1:1", "a", "", true)))
	now = now.Add(2 * time.Minute)
	d.Add([]byte(rec(3, "allow", "10.0.0.1:1", "a", "", false)))
	pm := d.PerMinute()
	if len(pm) != 60 {
		t.Fatalf("PerMinute = %d minutes, want 60", len(pm))
	}
	last, twoAgo := pm[59], pm[57]
	if !last.Minute.Equal(time.Date(2026, 12, 5, 9, 32, 0, 0, time.UTC)) || last.Allow != 1 || last.Deny != 0 {
		t.Errorf("current minute = %+v, want 09:32 with 1 allow", last)
	}
	if twoAgo.Allow != 1 || twoAgo.Deny != 1 || twoAgo.WouldDeny != 1 {
		t.Errorf("minute 09:30 = %+v, want 1 allow, 1 deny, 1 would-deny", twoAgo)
	}
	now = now.Add(61 * time.Minute)
	for _, m := range d.PerMinute() {
		if m.Allow+m.Deny+m.WouldDeny != 0 {
			t.Errorf("an hour later, minute %v = %+v, want zero", m.Minute, m)
		}
	}
}

// A subscriber that does not read is dropped once its queue is full; Add
// never blocks, the drop is counted, and the other subscriber gets every
// record.
func TestDecisionsSlowSubscriberIsDropped(t *testing.T) {
	reg := prometheus.NewRegistry()
	d := NewDecisions(DecisionsOptions{Queue: 4, Registerer: reg})
	slow := d.Subscribe(Filter{})
	fast := d.Subscribe(Filter{Verdict: "deny"})
	got := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 100; i++ {
			d.Add([]byte(rec(i, "deny", "10.0.0.1:1", "a", "", false)))
			if _, ok := <-fast.C(); ok { // queued by Add: the reader keeps up
				got++
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Add blocked on a subscriber that does not read")
	}
	n := 0
	for range slow.C() { // closed after the 4 queued records
		n++
	}
	if n != 4 {
		t.Errorf("slow subscriber got %d records before being dropped, want its queue of 4", n)
	}
	if v := testutil.ToFloat64(d.dropped); v != 1 {
		t.Errorf("airlock_admin_stream_dropped_total = %v, want 1", v)
	}
	if d.Subscribers() != 1 {
		t.Errorf("Subscribers = %d, want 1 (the slow one freed)", d.Subscribers())
	}
	d.Unsubscribe(fast)
	if got != 100 {
		t.Errorf("reading subscriber got %d records, want 100", got)
	}
	d.Unsubscribe(slow) // already dropped: no panic
}

// BenchmarkAdd is the cost the console adds to logging one decision
// (parsing the line's filter fields, keeping it, counting it) with one
// stream subscriber.
func BenchmarkAdd(b *testing.B) {
	d := NewDecisions(DecisionsOptions{})
	s := d.Subscribe(Filter{Verdict: "deny"})
	go func() {
		for range s.C() {
		}
	}()
	line := []byte(rec(1, "deny", "10.244.1.3:5000", "evil.example", "", false))
	b.ReportAllocs()
	for b.Loop() {
		d.Add(line)
	}
	d.Unsubscribe(s)
}
