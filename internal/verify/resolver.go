package verify

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/miekg/dns"
)

// resolver is the node's DNS server as the probes use it.
type resolver struct {
	server netip.AddrPort // invalid: none found
	source string         // where it was found, for the report
	// all are every server from the same source, in order (server first):
	// the DNS replicas the node asks.
	all []netip.AddrPort
}

func (r resolver) String() string {
	if !r.server.IsValid() {
		return "none (" + r.source + ")"
	}
	return r.server.String() + " (" + r.source + ")"
}

// resolvedStub is systemd-resolved's local stub listener.
var resolvedStub = netip.MustParseAddr("127.0.0.53")

// findResolver finds the DNS servers the node's workloads use: the
// nameservers in ROOT/etc/resolv.conf, unless the first is
// systemd-resolved's stub and airlock's drop-in
// (ROOT/etc/systemd/resolved.conf.d/airlock.conf) names the servers behind
// it; then the drop-in; then nodeDNS (node.dns, every entry that parses).
// The probes use the first; the replica checks ask each. It never falls
// back to the machine's resolver.
func findResolver(root string, nodeDNS []string) resolver {
	resolvPath := filepath.Join(root, "etc", "resolv.conf")
	dropIn := filepath.Join(root, "etc", "systemd", "resolved.conf.d", "airlock.conf")
	var conf, drop []netip.AddrPort
	if b, err := os.ReadFile(resolvPath); err == nil {
		conf = parseResolvConf(b)
	}
	if b, err := os.ReadFile(dropIn); err == nil {
		drop = parseResolvedDNS(b)
	}
	switch {
	case len(conf) > 0 && conf[0].Addr() == resolvedStub && len(drop) > 0:
		return resolver{drop[0], "DNS= in " + dropIn + ", behind the systemd-resolved stub in " + resolvPath, drop}
	case len(conf) > 0:
		return resolver{conf[0], "nameserver in " + resolvPath, conf}
	case len(drop) > 0:
		return resolver{drop[0], "DNS= in " + dropIn, drop}
	}
	var fromNode []netip.AddrPort
	for _, s := range nodeDNS {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			fromNode = append(fromNode, ap)
		}
	}
	if len(fromNode) > 0 {
		return resolver{fromNode[0], "node.dns; no nameserver in " + resolvPath, fromNode}
	}
	return resolver{source: "no nameserver in " + resolvPath + " or " + dropIn + ", and node.dns is unset"}
}

// parseResolvConf returns the nameserver addresses of a resolv.conf
// (port 53), in order.
func parseResolvConf(b []byte) []netip.AddrPort {
	var out []netip.AddrPort
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(f[1]); err == nil {
			out = append(out, netip.AddrPortFrom(a.Unmap(), 53))
		}
	}
	return out
}

// parseResolvedDNS returns the servers of the DNS= lines of a
// resolved.conf drop-in: "ip", "ip:port", "[ip6]:port", each optionally
// followed by "%iface" or "#server-name".
func parseResolvedDNS(b []byte) []netip.AddrPort {
	var out []netip.AddrPort
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		v, ok := strings.CutPrefix(line, "DNS=")
		if !ok {
			continue
		}
		for _, s := range strings.Fields(v) {
			s, _, _ = strings.Cut(s, "#")
			if ap, err := netip.ParseAddrPort(s); err == nil {
				out = append(out, netip.AddrPortFrom(ap.Addr().WithZone("").Unmap(), ap.Port()))
				continue
			}
			s, _, _ = strings.Cut(s, "%")
			if a, err := netip.ParseAddr(s); err == nil {
				out = append(out, netip.AddrPortFrom(a.Unmap(), 53))
			}
		}
	}
	return out
}

// errNoResolver is returned by lookups when no resolver was found.
var errNoResolver = errors.New("no resolver for the node")

// exchange sends one query for name/qtype to server over network ("udp"
// or "tcp") from the probed namespace.
func (e *env) exchange(ctx context.Context, network string, server netip.AddrPort, name string, qtype uint16) (*dns.Msg, error) {
	c, err := e.dial(ctx, network, server.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.SetEdns0(1232, false) // so airlock DNS can say it blocked (Extended DNS Error)
	co := &dns.Conn{Conn: c}
	if err := co.WriteMsg(m); err != nil {
		return nil, err
	}
	for {
		r, err := co.ReadMsg()
		if err != nil {
			return nil, err
		}
		if r.Id == m.Id {
			return r, nil
		}
	}
}

// lookup resolves host (A, then AAAA) through the node's resolver.
func (e *env) lookup(ctx context.Context, host string) (netip.Addr, error) {
	if !e.res.server.IsValid() {
		return netip.Addr{}, fmt.Errorf("resolving %s: %w: %s", host, errNoResolver, e.res.source)
	}
	var last string
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		r, err := e.exchange(ctx, "udp", e.res.server, host, qt)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("resolving %s through %s: %w", host, e.res.server, err)
		}
		for _, rr := range r.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(rr.A.To4()); ok {
					return a, nil
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(rr.AAAA); ok {
					return a, nil
				}
			}
		}
		last = dns.RcodeToString[r.Rcode]
	}
	return netip.Addr{}, fmt.Errorf("resolving %s through %s: %s, no address", host, e.res.server, last)
}

// answerSummary describes a DNS answer for evidence.
func answerSummary(r *dns.Msg) string {
	rc := dns.RcodeToString[r.Rcode]
	if len(r.Answer) == 0 {
		return rc + ", no records"
	}
	var vals []string
	for _, rr := range r.Answer {
		f := strings.Fields(rr.String())
		if len(f) > 4 {
			vals = append(vals, f[3]+" "+strings.Join(f[4:], " "))
		}
	}
	return fmt.Sprintf("%s with %d records: %s", rc, len(r.Answer), truncate(strings.Join(vals, "; "), 120))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// hostOf returns the host of "host:port".
func hostOf(hostport string) string {
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	return h
}
