package learn

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/dnsname"
)

// t0 is the time of the first test record.
var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// gwLine returns a gateway decision record as slog's JSON handler writes
// it; extra keys override.
func gwLine(t testing.TB, i int, src, dst string, port int, name, proto, app, verdict, reason string, extra ...any) []byte {
	m := map[string]any{
		"time": t0.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano), "level": "INFO",
		"msg": "egress decision", "component": "gateway", "listener": "transparent", "src": src,
		"port": port, "proto": proto, "app": app, "verdict": verdict, "reason": reason, "mode": "enforce",
		"bytes_up": 100, "bytes_down": 1000, "duration_ms": 3,
	}
	if dst != "" {
		m["dst"] = dst
	}
	if name != "" {
		m["name"] = name
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == nil {
			delete(m, extra[i].(string))
			continue
		}
		m[extra[i].(string)] = extra[i+1]
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dnsLine returns a DNS decision record.
func dnsLine(t testing.TB, i int, src, qname, qtype, verdict, reason string, extra ...any) []byte {
	m := map[string]any{
		"time": t0.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano), "level": "INFO",
		"msg": "dns decision", "component": "dns", "src": src, "proto": "udp", "qname": qname, "qtype": qtype,
		"verdict": verdict, "reason": reason, "rcode": "REFUSED", "answers": 0, "duration_ms": 0.2,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// learnLines feeds lines to a new Learner and returns its proposal.
func learnLines(t testing.TB, opts Options, lines ...[]byte) *Proposal {
	t.Helper()
	l := New(opts)
	for _, line := range lines {
		r, err := ParseRecord(line)
		if err != nil {
			t.Fatalf("ParseRecord(%s) = %v", line, err)
		}
		l.Add(r)
	}
	return l.Proposal()
}

func mustName(t testing.TB, s string) dnsname.Name {
	n, err := dnsname.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
