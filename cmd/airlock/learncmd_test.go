package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/policy"
)

// learnConfig is a config with one allow rule and source groups.
const learnConfig = `version: 1
learn:
  sources:
    - name: nodes
      ranges: [10.224.0.0/16]
    - name: pods
      ranges: [10.244.0.0/16]
policy:
  ruleCollectionGroups:
    - name: base
      priority: 100
      ruleCollections:
        - name: registries
          type: application
          priority: 100
          action: allow
          rules:
            - name: mcr
              protocols: [https:443]
              sourceAddresses: ["*"]
              targetFqdns: [mcr.microsoft.com]
            - name: unused
              protocols: [https:443]
              sourceAddresses: ["*"]
              targetFqdns: [unused.example]
`

// decisionLog is a log as airlock writes it: decision records among other
// lines.
func decisionLog() string {
	var b strings.Builder
	t := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	gw := func(i int, src, dst string, port int, name, proto, app, verdict, reason, rule string) {
		nameKV := ""
		if name != "" {
			nameKV = fmt.Sprintf(`"name":%q,`, name)
		}
		fmt.Fprintf(&b, `{"time":%q,"level":"INFO","msg":"egress decision","component":"gateway","listener":"transparent","src":%q,"dst":%q,"port":%d,%s"proto":%q,"app":%q,"verdict":%q,"reason":%q%s,"mode":"report","bytes_up":10,"bytes_down":100,"duration_ms":1}`+"\n",
			t.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano), src, dst, port, nameKV, proto, app, verdict, reason, rule)
	}
	allowRule := `,"type":"application","group":"base","collection":"registries","rule":"mcr"`
	fmt.Fprintln(&b, `{"time":"2026-12-01T09:59:59Z","level":"INFO","msg":"airlock serving","version":"dev"}`)
	gw(1, "10.244.1.2:40000", "20.1.1.1:443", 443, "mcr.microsoft.com", "tcp", "https", "allow", "rule_allow", allowRule)
	for i, n := range []string{"a.cdn.example.com", "b.cdn.example.com", "c.cdn.example.com"} {
		gw(2+i, "10.244.1.2:40000", "20.1.1.2:443", 443, n, "tcp", "https", "deny", "no_match", `,"would_deny":true`)
	}
	gw(6, "10.224.0.4:40000", "91.189.91.157:123", 123, "", "udp", "none", "deny", "no_match", `,"would_deny":true`)
	fmt.Fprintln(&b, "panic: not a record")
	fmt.Fprintf(&b, `{"time":"2026-12-01T10:00:07Z","level":"INFO","msg":"dns decision","component":"dns","src":"10.244.0.10","proto":"udp","qname":"mcr.microsoft.com","qtype":"A","verdict":"allow","reason":"rule_allow","rcode":"NOERROR","answers":1,"duration_ms":0.1,"rule_type":"application","group":"base","collection":"registries","rule":"mcr"}`+"\n")
	return b.String()
}

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestPolicyLearnFromFile(t *testing.T) {
	dir := t.TempDir()
	cfg, logf, learned := filepath.Join(dir, "airlock.yaml"), filepath.Join(dir, "airlock.log"), filepath.Join(dir, "learned.yaml")
	writeFile(t, cfg, learnConfig)
	writeFile(t, logf, decisionLog())

	code, _, errOut := runCmd(t, "policy", "learn", "--from", logf, "--config", cfg, "--output", learned)
	if code != exitOK {
		t.Fatalf("policy learn = %d, stderr %s", code, errOut)
	}
	if want := "8 lines: 6 records (2 allowed, 4 denied), 2 skipped, 0 malformed; 2 rules proposed"; !strings.Contains(errOut, want) {
		t.Errorf("policy learn stderr = %q, want %q", errOut, want)
	}
	y, err := os.ReadFile(learned)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: learned", "priority: 200", "'*.cdn.example.com'", "sourceAddresses: [10.244.0.0/16]",
		"destinationAddresses: [91.189.91.157/32]", "# hits 3, sources 1, first 2026-12-01T10:00:02Z, last 2026-12-01T10:00:04Z, bytes 330, report mode"} {
		if !strings.Contains(string(y), want) {
			t.Errorf("learned YAML lacks %q:\n%s", want, y)
		}
	}
	for _, check := range [][]string{{"policy", "check", learned}, {"config", "check", learned}} {
		if code, out, _ := runCmd(t, check...); code != exitOK {
			t.Errorf("airlock %s = %d: %s", strings.Join(check, " "), code, out)
		}
	}

	// The same from stdin, with --sources and --threshold overriding the config.
	stdin = strings.NewReader(decisionLog())
	t.Cleanup(func() { stdin = os.Stdin })
	code, out, errOut := runCmd(t, "policy", "learn", "--from", "-", "--config", cfg, "--sources", "all=10.0.0.0/8", "--threshold", "4")
	if code != exitOK {
		t.Fatalf("policy learn --from - = %d: %s", code, errOut)
	}
	for _, want := range []string{"name: all-application", "targetFqdns: [a.cdn.example.com]", "sourceAddresses: [10.0.0.0/8]"} {
		if !strings.Contains(out, want) {
			t.Errorf("policy learn --from - output lacks %q:\n%s", want, out)
		}
	}
}

func TestPolicyLearnMerge(t *testing.T) {
	dir := t.TempDir()
	cfg, logf, merged := filepath.Join(dir, "airlock.yaml"), filepath.Join(dir, "airlock.log"), filepath.Join(dir, "merged.yaml")
	writeFile(t, cfg, "# production gateway\n"+learnConfig)
	writeFile(t, logf, decisionLog())
	code, out, errOut := runCmd(t, "policy", "learn", "--from", logf, "--merge", cfg, "--output", merged)
	if code != exitOK {
		t.Fatalf("policy learn --merge = %d: %s", code, errOut)
	}
	for _, want := range []string{"--- " + cfg, "+++ merged", "+    - name: learned", "+              targetFqdns: ['*.cdn.example.com']", "               targetFqdns: [unused.example]"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff lacks %q:\n%s", want, out)
		}
	}
	if code, out, _ := runCmd(t, "policy", "check", merged); code != exitOK || !strings.Contains(out, "2 groups, 4 rules") {
		t.Errorf("policy check of the merged config = %d: %s", code, out)
	}
	y, _ := os.ReadFile(merged)
	if !strings.HasPrefix(string(y), "# production gateway\n") {
		t.Errorf("merged config lost the file's comment:\n%s", y)
	}
}

func TestPolicyLearnFromServer(t *testing.T) {
	log := decisionLog()
	var gotQuery string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ops" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="airlock"`)
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"credentials required: set admin.users"}`))
			return
		}
		switch r.URL.Path {
		case "/api/decisions":
			gotQuery = r.URL.RawQuery
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Write([]byte(log))
		case "/api/policy/hits":
			json.NewEncoder(w).Encode(policy.HitsReport{Rules: []policy.RuleHits{
				{RuleRef: policy.RuleRef{Group: "base", Collection: "registries", Rule: "mcr"}, Type: "application", Action: "allow", Hits: 7,
					ByComponent: map[string]uint64{"gateway": 5, "dns": 2}, First: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Last: time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC)},
				{RuleRef: policy.RuleRef{Group: "base", Collection: "registries", Rule: "unused"}, Type: "application", Action: "allow"},
			}})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	t.Setenv("AIRLOCK_TEST_PASSWORD", "s3cret")

	code, out, errOut := runCmd(t, "policy", "learn", "--server", srv.URL, "--user", "ops", "--password-env", "AIRLOCK_TEST_PASSWORD")
	if code != exitOK || !strings.Contains(out, "'*.cdn.example.com'") || gotQuery != "limit=10000" {
		t.Errorf("policy learn --server = %d (query %q): %s\n%s", code, gotQuery, errOut, out)
	}
	code, _, errOut = runCmd(t, "policy", "learn", "--server", srv.URL)
	if code != exitFinding || !strings.Contains(errOut, "401") || !strings.Contains(errOut, "set admin.users") || !strings.Contains(errOut, "--user NAME --password-env VAR") {
		t.Errorf("policy learn --server without credentials = %d: %s", code, errOut)
	}
	code, out, errOut = runCmd(t, "policy", "hits", "--server", srv.URL, "--user", "ops", "--password-env", "AIRLOCK_TEST_PASSWORD")
	if code != exitOK || !strings.Contains(out, "base/registries/mcr") || !strings.Contains(out, "never hit: 1 of 2 rules\n  base/registries/unused") {
		t.Errorf("policy hits --server = %d: %s\n%s", code, errOut, out)
	}
}

func TestPolicyHitsFromFile(t *testing.T) {
	dir := t.TempDir()
	cfg, logf := filepath.Join(dir, "airlock.yaml"), filepath.Join(dir, "airlock.log")
	writeFile(t, cfg, learnConfig)
	writeFile(t, logf, decisionLog()+`{"msg":"egress decision","src":"10.0.0.1:1","dst":"1.1.1.1:443","port":443,"proto":"tcp","app":"https","verdict":"allow","reason":"rule_allow","type":"application","group":"old","collection":"c","rule":"gone"}`+"\n")
	code, out, errOut := runCmd(t, "policy", "hits", "--from", logf, "--config", cfg)
	if code != exitOK {
		t.Fatalf("policy hits = %d: %s", code, errOut)
	}
	lines := strings.Split(out, "\n")
	var mcr string
	for _, l := range lines {
		if strings.HasPrefix(l, "base/registries/mcr ") {
			mcr = strings.Join(strings.Fields(l), " ")
		}
	}
	if want := "base/registries/mcr application allow 2 1 1 2026-12-01T10:00:01Z 2026-12-01T10:00:07Z"; mcr != want {
		t.Errorf("mcr row = %q, want %q\n%s", mcr, want, out)
	}
	for _, want := range []string{"old/c/gone (stale: not in the policy)", "decided by no rule: gateway deny 4", "never hit: 1 of 3 rules", "  base/registries/unused (application allow)"} {
		if !strings.Contains(out, want) {
			t.Errorf("policy hits output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCmd(t, "policy", "hits", "--from", logf, "--config", cfg, "--json")
	var rep policy.HitsReport
	if err := json.Unmarshal([]byte(out), &rep); code != exitOK || err != nil || len(rep.Rules) != 3 {
		t.Errorf("policy hits --json = %d, %v: %s", code, err, out)
	}
}

func TestPolicyLearnUsage(t *testing.T) {
	dir := t.TempDir()
	logf := filepath.Join(dir, "airlock.log")
	writeFile(t, logf, decisionLog())
	for _, args := range [][]string{
		{"policy", "learn"},
		{"policy", "learn", "--from", logf, "--server", "http://127.0.0.1:1"},
		{"policy", "learn", "--from", logf, "--threshold", "1"},
		{"policy", "learn", "--from", logf, "--sources", "nodes=10.0.0.1/8"},
		{"policy", "learn", "--server", "ftp://x"},
		{"policy", "learn", "--from", logf, "--user", "ops"},
		{"policy", "learn", "--from", logf, "extra"},
		{"policy", "hits"},
	} {
		if code, _, errOut := runCmd(t, args...); code != exitUsage || !strings.Contains(errOut, "--help") {
			t.Errorf("airlock %s = %d, want %d with a pointer to --help: %s", strings.Join(args, " "), code, exitUsage, errOut)
		}
	}
	if code, _, errOut := runCmd(t, "policy", "learn", "--from", filepath.Join(dir, "missing.log")); code != exitFinding || !strings.Contains(errOut, "no such file") {
		t.Errorf("policy learn --from missing = %d: %s", code, errOut)
	}
}

func TestWriteDiff(t *testing.T) {
	a := "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n"
	b := "1\n2\n3\n4\nfive\n6\n7\n8\n9\n10\n11\n"
	var out bytes.Buffer
	writeDiff(&out, "a", "b", []byte(a), []byte(b))
	want := "--- a\n+++ b\n@@ -2,9 +2,10 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n 9\n 10\n+11\n"
	if out.String() != want {
		t.Errorf("writeDiff =\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	writeDiff(&out, "a", "b", []byte(a), []byte(a))
	if out.String() != "no change\n" {
		t.Errorf("writeDiff(same) = %q, want no change", out.String())
	}
}
