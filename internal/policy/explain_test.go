package policy

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("explain output differs from %s (go test -update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestExplainGolden(t *testing.T) {
	design := mustCompile(t, validConfig())
	order := mustCompile(t, orderConfig())
	tests := []struct {
		file string
		e    Explanation
	}{
		{"explain_tag_allow.golden", design.DecideExplain(tcp("10.1.0.5", "20.1.2.3:443", AppHTTPS, "mcr.microsoft.com"))},
		{"explain_fqdn_network.golden", design.DecideExplain(Flow{Src: addr("10.1.0.5"), Dst: addrPort("91.189.91.157:123"), Proto: ProtoUDP, DstNames: names(t, "ntp.ubuntu.com")})},
		{"explain_dnat.golden", design.DecideExplain(tcp("203.0.113.9", "198.51.100.1:2222", AppNone, ""))},
		{"explain_no_match.golden", order.DecideExplain(tcp("10.1.1.1", "203.0.113.50:443", AppHTTPS, "other.test"))},
		{"explain_protocol_miss.golden", order.DecideExplain(tcp("10.1.1.1", "203.0.113.50:8080", AppHTTP, "x.example.com"))},
		{"explain_sni_missing.golden", order.DecideExplain(tcp("10.1.1.1", "203.0.113.50:443", AppHTTPS, ""))},
		{"explain_collection_deny.golden", order.DecideExplain(tcp("10.0.0.5", "192.0.2.66:443", AppHTTPS, "ok.example.com"))},
		{"explain_name_deny.golden", order.AllowsNameExplain(addr("10.1.1.1"), name(t, "blocked.example.com"))},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var b bytes.Buffer
			n, err := tt.e.WriteTo(&b)
			if err != nil || n != int64(b.Len()) {
				t.Fatalf("WriteTo = %d, %v, want %d, nil", n, err, b.Len())
			}
			if tt.e.String() != b.String() {
				t.Fatalf("String() differs from WriteTo")
			}
			golden(t, tt.file, b.Bytes())
		})
	}
}
