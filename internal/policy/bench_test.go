package policy

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/dnsname"
)

// The scale benchmarks (bench/policy.sh runs them and charts the figures;
// docs/benchmarks.md, "Policy at scale"): Decide, AllowsName and DNAT on
// policies of 10 to 100,000 rules that mix exact names, wildcards, an FQDN
// tag, CIDRs and port ranges, indexed (what the servers call) against the
// linear evaluator (the test oracle, and what Decide was before the
// indexes); Compile time and memory; Decide latency while a 100,000-rule
// policy is compiled and swapped in.

// scaleSize is the size of a benchmark policy: rules in all, and target
// names over all application rules.
type scaleSize struct{ Rules, Names int }

func (s scaleSize) String() string { return fmt.Sprintf("rules=%d,names=%d", s.Rules, s.Names) }

// scaleSizes are the sizes Decide, AllowsName and DNAT are measured at.
var scaleSizes = []scaleSize{
	{10, 20}, {100, 200}, {1000, 2000}, {10000, 20000}, {10000, 100000}, {100000, 200000},
}

// collTypes is the cycle of collection types: of every 10 collections 4 are
// network, 5 application and 1 dnat.
var collTypes = []CollectionType{TypeNetwork, TypeApplication, TypeNetwork, TypeApplication, TypeApplication,
	TypeDNAT, TypeNetwork, TypeApplication, TypeApplication, TypeNetwork}

// scaleConfig builds a policy of size.Rules rules in collections of up to
// 50 rules, 10 collections a group; groups are written in the reverse of
// their priority order, so processing order is not file order. Every 4th
// collection (not dnat) denies.
//
//   - network rules: TCP and UDP (every 5th Any, so ICMP too); sources "*",
//     a /16 or a /24 and a /32; destinations a /24, a /32 or a destination
//     FQDN (every 3rd); ports 443, a range of 11 or "*" (every 7th);
//   - application rules: https:443 and http:80; sources "*" or a /16;
//     size.Names targets over all of them, one in four a wildcard
//     "*.cdnN.example.net", the others exact names; every 50th rule also
//     takes the AzureKubernetesService tag;
//   - dnat rules: TCP, a listen address and port of their own.
func scaleConfig(size scaleSize) Config {
	cs := max(1, min(50, size.Rules/10))
	ncoll := (size.Rules + cs - 1) / cs
	appRules := 0
	for k := range ncoll {
		if collTypes[k%len(collTypes)] == TypeApplication {
			appRules += min(cs, size.Rules-k*cs)
		}
	}
	perApp := max(1, size.Names/max(1, appRules))
	extra := size.Names - perApp*appRules // spread over the first rules
	c := Config{Location: "eastus"}
	ngroups := (ncoll + 9) / 10
	n, app, nameN := 0, 0, 0
	for g := range ngroups {
		grp := RuleCollectionGroup{Name: fmt.Sprintf("g%d", g), Priority: MaxPriority - g*10}
		for k := g * 10; k < min(ncoll, g*10+10); k++ {
			typ := collTypes[k%len(collTypes)]
			action := ActionAllow
			if k%4 == 3 && typ != TypeDNAT {
				action = ActionDeny
			}
			coll := RuleCollection{Name: fmt.Sprintf("c%d", k), Type: typ, Priority: 100 + (k%10)*10, Action: action}
			for r := 0; r < cs && n < size.Rules; r++ {
				n++
				rule := Rule{Name: fmt.Sprintf("r%d", r)}
				switch typ {
				case TypeNetwork:
					rule.Protocols = []string{"TCP", "UDP"}
					if n%5 == 0 {
						rule.Protocols = []string{"Any"}
					}
					switch n % 3 {
					case 0:
						rule.SourceAddresses = []string{"*"}
					case 1:
						rule.SourceAddresses = []string{fmt.Sprintf("10.%d.0.0/16", n%200)}
					default:
						rule.SourceAddresses = []string{fmt.Sprintf("10.%d.%d.0/24", n%200, n/200%256), "192.168.1.1"}
					}
					switch n % 3 {
					case 0:
						rule.DestinationFqdns = []string{fmt.Sprintf("svc%d.internal.example", n)}
					case 1:
						rule.DestinationAddresses = []string{fmt.Sprintf("172.%d.%d.0/24", 16+n/65536%16, n/256%256)}
					default:
						rule.DestinationAddresses = []string{fmt.Sprintf("198.%d.%d.%d", 18+n/65536%2, n/256%256, n%256)}
					}
					switch {
					case n%7 == 0:
						rule.DestinationPorts = []string{"*"}
					case n%2 == 0:
						rule.DestinationPorts = []string{"443"}
					default:
						lo := 10000 + n%50000
						rule.DestinationPorts = []string{"443", fmt.Sprintf("%d-%d", lo, lo+10)}
					}
				case TypeApplication:
					app++
					rule.Protocols = []string{"https:443", "http:80"}
					rule.SourceAddresses = []string{"*"}
					if n%2 == 0 {
						rule.SourceAddresses = []string{fmt.Sprintf("10.%d.0.0/16", n%200)}
					}
					k := perApp
					if app <= extra {
						k++
					}
					for j := range k {
						nameN++
						if nameN%4 == 0 {
							rule.TargetFqdns = append(rule.TargetFqdns, fmt.Sprintf("*.cdn%d.example.net", nameN))
						} else {
							rule.TargetFqdns = append(rule.TargetFqdns, fmt.Sprintf("api%d-%d.example.com", nameN, j))
						}
					}
					if app%50 == 0 {
						rule.FqdnTags = []string{"AzureKubernetesService"}
					}
				case TypeDNAT:
					rule.Protocols = []string{"TCP"}
					rule.SourceAddresses = []string{"*"}
					if n%2 == 0 {
						rule.SourceAddresses = []string{fmt.Sprintf("203.0.%d.0/24", n%256)}
					}
					rule.DestinationAddresses = []string{fmt.Sprintf("198.51.100.%d", 1+n/50000%200)}
					rule.DestinationPorts = []string{fmt.Sprint(1024 + n%50000)}
					rule.TranslatedAddress, rule.TranslatedPort = "10.0.0.4", "22"
				}
				coll.Rules = append(coll.Rules, rule)
			}
			grp.RuleCollections = append(grp.RuleCollections, coll)
		}
		c.RuleCollectionGroups = append(c.RuleCollectionGroups, grp)
	}
	return c
}

// scaleFlows returns n flows for a policy of size: three in four aimed at
// a random rule (its name, destination and port, or DNAT listen address),
// the others at nothing the policy lists. Sources vary over the rules'
// networks.
func scaleFlows(size scaleSize, n int, seed uint64) []Flow {
	return flowsFor(scaleConfig(size), n, seed, 0.75)
}

// missFlows returns n flows no rule matches: every rule is tried by the
// linear evaluator.
func missFlows(n int, seed uint64) []Flow {
	r := rand.New(rand.NewPCG(seed, 2))
	out := make([]Flow, n)
	for i := range out {
		out[i] = missFlow(r)
	}
	return out
}

func missFlow(r *rand.Rand) Flow {
	nm, _ := dnsname.Parse(fmt.Sprintf("nothing%d.example.org", r.IntN(1<<20)))
	return Flow{
		Src:   netip.AddrFrom4([4]byte{172, 31, byte(r.IntN(256)), byte(r.IntN(256))}),
		Dst:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(r.IntN(256))}), 8443),
		Proto: ProtoTCP, App: AppHTTPS, Name: nm,
	}
}

func flowsFor(c Config, n int, seed uint64, hit float64) []Flow {
	r := rand.New(rand.NewPCG(seed, 1))
	type aim struct {
		typ  CollectionType
		rule Rule
	}
	var aims []aim
	for _, g := range c.RuleCollectionGroups {
		for _, coll := range g.RuleCollections {
			for _, rule := range coll.Rules {
				aims = append(aims, aim{coll.Type, rule})
			}
		}
	}
	src := func(rule Rule) netip.Addr {
		s := rule.SourceAddresses[r.IntN(len(rule.SourceAddresses))]
		if s == "*" {
			return netip.AddrFrom4([4]byte{10, byte(r.IntN(200)), 1, 1})
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.MustParseAddr(s)
		}
		return p.Addr().Next()
	}
	out := make([]Flow, 0, n)
	for len(out) < n {
		if len(aims) == 0 || r.Float64() >= hit {
			out = append(out, missFlow(r))
			continue
		}
		a := aims[r.IntN(len(aims))]
		f := Flow{Src: src(a.rule), Proto: ProtoTCP}
		switch a.typ {
		case TypeNetwork:
			port := uint16(443)
			if ps := a.rule.DestinationPorts; len(ps) > 1 && r.IntN(2) == 0 {
				pr, _ := parsePorts(ps[1])
				port = pr.lo + 5
			}
			if len(a.rule.DestinationFqdns) > 0 {
				f.DstNames = []dnsname.Name{mustName(a.rule.DestinationFqdns[0])}
				f.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte{100, 64, byte(r.IntN(256)), byte(r.IntN(256))}), port)
			} else {
				p, err := netip.ParsePrefix(a.rule.DestinationAddresses[0])
				if err != nil {
					p = netip.PrefixFrom(netip.MustParseAddr(a.rule.DestinationAddresses[0]), 32)
				}
				f.Dst = netip.AddrPortFrom(p.Addr(), port)
			}
		case TypeApplication:
			f.App = AppHTTPS
			f.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte{20, 1, byte(r.IntN(256)), byte(r.IntN(256))}), 443)
			if len(a.rule.TargetFqdns) == 0 {
				f.Name = mustName("mcr.microsoft.com")
				break
			}
			t := a.rule.TargetFqdns[r.IntN(len(a.rule.TargetFqdns))]
			f.Name = mustName(strings.Replace(t, "*", "x", 1))
		case TypeDNAT:
			f.Dst = netip.MustParseAddrPort(a.rule.DestinationAddresses[0] + ":" + a.rule.DestinationPorts[0])
			if a.rule.SourceAddresses[0] == "*" {
				f.Src = netip.AddrFrom4([4]byte{203, 0, 113, 9})
			}
		}
		out = append(out, f)
	}
	return out
}

func mustName(s string) dnsname.Name {
	n, err := dnsname.Parse(s)
	if err != nil {
		panic(err)
	}
	return n
}

// compiled caches the benchmark policies: building the 100,000-rule one
// takes seconds.
var compiled sync.Map // scaleSize → *Policy

func compiledScale(b *testing.B, size scaleSize) *Policy {
	if p, ok := compiled.Load(size); ok {
		return p.(*Policy)
	}
	p := mustCompile(b, scaleConfig(size))
	if got := len(p.dnat) + len(p.network) + len(p.app); got != size.Rules {
		b.Fatalf("compiled %d rules, want %d", got, size.Rules)
	}
	compiled.Store(size, p)
	return p
}

// BenchmarkScale measures one call of Decide, AllowsName and DNAT over a
// cycle of 1,024 flows: "mix" (three in four aimed at a random rule) and
// "miss" (no rule matches), indexed and linear.
func BenchmarkScale(b *testing.B) {
	for _, size := range scaleSizes {
		b.Run(size.String(), func(b *testing.B) {
			p := compiledScale(b, size)
			sets := map[string][]Flow{"mix": scaleFlows(size, 1024, 1), "miss": missFlows(1024, 1)}
			for _, set := range []string{"mix", "miss"} {
				flows := sets[set]
				type op struct {
					name string
					f    func(Flow) bool
				}
				ops := []op{
					{"Decide/indexed", func(f Flow) bool { return p.Decide(f).Allowed() }},
					{"Decide/linear", func(f Flow) bool { return p.decideLinear(f).Allowed() }},
					{"AllowsName/indexed", func(f Flow) bool { return p.AllowsName(f.Src, f.Name).Allowed() }},
					{"AllowsName/linear", func(f Flow) bool { return p.allowsNameLinear(f.Src, f.Name).Allowed() }},
					{"DNAT/indexed", func(f Flow) bool { _, d := p.DNAT(f.Dst, f.Proto, f.Src); return d.Allowed() }},
					{"DNAT/linear", func(f Flow) bool { _, d := p.dnatLinear(f.Dst, f.Proto, f.Src); return d.Allowed() }},
				}
				for _, o := range ops {
					b.Run(o.name+"/"+set, func(b *testing.B) {
						b.ReportAllocs()
						i := 0
						for b.Loop() {
							o.f(flows[i&1023])
							i++
						}
					})
				}
			}
		})
	}
}

// BenchmarkCompile measures Compile at 10,000 and 100,000 rules: time,
// allocations, and the heap the compiled policy keeps (heap-MB, after a
// GC, less the heap before).
func BenchmarkCompile(b *testing.B) {
	for _, size := range []scaleSize{{10000, 20000}, {100000, 200000}} {
		b.Run(size.String(), func(b *testing.B) {
			cfg := scaleConfig(size)
			var keep *Policy
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			before := ms.HeapAlloc
			b.ReportAllocs()
			for b.Loop() {
				keep = mustCompile(b, cfg)
			}
			b.StopTimer()
			runtime.GC()
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(int64(ms.HeapAlloc)-int64(before))/(1<<20), "heap-MB")
			runtime.KeepAlive(keep)
		})
	}
}

// latHist is a log-linear latency histogram (16 sub-buckets per power of
// two, so a percentile is within about 6%), with the exact maximum.
type latHist struct {
	n   [64 * 16]uint64
	max int64
	cnt uint64
}

func (h *latHist) add(ns int64) {
	if ns < 1 {
		ns = 1
	}
	e := bits.Len64(uint64(ns)) - 1
	sub := 0
	if e >= 4 {
		sub = int(uint64(ns)>>(e-4)) & 15
	}
	h.n[e*16+sub]++
	h.cnt++
	h.max = max(h.max, ns)
}

func (h *latHist) merge(o *latHist) {
	for i := range h.n {
		h.n[i] += o.n[i]
	}
	h.cnt += o.cnt
	h.max = max(h.max, o.max)
}

// quantile returns the upper bound of the bucket holding quantile q.
func (h *latHist) quantile(q float64) float64 {
	want := uint64(q * float64(h.cnt))
	var seen uint64
	for i, c := range h.n {
		seen += c
		if seen > want {
			e, sub := i/16, i%16
			if e < 4 {
				return float64(uint64(1) << (e + 1))
			}
			return float64((uint64(16+sub) + 1) << (e - 4))
		}
	}
	return float64(h.max)
}

// BenchmarkReload measures Decide latency while another goroutine compiles
// a 100,000-rule policy and swaps it in through an atomic pointer (as
// egress and dnsserver SetPolicy do), against the same readers for 0.5 s
// with no reload (measured first). GOMAXPROCS-1 readers (at least one) decide in a loop
// over 4,096 mixed flows, timing each call. Run it with -benchtime=1x: one
// iteration is one reload. Metrics: reload-s (compile and swap),
// steady-/reload- p50, p99, p999 and max in ns.
func BenchmarkReload(b *testing.B) {
	size := scaleSize{100000, 200000}
	cfg := scaleConfig(size)
	cur := atomic.Pointer[Policy]{}
	cur.Store(compiledScale(b, size))
	flows := scaleFlows(size, 4096, 3)
	readers := max(1, runtime.GOMAXPROCS(0)-1)
	run := func(during func()) *latHist {
		var stop atomic.Bool
		hs := make([]latHist, readers)
		var wg sync.WaitGroup
		for g := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := &hs[g]
				for i := g; !stop.Load(); i++ {
					t0 := time.Now()
					cur.Load().Decide(flows[i&4095])
					h.add(int64(time.Since(t0)))
				}
			}()
		}
		during()
		stop.Store(true)
		wg.Wait()
		for g := 1; g < readers; g++ {
			hs[0].merge(&hs[g])
		}
		return &hs[0]
	}
	var reload, steady *latHist
	var took time.Duration
	for b.Loop() {
		runtime.GC()
		steady = run(func() { time.Sleep(500 * time.Millisecond) })
		runtime.GC()
		reload = run(func() {
			t0 := time.Now()
			p := mustCompile(b, cfg)
			cur.Store(p)
			took = time.Since(t0)
		})
	}
	b.ReportMetric(took.Seconds(), "reload-s")
	for _, m := range []struct {
		name string
		h    *latHist
	}{{"steady", steady}, {"reload", reload}} {
		b.ReportMetric(m.h.quantile(0.5), m.name+"-p50-ns")
		b.ReportMetric(m.h.quantile(0.99), m.name+"-p99-ns")
		b.ReportMetric(m.h.quantile(0.999), m.name+"-p999-ns")
		b.ReportMetric(float64(m.h.max), m.name+"-max-ns")
		b.ReportMetric(float64(m.h.cnt), m.name+"-calls")
	}
}

// BenchmarkWorstFlow reports the slowest single flow of a size: each of
// 1,024 mixed and 256 missing flows is asked 100 times (Decide, then
// AllowsName, each timed as a batch), the best of 3 rounds kept per flow;
// worst-decide-ns and worst-name-ns are the largest of those. An average
// over flows could hide one slow flow; this does not. Run it with
// -benchtime=1x.
func BenchmarkWorstFlow(b *testing.B) {
	for _, size := range scaleSizes {
		b.Run(size.String(), func(b *testing.B) {
			p := compiledScale(b, size)
			flows := append(scaleFlows(size, 1024, 1), missFlows(256, 1)...)
			per := func(call func(Flow)) float64 {
				var worst time.Duration
				for _, f := range flows {
					best := time.Duration(1 << 62)
					for range 3 {
						t0 := time.Now()
						for range 100 {
							call(f)
						}
						best = min(best, time.Since(t0)/100)
					}
					worst = max(worst, best)
				}
				return float64(worst.Nanoseconds())
			}
			var d, n float64
			runtime.GC()
			for b.Loop() {
				d = per(func(f Flow) { p.Decide(f) })
				n = per(func(f Flow) { p.AllowsName(f.Src, f.Name) })
			}
			b.ReportMetric(d, "worst-decide-ns")
			b.ReportMetric(n, "worst-name-ns")
		})
	}
}
