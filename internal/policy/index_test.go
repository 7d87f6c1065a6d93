package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/airlockdev/airlock/internal/dnsname"
)

// The indexed evaluator (index.go) must answer exactly as the linear one
// (decide.go) on every policy and question. These tests draw random
// policies from small pools of overlapping addresses, names, ports and
// protocols, so that rules shadow one another and most questions match
// something, and compare the two.

// Pools the random policies and flows draw from.
var (
	randAddrs = []string{"*", "*", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3", "10.1.2.4", "10.2.0.0/16",
		"0.0.0.0/0", "192.0.2.0/24", "192.0.2.1", "2001:db8::/32", "2001:db8:1::/48", "2001:db8:1::1", "::/0", "198.51.100.0/25"}
	// randDsts leans to narrow destinations, so network rules leave
	// flows to the application rules more often.
	randDsts      = []string{"10.1.2.0/24", "10.1.2.3", "192.0.2.0/24", "192.0.2.1", "2001:db8:1::/48", "198.51.100.0/25", "0.0.0.0/0", "*"}
	randFlowAddrs = []string{"10.1.2.3", "10.1.2.4", "10.1.3.1", "10.2.0.9", "10.9.9.9", "192.0.2.1", "192.0.2.200",
		"198.51.100.1", "198.51.100.2", "198.51.100.200", "2001:db8:1::1", "2001:db8:2::1", "2001:db9::1", "2001:db8::53",
		"::ffff:10.1.2.3", "::ffff:192.0.2.1", "::ffff:198.51.100.1", "172.16.0.1", "fe80::1%eth0", ""}
	randNames = []string{"example.com", "a.example.com", "b.a.example.com", "api.example.com", "www.example.org",
		"example.org", "a.cdn.example.com", "cdn.example.com", "mcr.microsoft.com", "x.data.mcr.microsoft.com",
		"management.azure.com", "foo.hcp.eastus.azmk8s.io", "other.test", "n3.big.example", "n17.big.example"}
	randSuffixes = []string{"example.com", "cdn.example.com", "example.org", "com", "microsoft.com", "a.example.com", "big.example"}
	randPorts    = []string{"80", "443", "8080", "123", "53", "1000-2000", "80-90", "*", "440-450", "1-100"}
	randNetProto = []string{"TCP", "UDP", "ICMP", "Any"}
	randAppProto = []string{"http:80", "https:443", "https:8443", "http:8080"}
	randDNAT     = []string{"198.51.100.1", "198.51.100.2", "2001:db8::53"}
	randDNATPort = []string{"2222", "53", "8080"}
	randFlowPort = []uint16{80, 443, 8080, 123, 53, 1500, 85, 2222, 8443, 445, 99, 0}
)

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

func picks[T any](r *rand.Rand, s []T, lo, hi int) []T {
	n := lo + r.IntN(hi-lo+1)
	out := make([]T, n)
	for i := range out {
		out[i] = pick(r, s)
	}
	return out
}

// randSources returns sourceAddresses: usually one or two of the pool,
// sometimes a long list (more than smallList, so index.go's ranges are
// used) of host addresses and /24s inside 10.1.0.0/16.
func randSources(r *rand.Rand) []string {
	if r.IntN(8) == 0 {
		var out []string
		for range 9 + r.IntN(12) {
			if r.IntN(2) == 0 {
				out = append(out, fmt.Sprintf("10.1.%d.0/24", r.IntN(6)))
			} else {
				out = append(out, fmt.Sprintf("10.1.%d.%d", r.IntN(6), r.IntN(6)))
			}
		}
		return out
	}
	return picks(r, randAddrs, 1, 2)
}

// randNamesList returns exact names: a few of the pool, or a long list
// (more than smallList) of nN.big.example with some of the pool.
func randNamesList(r *rand.Rand, lo, hi int) []string {
	if r.IntN(8) == 0 {
		out := picks(r, randNames, 1, 3)
		for range 9 + r.IntN(20) {
			out = append(out, fmt.Sprintf("n%d.big.example", r.IntN(30)))
		}
		return out
	}
	return picks(r, randNames, lo, hi)
}

func randTargets(r *rand.Rand) []string {
	var out []string
	switch r.IntN(10) {
	case 0:
		out = append(out, "*")
	case 1, 2, 3:
		out = append(out, "*."+pick(r, randSuffixes))
	}
	return append(out, randNamesList(r, 1-min(len(out), 1), 2)...)
}

// randConfig returns a valid random policy.
func randConfig(r *rand.Rand) Config {
	var c Config
	if r.IntN(2) == 0 {
		c.Location = "eastus"
	}
	// Each policy leans to some collection types.
	types := picks(r, []CollectionType{TypeNetwork, TypeApplication, TypeApplication, TypeDNAT}, 2, 6)
	gprios := r.Perm(20)
	for g := range 1 + r.IntN(4) {
		grp := RuleCollectionGroup{Name: fmt.Sprintf("g%d", g), Priority: 100 + gprios[g]}
		cprios := r.Perm(20)
		for k := range 1 + r.IntN(5) {
			typ := pick(r, types)
			action := pick(r, []Action{ActionAllow, ActionDeny})
			if typ == TypeDNAT {
				action = ActionAllow
			}
			coll := RuleCollection{Name: fmt.Sprintf("c%d", k), Type: typ, Priority: 100 + cprios[k], Action: action}
			for n := range 1 + r.IntN(8) {
				rule := Rule{Name: fmt.Sprintf("r%d", n), SourceAddresses: randSources(r)}
				switch typ {
				case TypeNetwork:
					rule.Protocols = picks(r, randNetProto, 1, 2)
					rule.DestinationPorts = picks(r, randPorts, 1, 2)
					switch r.IntN(3) {
					case 0:
						rule.DestinationAddresses = picks(r, randDsts, 1, 2)
					case 1:
						rule.DestinationFqdns = randNamesList(r, 1, 3)
					default:
						rule.DestinationAddresses = picks(r, randDsts, 1, 2)
						rule.DestinationFqdns = randNamesList(r, 1, 2)
					}
					if r.IntN(10) == 0 {
						rule.DestinationAddresses = randSources(r)
					}
				case TypeApplication:
					if r.IntN(4) == 0 {
						rule.FqdnTags = []string{"AzureKubernetesService"}
						if r.IntN(2) == 0 {
							rule.Protocols = picks(r, randAppProto, 1, 2)
						}
						if r.IntN(2) == 0 {
							rule.TargetFqdns = randTargets(r)
						}
					} else {
						rule.TargetFqdns = randTargets(r)
					}
					if len(rule.TargetFqdns) > 0 {
						rule.Protocols = picks(r, randAppProto, 1, 2)
					}
				case TypeDNAT:
					rule.Protocols = picks(r, []string{"TCP", "UDP"}, 1, 2)
					rule.DestinationAddresses = []string{pick(r, randDNAT)}
					rule.DestinationPorts = []string{pick(r, randDNATPort)}
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

func randAddr(r *rand.Rand) netip.Addr {
	s := pick(r, randFlowAddrs)
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

func randName(r *rand.Rand) dnsname.Name {
	if r.IntN(8) == 0 {
		return dnsname.Name{}
	}
	s := pick(r, randNames)
	if r.IntN(6) == 0 {
		s = fmt.Sprintf("n%d.big.example", r.IntN(30))
	}
	n, err := dnsname.Parse(s)
	if err != nil {
		panic(err)
	}
	return n
}

func randFlow(r *rand.Rand) Flow {
	f := Flow{
		Src:   randAddr(r),
		Dst:   netip.AddrPortFrom(randAddr(r), pick(r, randFlowPort)),
		Proto: pick(r, []Proto{ProtoTCP, ProtoTCP, ProtoTCP, ProtoUDP, ProtoICMP, 0}),
		App:   pick(r, []App{AppNone, AppHTTP, AppHTTPS, AppHTTPS}),
		Name:  randName(r),
	}
	// Mostly the ports application rules name for the flow's App.
	switch {
	case r.IntN(5) == 0:
	case f.App == AppHTTPS:
		f.Dst = netip.AddrPortFrom(f.Dst.Addr(), pick(r, []uint16{443, 443, 8443}))
	case f.App == AppHTTP:
		f.Dst = netip.AddrPortFrom(f.Dst.Addr(), pick(r, []uint16{80, 80, 8080}))
	}
	if r.IntN(3) == 0 {
		d := netip.MustParseAddr(pick(r, randDNAT))
		if r.IntN(3) == 0 {
			d = netip.AddrFrom16(d.As16()) // IPv4-mapped when d is IPv4
		}
		f.Dst = netip.AddrPortFrom(d, pick(r, []uint16{2222, 53, 8080, 22}))
	}
	for range r.IntN(4) {
		if n := randName(r); !n.IsZero() {
			f.DstNames = append(f.DstNames, n)
		}
	}
	return f
}

// propertyStats counts what the compared answers were, so a run shows the
// random policies exercise matches of every kind, not only no_match.
type propertyStats struct {
	policies, flows                   int
	byType                            map[string]int
	nameAllow, nameDeny, nameNoMatch  int
	dnatAllow                         int
	sniMissing, hostMissing, noMatch_ int
}

// checkEquivalent compares indexed and linear answers on flows random
// flows; it returns the first difference.
func checkEquivalent(p *Policy, r *rand.Rand, flows int, st *propertyStats) error {
	for range flows {
		f := randFlow(r)
		got, want := p.Decide(f), p.decideLinear(f)
		if got != want {
			return fmt.Errorf("Decide(%+v) = %+v, linear %+v", f, got, want)
		}
		// Explaining costs far more than deciding: one flow in four.
		explain := r.IntN(4) == 0
		if explain {
			if e := p.DecideExplain(f); e.Decision != got {
				return fmt.Errorf("DecideExplain(%+v).Decision = %+v, Decide %+v", f, e.Decision, got)
			}
		}
		gotN, wantN := p.AllowsName(f.Src, f.Name), p.allowsNameLinear(f.Src, f.Name)
		if gotN != wantN {
			return fmt.Errorf("AllowsName(%v, %v) = %+v, linear %+v", f.Src, f.Name, gotN, wantN)
		}
		if explain {
			if e := p.AllowsNameExplain(f.Src, f.Name); e.Decision != gotN {
				return fmt.Errorf("AllowsNameExplain(%v, %v).Decision = %+v, AllowsName %+v", f.Src, f.Name, e.Decision, gotN)
			}
		}
		to, d := p.DNAT(f.Dst, f.Proto, f.Src)
		wto, wd := p.dnatLinear(f.Dst, f.Proto, f.Src)
		if to != wto || d != wd {
			return fmt.Errorf("DNAT(%v, %v, %v) = %v %+v, linear %v %+v", f.Dst, f.Proto, f.Src, to, d, wto, wd)
		}
		if st == nil {
			continue
		}
		st.flows++
		switch {
		case got.Rule != "":
			st.byType[string(got.Type)+" "+string(got.Verdict)]++
		case got.Reason == ReasonSNIMissing:
			st.sniMissing++
		case got.Reason == ReasonHostMissing:
			st.hostMissing++
		default:
			st.noMatch_++
		}
		switch {
		case gotN.Rule == "":
			st.nameNoMatch++
		case gotN.Allowed():
			st.nameAllow++
		default:
			st.nameDeny++
		}
		if d.Allowed() {
			st.dnatAllow++
		}
	}
	return nil
}

// compileIndexed is Compile with the indexes built whatever the number of
// rules (Compile skips them below indexMinRules), so that small random
// policies test them too.
func compileIndexed(cfg Config) (*Policy, error) {
	p, err := Compile(cfg)
	if err == nil && p.idx == nil {
		p.idx = buildIndex(p)
	}
	return p, err
}

func propertyIterations(t *testing.T) int {
	n := 1000
	if testing.Short() {
		n = 200
	}
	if s := os.Getenv("AIRLOCK_POLICY_PROPERTY_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("AIRLOCK_POLICY_PROPERTY_N=%q: want a positive number", s)
		}
		n = v
	}
	return n
}

// TestIndexedMatchesLinear is the property test: on random policies and
// random flows, Decide, AllowsName and DNAT (indexed) answer exactly as the
// linear evaluator, and the explanations (of one flow in four) decide as they do. The number of
// policies is 1,000 (200 with -short; AIRLOCK_POLICY_PROPERTY_N sets it),
// 200 flows each; the seed is logged and AIRLOCK_POLICY_PROPERTY_SEED
// replays one.
func TestIndexedMatchesLinear(t *testing.T) {
	seed := rand.Uint64()
	if s := os.Getenv("AIRLOCK_POLICY_PROPERTY_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("AIRLOCK_POLICY_PROPERTY_SEED=%q: %v", s, err)
		}
		seed = v
	}
	n := propertyIterations(t)
	st := &propertyStats{byType: map[string]int{}}
	rules := 0
	for i := range n {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		cfg := randConfig(r)
		p, err := compileIndexed(cfg)
		if err != nil {
			t.Fatalf("seed %d policy %d: Compile: %v", seed, i, err)
		}
		rules += len(p.dnat) + len(p.network) + len(p.app)
		st.policies++
		if err := checkEquivalent(p, r, 200, st); err != nil {
			t.Fatalf("seed %d policy %d (AIRLOCK_POLICY_PROPERTY_SEED=%d): %v\nconfig: %+v", seed, i, seed, err, cfg)
		}
	}
	t.Logf("seed %d: %d policies (%d rules), %d flows each asked of Decide, DecideExplain, AllowsName, AllowsNameExplain and DNAT: identical", seed, st.policies, rules, st.flows)
	t.Logf("Decide: by rule %v; sni_missing %d, host_missing %d, no_match %d", st.byType, st.sniMissing, st.hostMissing, st.noMatch_)
	t.Logf("AllowsName: allow %d, deny %d, no_match %d; DNAT forwards %d", st.nameAllow, st.nameDeny, st.nameNoMatch, st.dnatAllow)
	for k, v := range st.byType {
		if v == 0 {
			t.Errorf("no decision by a %s rule: the generator does not exercise it", k)
		}
	}
	if len(st.byType) < 5 || st.nameAllow == 0 || st.nameDeny == 0 || st.dnatAllow == 0 {
		t.Errorf("the random policies exercise too little: %+v", st)
	}
}

// FuzzIndexedMatchesLinear is the property test driven by the fuzzer's
// seeds.
func FuzzIndexedMatchesLinear(f *testing.F) {
	for i := range uint64(8) {
		f.Add(i, i*7919)
	}
	f.Fuzz(func(t *testing.T, a, b uint64) {
		r := rand.New(rand.NewPCG(a, b))
		cfg := randConfig(r)
		p, err := compileIndexed(cfg)
		if err != nil {
			t.Fatalf("Compile: %v", err)
		}
		if err := checkEquivalent(p, r, 50, nil); err != nil {
			t.Fatalf("%v\nconfig: %+v", err, cfg)
		}
	})
}

// TestIndexedLargePolicies compares indexed and linear on the benchmark's
// large policies (scaleConfig) with flows drawn from their own names and
// addresses.
func TestIndexedLargePolicies(t *testing.T) {
	for _, size := range []scaleSize{{Rules: 1000, Names: 3000}, {Rules: 3000, Names: 30000}} {
		t.Run(size.String(), func(t *testing.T) {
			cfg := scaleConfig(size)
			p := mustCompile(t, cfg)
			flows := scaleFlows(size, 2000, 1)
			for _, f := range flows {
				if got, want := p.Decide(f), p.decideLinear(f); got != want {
					t.Fatalf("Decide(%+v) = %+v, linear %+v", f, got, want)
				}
				if got, want := p.AllowsName(f.Src, f.Name), p.allowsNameLinear(f.Src, f.Name); got != want {
					t.Fatalf("AllowsName(%v, %v) = %+v, linear %+v", f.Src, f.Name, got, want)
				}
				to, d := p.DNAT(f.Dst, f.Proto, f.Src)
				wto, wd := p.dnatLinear(f.Dst, f.Proto, f.Src)
				if to != wto || d != wd {
					t.Fatalf("DNAT(%v) = %v %+v, linear %v %+v", f.Dst, to, d, wto, wd)
				}
			}
		})
	}
}

// TestReloadWhileDeciding swaps policies under goroutines that decide on
// the current one, as the servers do (an atomic pointer, SetPolicy): every
// answer is the one the old or the new policy gives. Run with -race.
func TestReloadWhileDeciding(t *testing.T) {
	small, large := scaleSize{Rules: 100, Names: 300}, scaleSize{Rules: 2000, Names: 6000}
	if testing.Short() {
		large = scaleSize{Rules: 500, Names: 1500}
	}
	oldP := mustCompile(t, scaleConfig(small))
	var cur atomic.Pointer[Policy]
	cur.Store(oldP)
	flows := scaleFlows(large, 200, 2)
	var newP atomic.Pointer[Policy]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Value
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				f := flows[i%len(flows)]
				got := cur.Load().Decide(f)
				if got == oldP.Decide(f) {
					continue
				}
				if np := newP.Load(); np != nil && got == np.Decide(f) {
					continue
				}
				bad.Store(fmt.Sprintf("Decide(%+v) = %+v: neither the old nor the new policy's answer", f, got))
				return
			}
		}()
	}
	p := mustCompile(t, scaleConfig(large))
	newP.Store(p)
	cur.Store(p)
	close(stop)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
	for _, f := range flows {
		if got, want := cur.Load().Decide(f), p.decideLinear(f); got != want {
			t.Fatalf("after the swap Decide(%+v) = %+v, want %+v", f, got, want)
		}
	}
}
