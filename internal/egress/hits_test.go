package egress

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/policy"
)

// TestHitsCounted checks that every flow's final decision is counted once,
// under the rule that made it (a deny the dialer turned an allow into
// keeps its rule, as the record does), and that decisions no rule made
// are counted by verdict.
func TestHitsCounted(t *testing.T) {
	up := echoServer(t, "127.0.0.1:0", "up")
	lo := netip.MustParseAddr("127.0.0.1")
	for _, mode := range []Mode{ModeEnforce, ModeReport} {
		t.Run(string(mode), func(t *testing.T) {
			hits := policy.NewHits(time.Now())
			pcfg := appPolicy(up.Port(), netip.Addr{}, "allowed.test", "metadata.test")
			g := startGateway(t, gwOptions{
				cfg:    Config{Mode: mode, AllowedInternalRanges: loopbackRange},
				policy: pcfg,
				resolver: fakeResolver{"allowed.test": {lo}, "denied.test": {lo},
					"metadata.test": {netip.MustParseAddr("169.254.169.254")}},
				hits: hits,
			})
			for i, target := range []string{"allowed.test", "allowed.test", "denied.test", "metadata.test"} {
				c, br, code, _ := connect(t, g.proxy, fmt.Sprintf("%s:%d", target, up.Port()))
				if code == 200 {
					expectEcho(t, c, br, "up", "hi")
				}
				c.Close()
				g.logs.Wait(t, i+1)
			}
			rep := hits.Report(pcfg)
			if len(rep.Rules) != 1 {
				t.Fatalf("report = %+v, want the one rule", rep.Rules)
			}
			r := rep.Rules[0]
			// allowed.test twice, metadata.test once (the rule matched, the
			// dialer refused the address).
			if r.RuleRef.String() != "g/web/allowed" || r.Hits != 3 || r.ByComponent["gateway"] != 3 {
				t.Errorf("rule hits = %+v, want g/web/allowed with 3 gateway hits", r)
			}
			// denied.test: no rule decided it, in both modes (report mode
			// counts the would-be deny as a deny, as the record says).
			if rep.NoRule["gateway deny"] != 1 || len(rep.NoRule) != 1 {
				t.Errorf("NoRule = %v, want gateway deny 1", rep.NoRule)
			}
		})
	}
}
