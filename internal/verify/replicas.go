package verify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"

	"github.com/miekg/dns"
)

// replicaProbes are the positive checks of every replica, one row each,
// when the node lists several (node.dns, or the resolver configuration
// under the root, and node.registry): a dead replica fails its own row
// even while the others keep the node working.
func (b *battery) replicaProbes() []probe {
	var ps []probe
	if servers := b.e.res.all; len(servers) > 1 {
		for _, srv := range servers {
			ps = append(ps, probe{channel: "dns-replica", target: srv.String(), expected: Reachable,
				missing: need("allowedName", b.t.AllowedName),
				run:     func(ctx context.Context) (Outcome, string) { return b.dnsReplica(ctx, srv) }})
		}
	}
	if len(b.registries) > 1 {
		for _, reg := range b.registries {
			ps = append(ps, probe{channel: "registry-replica", target: reg, expected: Reachable,
				run: func(ctx context.Context) (Outcome, string) { return b.registryReplica(ctx, reg) }})
		}
	}
	return ps
}

// dnsReplica asks one DNS replica for the allowed name (A): it answers
// when the reply is NOERROR.
func (b *battery) dnsReplica(ctx context.Context, srv netip.AddrPort) (Outcome, string) {
	name := dns.Fqdn(hostOf(b.t.AllowedName))
	r, err := b.e.exchange(ctx, "udp", srv, name, dns.TypeA)
	if err != nil {
		_, ev := classifyErr(err, b.e.timeout)
		return Failed, fmt.Sprintf("DNS replica %s did not answer A %s: %s", srv, name, ev)
	}
	ev := fmt.Sprintf("A %s from %s: %s", name, srv, answerSummary(r))
	if r.Rcode != dns.RcodeSuccess {
		return Failed, "DNS replica " + srv.String() + " answered with an error: " + ev
	}
	return Reachable, ev
}

// registryReplica GETs /v2/ of one registry replica: it answers when the
// status is 200, or 401 (the API is there and wants a token).
func (b *battery) registryReplica(ctx context.Context, reg string) (Outcome, string) {
	scheme := "http"
	if b.registryTLS {
		scheme = "https"
	}
	u := scheme + "://" + reg + "/v2/"
	var h hostEntry
	if b.registryCA != "" {
		h.CA = []string{b.registryCA}
	}
	client, err := b.mirrorClient("", h)
	if err != nil {
		return Failed, err.Error()
	}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Failed, fmt.Sprintf("registry replica %s: %v", reg, err)
	}
	req.Header.Set("User-Agent", "airlock-verify")
	resp, err := client.Do(req)
	if err != nil {
		_, ev := classifyErr(err, b.e.timeout)
		return Failed, fmt.Sprintf("registry replica %s did not answer GET %s: %s", reg, u, ev)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	ev := fmt.Sprintf("GET %s: %s", u, resp.Status)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return Failed, "registry replica " + reg + " is not an OCI registry: " + ev
	}
	return Reachable, ev
}
