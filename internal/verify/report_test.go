package verify

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestVerdict(t *testing.T) {
	tests := []struct {
		name string
		got  []Outcome
		want Verdict
	}{
		{"all blocked", []Outcome{Blocked, Reachable, NotTested, NotTestable}, Clean},
		{"a positive check failed", []Outcome{Blocked, Failed}, PositiveFailed},
		{"a leak wins over a failed check", []Outcome{Leak, Failed}, Leaked},
		{"nothing ran", nil, Clean},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Report
			for _, g := range tt.got {
				r.Rows = append(r.Rows, Row{Channel: "c", Got: g})
			}
			if got := r.Verdict(); got != tt.want {
				t.Errorf("Verdict() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWriteTableAndJSON(t *testing.T) {
	r := Report{Resolver: "127.0.0.1:53 (node.dns)", Netns: "pod1", Rows: []Row{
		{Channel: "tcp-ip", Target: "198.19.0.10:443", Expected: Blocked, Got: Leak, Evidence: "connection refused:\nRST"},
		{Channel: "udp-443", Target: "198.19.0.10:443", Expected: Blocked, Got: Blocked, Evidence: "no answer within 3s"},
		{Channel: "allowed-name", Expected: Reachable, Got: NotTested, Evidence: "set verify.targets.allowedName"},
	}}
	var tb bytes.Buffer
	if err := r.WriteTable(&tb); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(tb.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("WriteTable printed %d lines, want header, 3 rows and a summary:\n%s", len(lines), tb.String())
	}
	for i, want := range []string{"CHANNEL", "tcp-ip", "udp-443", "allowed-name", "LEAK: 1 leak, 1 blocked"} {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], want)
		}
	}
	if !strings.Contains(lines[1], "connection refused: RST") || !strings.Contains(lines[4], "netns pod1") {
		t.Errorf("table = %q, want evidence on one line and the namespace in the summary", tb.String())
	}
	var jb bytes.Buffer
	if err := r.WriteJSON(&jb); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Leaks    int    `json:"leaks"`
		Verdict  string `json:"verdict"`
		Resolver string `json:"resolver"`
		Results  []Row  `json:"results"`
	}
	if err := json.Unmarshal(jb.Bytes(), &got); err != nil {
		t.Fatalf("WriteJSON output is not JSON: %v\n%s", err, jb.String())
	}
	if got.Leaks != 1 || got.Verdict != "leak" || len(got.Results) != 3 || got.Results[0] != r.Rows[0] || got.Resolver != r.Resolver {
		t.Errorf("WriteJSON = %+v, want 1 leak, verdict leak, the 3 rows and the resolver", got)
	}
}
