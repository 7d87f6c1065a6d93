// Command learngen writes synthetic airlock decision records (the JSON
// lines the gateway and the DNS server log) for bench/learn.sh: a cluster
// with 50 nodes (10.224.0.0/16) and 2,000 pods (10.244.0.0/16) plus a few
// hosts outside both ranges, in report mode. About 70% of flows are
// allowed (already in the policy), the rest denied: names of the
// AzureKubernetesService tag, SaaS names with many siblings under one
// registrable domain, storage accounts under blob.core.windows.net (a
// public suffix: never collapsed), single names, NTP/SSH/ICMP flows with no
// name; 30% of records are DNS questions; 1% of lines are other log lines
// or junk. -names widens the set of distinct denied names (to exercise the
// key limit).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"
)

func main() {
	n := flag.Int("n", 100000, "records to write")
	extra := flag.Int("names", 0, "extra distinct denied names (uN.wide-N.example)")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()

	rnd := rand.New(rand.NewPCG(*seed, 2))
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer w.Flush()

	allowed := []string{"mcr.microsoft.com", "eastus.data.mcr.microsoft.com", "login.microsoftonline.com", "registry.k8s.io", "ghcr.io"}
	denied := []string{"management.azure.com", "packages.microsoft.com", "packages.aks.azure.com", "acs-mirror.azureedge.net",
		"api.github.com", "objects.githubusercontent.com", "pypi.org", "files.pythonhosted.org", "registry.npmjs.org",
		"dc.services.visualstudio.com", "vault.azure.net", "sts.amazonaws.com"}
	for i := range 20 {
		denied = append(denied, fmt.Sprintf("t%d.telemetry.example-saas.com", i))
	}
	for i := range 30 {
		denied = append(denied, fmt.Sprintf("acct%d.blob.core.windows.net", i))
	}
	netDst := []struct {
		dst, proto string
		port       int
	}{{"91.189.91.157", "udp", 123}, {"185.125.190.58", "udp", 123}, {"203.0.113.22", "tcp", 22}, {"198.51.100.9", "icmp", 0}, {"198.51.100.10", "tcp", 8443}}

	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	src := func() string {
		switch r := rnd.IntN(100); {
		case r < 30:
			return fmt.Sprintf("10.224.0.%d", 4+rnd.IntN(50))
		case r < 98:
			p := rnd.IntN(2000)
			return fmt.Sprintf("10.244.%d.%d", p/250, 2+p%250)
		default:
			return fmt.Sprintf("172.16.5.%d", 10+rnd.IntN(5))
		}
	}
	for i := range *n {
		ts := start.Add(time.Duration(i) * 50 * time.Millisecond).Format(time.RFC3339Nano)
		switch r := rnd.IntN(1000); {
		case r < 5:
			fmt.Fprintf(w, `{"time":%q,"level":"INFO","msg":"cache fill","component":"cache","repository":"oss/kubernetes/pause","bytes":%d}`+"\n", ts, rnd.IntN(1<<20))
			continue
		case r < 10:
			fmt.Fprintf(w, "not json at all %d\n", i)
			continue
		}
		var name string
		deny := rnd.IntN(100) < 30
		switch {
		case !deny:
			name = allowed[rnd.IntN(len(allowed))]
		case *extra > 0 && rnd.IntN(2) == 0:
			name = fmt.Sprintf("u%d.wide-%d.example", rnd.IntN(*extra), rnd.IntN(*extra))
		default:
			name = denied[rnd.IntN(len(denied))]
		}
		verdict, reason, rule, wd := "allow", "rule_allow", `,"type":"application","group":"base","collection":"registries","rule":"mcr"`, ""
		if deny {
			verdict, reason, rule, wd = "deny", "no_match", "", `,"would_deny":true`
		}
		s := src()
		switch k := rnd.IntN(100); {
		case k < 30:
			fmt.Fprintf(w, `{"time":%q,"level":"INFO","msg":"dns decision","component":"dns","src":%q,"proto":"udp","qname":%q,"qtype":%q,"verdict":%q,"reason":%q,"rcode":"NOERROR","answers":1,"duration_ms":0.21%s,"mode":"report"%s}`+"\n",
				ts, s, name, []string{"A", "AAAA"}[rnd.IntN(2)], verdict, reason, rule, wd)
		case k < 35 && deny:
			nd := netDst[rnd.IntN(len(netDst))]
			fmt.Fprintf(w, `{"time":%q,"level":"INFO","msg":"egress decision","component":"gateway","listener":"l4","src":"%s:%d","dst":"%s:%d","port":%d,"proto":%q,"app":"none","verdict":"deny","reason":"no_match","mode":"report","would_deny":true,"upstream":"%s:%d","bytes_up":%d,"bytes_down":%d,"duration_ms":%d}`+"\n",
				ts, s, 30000+rnd.IntN(30000), nd.dst, nd.port, nd.port, nd.proto, nd.dst, nd.port, rnd.IntN(200), rnd.IntN(2000), rnd.IntN(100))
		default:
			app, port := "https", 443
			if rnd.IntN(20) == 0 {
				app, port = "http", 80
			}
			fmt.Fprintf(w, `{"time":%q,"level":"INFO","msg":"egress decision","component":"gateway","listener":"transparent","src":"%s:%d","dst":"20.%d.%d.%d:%d","port":%d,"name":%q,"proto":"tcp","app":%q,"verdict":%q,"reason":%q%s,"mode":"report"%s,"upstream":"20.1.2.3:%d","bytes_up":%d,"bytes_down":%d,"duration_ms":%d}`+"\n",
				ts, s, 30000+rnd.IntN(30000), rnd.IntN(255), rnd.IntN(255), 1+rnd.IntN(254), port, port, name, app, verdict, reason, rule, wd, port, rnd.IntN(4000), rnd.IntN(1<<20), rnd.IntN(500))
		}
	}
}
