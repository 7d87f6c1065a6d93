package hostfw_test

import (
	"context"
	"testing"

	"github.com/airlockdev/airlock/internal/hostfw"
	"github.com/airlockdev/airlock/internal/hostfw/hostfwtest"
	"github.com/google/go-cmp/cmp"
)

func TestParseCounts(t *testing.T) {
	in := `{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"table": {"family": "inet", "name": "airlock_node"}},
	{"chain": {"family": "inet", "table": "airlock_node", "name": "output"}}, {"chain": {"family": "inet", "table": "airlock_node", "name": "empty"}},
	{"rule": {"family": "inet", "table": "airlock_node", "chain": "output", "expr": []}}, {"rule": {"family": "inet", "table": "airlock_node", "chain": "output"}},
	{"rule": {"family": "inet", "table": "other", "chain": "output"}}]}`
	got, err := hostfw.ParseCounts([]byte(in), "airlock_node")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"output": 2, "empty": 0}, got); diff != "" {
		t.Errorf("ParseCounts (-want +got):\n%s", diff)
	}
	if _, err := hostfw.ParseCounts([]byte("{"), "airlock_node"); err == nil {
		t.Error("ParseCounts(bad json) = nil error")
	}
}

func FuzzParseCounts(f *testing.F) {
	f.Add([]byte(`{"nftables":[{"rule":{"table":"airlock_node","chain":"x"}}]}`))
	f.Add([]byte(`{"nftables":[{"chain":1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := hostfw.ParseCounts(b, "airlock_node")
		if err == nil && m == nil {
			t.Fatal("nil map without error")
		}
	})
}

// TestNFT runs check, load, list, counts and delete against the fake:
// the calls nft sees and the table they leave.
func TestNFT(t *testing.T) {
	ctx := context.Background()
	f := hostfwtest.New()
	n := hostfw.NFT{R: f}
	if _, ok := n.List(ctx, "inet", "t"); ok {
		t.Fatal("List of a missing table = true")
	}
	if m, err := n.Counts(ctx, "inet", "t"); m != nil || err != nil {
		t.Fatalf("Counts of a missing table = %v, %v; want nil, nil", m, err)
	}
	text := "table inet t\ndelete table inet t\ntable inet t {\n\tchain c {\n\t\ttype filter hook forward priority filter; policy drop;\n\t\tcounter\n\t}\n}\n"
	if err := n.Check(ctx, text); err != nil {
		t.Fatal(err)
	}
	if err := n.Load(ctx, text); err != nil {
		t.Fatal(err)
	}
	got, ok := n.List(ctx, "inet", "t")
	if want := text[len("table inet t\ndelete table inet t\n"):]; !ok || got != want {
		t.Errorf("List = %q, %v; want %q, true", got, ok, want)
	}
	if m, err := n.Counts(ctx, "inet", "t"); err != nil || !cmp.Equal(m, map[string]int{"c": 1}) {
		t.Errorf("Counts = %v, %v; want map[c:1]", m, err)
	}
	if err := n.Load(ctx, hostfw.DeleteTable("inet", "t")); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.List(ctx, "inet", "t"); ok {
		t.Error("table still there after DeleteTable")
	}
	want := []string{"nft list table inet t", "nft -j list table inet t", "nft -c -f -", "nft -f -", "nft list table inet t",
		"nft -j list table inet t", "nft -f -", "nft list table inet t"}
	if diff := cmp.Diff(want, f.Calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	f.Fail = hostfwtest.FailOn("nft -c -f -", "nft -f -")
	if err := n.Check(ctx, text); err == nil {
		t.Error("Check with nft failing = nil error")
	}
	if err := n.Load(ctx, text); err == nil {
		t.Error("Load with nft failing = nil error")
	}
}
