package egress

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/airlockdev/airlock/internal/hostfw/hostfwtest"
	"github.com/airlockdev/airlock/internal/policy"
	"github.com/google/go-cmp/cmp"
)

var l4Input = RulesInput{TransparentPort: 15001, DNSPort: 53, L4Port: 15002, L4Ports: []policy.PortRange{{Proto: policy.ProtoTCP, From: 22, To: 22}}}

// fakeState is what the fake host holds: tables, routing rules, routes.
type fakeState struct {
	Tables map[string]string
	Rules  map[string][]string
	Routes map[string][]hostfwtest.Route
}

func stateOf(f *hostfwtest.Fake) fakeState {
	s := fakeState{Tables: maps.Clone(f.Tables), Rules: map[string][]string{}, Routes: map[string][]hostfwtest.Route{}}
	for k, v := range f.Rules {
		if len(v) > 0 {
			s.Rules[k] = slices.Clone(v)
		}
	}
	for k, v := range f.Routes {
		if len(v) > 0 {
			s.Routes[k] = slices.Clone(v)
		}
	}
	return s
}

func TestInstallRules(t *testing.T) {
	ctx := context.Background()
	f := hostfwtest.New()
	if err := InstallRules(ctx, f, l4Input); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"nft -c -f -",
		"ip -4 rule show fwmark 0xa1 lookup 161", "ip -4 rule add fwmark 0xa1 lookup 161",
		"ip -4 -j route show table 161 default", "ip -4 route replace local 0.0.0.0/0 dev lo table 161",
		"ip -6 rule show fwmark 0xa1 lookup 161", "ip -6 rule add fwmark 0xa1 lookup 161",
		"ip -6 -j route show table 161 default", "ip -6 route replace local ::/0 dev lo table 161",
		"nft -f -",
	}
	if diff := cmp.Diff(want, f.Calls); diff != "" {
		t.Errorf("InstallRules calls (-want +got):\n%s", diff)
	}
	if got := f.Tables["inet "+RulesTable]; !strings.Contains(got, "tproxy to :15002") {
		t.Errorf("table after InstallRules =\n%s\nwant the TPROXY chain", got)
	}
	for _, fam := range []string{"4", "6"} {
		if r := f.Route(fam, "161", "default"); r == nil || r.Type != "local" || r.Dev != "lo" {
			t.Errorf("-%s table 161 default route = %+v, want local dev lo", fam, r)
		}
	}
	installed := stateOf(f)

	// Again: the rules and routes are there; only the table is reloaded.
	f.Calls = nil
	if err := InstallRules(ctx, f, l4Input); err != nil {
		t.Fatal(err)
	}
	for _, c := range f.Calls {
		if strings.Contains(c, " add ") || strings.Contains(c, " replace ") {
			t.Errorf("second InstallRules ran %q, want no routing change", c)
		}
	}
	if diff := cmp.Diff(installed, stateOf(f)); diff != "" {
		t.Errorf("state after the second InstallRules (-want +got):\n%s", diff)
	}

	// Without an L4 listener, no routing is touched.
	f2 := hostfwtest.New()
	if err := InstallRules(ctx, f2, RulesInput{TransparentPort: 15001}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"nft -c -f -", "nft -f -"}, f2.Calls); diff != "" {
		t.Errorf("InstallRules without L4 calls (-want +got):\n%s", diff)
	}
}

// TestInstallRulesFaultsKeepPreviousState fails each step in turn, from a
// host that has the previous rules (no L4) and a foreign default route in
// table 161: the host must keep its tables, rules and routes, and the
// install succeeds once the fault is gone.
func TestInstallRulesFaultsKeepPreviousState(t *testing.T) {
	faults := []struct {
		name    string
		call    string
		wantErr string
	}{
		{"check fails", "nft -c -f -", "nothing was changed"},
		{"ipv4 rule add fails", "ip -4 rule add fwmark 0xa1 lookup 161", "rolled back"},
		{"ipv4 route fails", "ip -4 route replace local 0.0.0.0/0 dev lo table 161", "rolled back"},
		{"ipv6 rule add fails", "ip -6 rule add fwmark 0xa1 lookup 161", "rolled back"},
		{"ipv6 route fails", "ip -6 route replace local ::/0 dev lo table 161", "rolled back"},
		{"load fails", "nft -f -", "rolled back"},
	}
	for _, tc := range faults {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := hostfwtest.New()
			if err := InstallRules(ctx, f, RulesInput{TransparentPort: 15001}); err != nil {
				t.Fatal(err)
			}
			f.Routes["4 161"] = []hostfwtest.Route{{Dst: "default", Gateway: "198.18.0.1", Dev: "eth9"}}
			before := stateOf(f)
			f.Fail = hostfwtest.FailOn(tc.call)
			err := InstallRules(ctx, f, l4Input)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("InstallRules with %q failing = %v, want an error saying %q", tc.call, err, tc.wantErr)
			}
			if diff := cmp.Diff(before, stateOf(f)); diff != "" {
				t.Errorf("state after the failed InstallRules (-previous +got):\n%s", diff)
			}
			f.Fail = nil
			if err := InstallRules(ctx, f, l4Input); err != nil {
				t.Fatalf("InstallRules after removing the fault: %v", err)
			}
			if r := f.Route("4", "161", "default"); r == nil || r.Type != "local" {
				t.Errorf("table 161 default route after the install = %+v, want local", r)
			}
		})
	}
}

// TestInstallRulesRollbackFails: when undoing fails too, the error says
// both.
func TestInstallRulesRollbackFails(t *testing.T) {
	f := hostfwtest.New()
	f.Fail = hostfwtest.FailOn("nft -f -", "ip -4 rule del fwmark 0xa1 lookup 161")
	err := InstallRules(context.Background(), f, l4Input)
	if err == nil || !strings.Contains(err.Error(), "rolling back also failed") || !strings.Contains(err.Error(), "ip -4 rule del") {
		t.Fatalf("InstallRules = %v, want the load error and the failed undo", err)
	}
}
