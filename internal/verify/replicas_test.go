package verify

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestReplicaRows: with several DNS and registry replicas, each gets a
// row of its own; a dead or broken replica fails its row, naming it,
// while the others pass.
func TestReplicaRows(t *testing.T) {
	good := dnsServer(t, map[string]string{"allowed.test.": "127.0.0.1"}, dns.RcodeNameError)
	servfail := dnsServer(t, nil, dns.RcodeServerFailure)
	dead := netip.MustParseAddrPort(closedUDPPort(t))
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(reg.Close)
	notReg := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notReg.Close)
	regAddr, notRegAddr, deadReg := strings.TrimPrefix(reg.URL, "http://"), strings.TrimPrefix(notReg.URL, "http://"), closedPort(t)

	opt := Options{Root: t.TempDir(), Timeout: testTimeout,
		NodeDNS:    []string{good.String(), dead.String(), servfail.String()},
		Registries: []string{regAddr, deadReg, notRegAddr}}
	rep, err := run(context.Background(), Targets{AllowedName: "allowed.test:443"}, opt, fixedPorts{udp: 1, http: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		channel, target string
		got             Outcome
		evidence        string
	}{
		{"dns-replica", good.String(), Reachable, "NOERROR with 1 records"},
		{"dns-replica", dead.String(), Failed, "DNS replica " + dead.String() + " did not answer"},
		{"dns-replica", servfail.String(), Failed, "answered with an error"},
		{"registry-replica", regAddr, Reachable, "GET http://" + regAddr + "/v2/: 200 OK"},
		{"registry-replica", deadReg, Failed, "registry replica " + deadReg + " did not answer"},
		{"registry-replica", notRegAddr, Failed, "404 Not Found"},
	}
	var rows []Row
	for _, r := range rep.Rows {
		if strings.HasSuffix(r.Channel, "-replica") {
			rows = append(rows, r)
		}
	}
	if len(rows) != len(want) {
		t.Fatalf("replica rows = %+v, want %d", rows, len(want))
	}
	for i, w := range want {
		r := rows[i]
		if r.Channel != w.channel || r.Target != w.target || r.Expected != Reachable || r.Got != w.got || !strings.Contains(r.Evidence, w.evidence) {
			t.Errorf("row %d = %+v, want %s %s got %s with evidence containing %q", i, r, w.channel, w.target, w.got, w.evidence)
		}
	}
}

// TestReplicaRowsOnlyWithSeveral: one DNS server and one registry add no
// rows (allowed-name and registry-image cover them); without allowedName
// the DNS replicas are not tested.
func TestReplicaRowsOnlyWithSeveral(t *testing.T) {
	good := dnsServer(t, nil, dns.RcodeNameError)
	for _, tt := range []struct {
		name    string
		opt     Options
		tg      Targets
		want    int
		outcome Outcome
	}{
		{"one of each", Options{NodeDNS: []string{good.String()}, Registries: []string{"127.0.0.1:1"}}, Targets{AllowedName: "allowed.test:443"}, 0, ""},
		{"two dns, no allowedName", Options{NodeDNS: []string{good.String(), good.String()}}, Targets{}, 2, NotTested},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.opt.Root, tt.opt.Timeout = t.TempDir(), testTimeout
			rep, err := run(context.Background(), tt.tg, tt.opt, fixedPorts{udp: 1, http: 1})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, r := range rep.Rows {
				if strings.HasSuffix(r.Channel, "-replica") {
					n++
					if r.Got != tt.outcome {
						t.Errorf("%s %s = %s (%s), want %s", r.Channel, r.Target, r.Got, r.Evidence, tt.outcome)
					}
				}
			}
			if n != tt.want {
				t.Errorf("replica rows = %d, want %d", n, tt.want)
			}
		})
	}
}
