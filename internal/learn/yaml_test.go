package learn_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/airlockdev/airlock/internal/config"
	"github.com/airlockdev/airlock/internal/dnsname"
	"github.com/airlockdev/airlock/internal/learn"
	"github.com/airlockdev/airlock/internal/policy"
)

// randomRecords returns n decision records over a small cluster: names
// with siblings, tag names, odd names, IP-only flows, DNS questions, IPv6,
// allows and denies.
func randomRecords(seed uint64, n int) []learn.Record {
	rnd := rand.New(rand.NewPCG(seed, 1))
	names := []string{"mcr.microsoft.com", "management.azure.com", "eastus.data.mcr.microsoft.com", "_svc.example.org",
		"example.com", "a.example.com", "b.x.example.com", "c.example.com", "acct1.blob.core.windows.net",
		"acct2.blob.core.windows.net", "acct3.blob.core.windows.net", "x.y.z.deep.example.net", "localhost.localdomain",
		"a-very-long-label-" + strings.Repeat("x", 40) + "." + strings.Repeat("sub.", 40) + "example.io"}
	srcs := []string{"10.224.0.4", "10.224.0.5", "10.244.1.2", "10.244.7.9", "172.16.0.1", "fd00::7", "192.168.1.1"}
	var out []learn.Record
	for i := range n {
		r := learn.Record{Src: netip.MustParseAddr(srcs[rnd.IntN(len(srcs))]), Decision: policy.Decision{Verdict: policy.VerdictDeny, Reason: policy.ReasonNoMatch}}
		if rnd.IntN(5) == 0 {
			r.Decision = policy.Decision{Verdict: policy.VerdictAllow, Reason: policy.ReasonRuleAllow}
		}
		name, _ := dnsname.Parse(names[rnd.IntN(len(names))])
		switch rnd.IntN(4) {
		case 0:
			r.Component, r.Name, r.QType = learn.ComponentDNS, name, "A"
		case 1:
			r.Component, r.Proto = learn.ComponentGateway, []policy.Proto{policy.ProtoTCP, policy.ProtoUDP, policy.ProtoICMP}[rnd.IntN(3)]
			r.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(rnd.IntN(4))}), uint16(rnd.IntN(3)*1000+22))
			if r.Proto == policy.ProtoICMP {
				r.Dst = netip.AddrPortFrom(r.Dst.Addr(), 0)
			}
			r.Port = r.Dst.Port()
		default:
			r.Component, r.Name, r.Proto = learn.ComponentGateway, name, policy.ProtoTCP
			r.App, r.Port = policy.AppHTTPS, 443
			if rnd.IntN(3) == 0 {
				r.App, r.Port = policy.AppHTTP, uint16(80+rnd.IntN(2)*8000)
			}
			r.Dst = netip.AddrPortFrom(netip.MustParseAddr("20.0.0.1"), r.Port)
		}
		r.BytesUp, r.BytesDown = int64(i), int64(2*i)
		out = append(out, r)
	}
	return out
}

// allowed reports whether pol allows the record's flow (or, for DNS, its
// name).
func allowed(pol *policy.Policy, r learn.Record) bool {
	if r.Component == learn.ComponentDNS {
		return pol.AllowsName(r.Src, r.Name).Allowed()
	}
	return pol.Decide(policy.Flow{Src: r.Src, Dst: r.Dst, Proto: r.Proto, App: r.App, Name: r.Name}).Allowed()
}

// TestProposalPassesChecksAndAllowsWhatWasDenied: for many random record
// sets, with and without source groups and an existing policy, the YAML
// decodes under config.Parse to exactly Policy(), compiles, and the merged
// policy allows every denied record while a name never seen stays denied.
func TestProposalPassesChecksAndAllowsWhatWasDenied(t *testing.T) {
	existing := policy.Config{Location: "eastus", RuleCollectionGroups: []policy.RuleCollectionGroup{{
		Name: "learned", Priority: 100, RuleCollections: []policy.RuleCollection{{
			Name: "deny-some", Type: policy.TypeApplication, Priority: 100, Action: policy.ActionDeny,
			Rules: []policy.Rule{{Name: "nope", Protocols: []string{"https:443"}, SourceAddresses: []string{"*"}, TargetFqdns: []string{"never.example"}}},
		}},
	}}}
	for seed := range uint64(40) {
		for _, opts := range []learn.Options{
			{},
			{Sources: []learn.SourceGroup{{Name: "nodes", Ranges: []string{"10.224.0.0/16"}}, {Name: "pods", Ranges: []string{"10.244.0.0/16", "fd00::/64"}}}, Threshold: 2},
			{Existing: existing},
		} {
			t.Run(fmt.Sprintf("seed%d-%d-groups-%v", seed, len(opts.Sources), opts.Existing.Location != ""), func(t *testing.T) {
				recs := randomRecords(seed, 30)
				l := learn.New(opts)
				for _, r := range recs {
					l.Add(r)
				}
				p := l.Proposal()
				var buf bytes.Buffer
				if err := p.WriteYAML(&buf); err != nil {
					t.Fatal(err)
				}
				f, err := config.Parse("learned.yaml", buf.Bytes())
				if err != nil {
					t.Fatalf("config.Parse(proposal) = %v\n%s", err, buf.String())
				}
				if diff := cmp.Diff(p.Policy(), f.Policy, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("decoded proposal differs from Policy() (-want +got):\n%s", diff)
				}
				if _, err := policy.Compile(f.Policy); err != nil {
					t.Fatalf("Compile(proposal) = %v", err)
				}
				pol, err := policy.Compile(learn.Merge(opts.Existing, p))
				if err != nil {
					t.Fatalf("Compile(Merge) = %v", err)
				}
				for _, r := range recs {
					if r.Denied() && !allowed(pol, r) {
						t.Errorf("merged policy denies a learned record %+v\n%s", r, buf.String())
					}
				}
				never := learn.Record{Component: learn.ComponentGateway, Src: netip.MustParseAddr("10.244.1.2"), Dst: netip.MustParseAddrPort("20.0.0.1:443"),
					Proto: policy.ProtoTCP, App: policy.AppHTTPS, Name: must(dnsname.Parse("unseen.example.org"))}
				if allowed(pol, never) {
					t.Errorf("merged policy allows a name never seen")
				}
			})
		}
	}
}

func must(n dnsname.Name, err error) dnsname.Name {
	if err != nil {
		panic(err)
	}
	return n
}

func TestMergeYAMLKeepsTheDocument(t *testing.T) {
	doc := []byte(`# my airlock
version: 1
admin:
  listen: 127.0.0.1:9090 # the console
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
`)
	cfg, err := config.Parse("airlock.yaml", doc)
	if err != nil {
		t.Fatal(err)
	}
	l := learn.New(learn.Options{Existing: cfg.Policy})
	for _, name := range []string{"mcr.microsoft.com", "new.example.com"} {
		l.Add(learn.Record{Component: learn.ComponentGateway, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddrPort("20.0.0.1:443"),
			Port: 443, Proto: policy.ProtoTCP, App: policy.AppHTTPS, Name: must(dnsname.Parse(name)), Decision: policy.Deny(policy.ReasonNoMatch)})
	}
	out, q, err := learn.MergeYAML(doc, cfg.Policy, l.Proposal())
	if err != nil {
		t.Fatal(err)
	}
	if q.AlreadyAllowed != 1 || q.Rules() != 1 {
		t.Errorf("merged proposal: %d already allowed, %d rules; want 1, 1", q.AlreadyAllowed, q.Rules())
	}
	for _, want := range []string{"# my airlock", "# the console", "name: base", "name: learned", "targetFqdns: [new.example.com]", "# hits 1, sources 1"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("merged document lacks %q:\n%s", want, out)
		}
	}
	merged, err := config.Parse("merged.yaml", out)
	if err != nil {
		t.Fatalf("config.Parse(merged) = %v\n%s", err, out)
	}
	if got := len(merged.Policy.RuleCollectionGroups); got != 2 {
		t.Errorf("merged groups = %d, want 2", got)
	}
	// No policy section at all: one is added.
	out, _, err = learn.MergeYAML([]byte("version: 1\n"), policy.Config{}, l.Proposal())
	if err != nil {
		t.Fatal(err)
	}
	if merged, err := config.Parse("merged.yaml", out); err != nil || len(merged.Policy.RuleCollectionGroups) != 1 {
		t.Errorf("MergeYAML(no policy) = %s, %v; want one group", out, err)
	}
	if _, _, err := learn.MergeYAML([]byte("- a list\n"), policy.Config{}, l.Proposal()); err == nil {
		t.Errorf("MergeYAML(a list) = nil error")
	}
}
