package verify

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
)

// tcpToIP connects straight to an address and sends a ClientHello
// without SNI: any byte back is a leak.
func (b *battery) tcpToIP(ctx context.Context, addr string) (Outcome, string) {
	var tr tlsResult
	return b.e.streamProbe(ctx, addr, tlsTalk("", &tr)).classify(b.e.timeout)
}

// allowedResult is the allowed name reached the normal way: resolved
// through the node's resolver, TLS with its own SNI (HTTP on port 80).
type allowedResult struct {
	addr   string // the address it resolved to, with the port
	leafFP string // "" when no TLS certificate came
	desc   string
	err    error
}

func (b *battery) reachAllowed(ctx context.Context) allowedResult {
	host, port, _ := net.SplitHostPort(b.t.AllowedName)
	ip, err := b.e.lookup(ctx, host)
	if err != nil {
		return allowedResult{err: err}
	}
	addr := net.JoinHostPort(ip.String(), port)
	var tr tlsResult
	talk := tlsTalk(host, &tr)
	if port == "80" {
		talk = httpTalk(host, nil)
	}
	s := b.e.streamProbe(ctx, addr, talk)
	switch {
	case s.dialErr != nil:
		return allowedResult{addr: addr, err: s.dialErr}
	case s.talkErr != nil:
		return allowedResult{addr: addr, err: fmt.Errorf("%d bytes came back, then: %w", s.read, s.talkErr)}
	}
	return allowedResult{addr: addr, leafFP: tr.leafFP, desc: s.desc}
}

// allowedName is the positive check: the allowed name must answer.
func (b *battery) allowedName(ctx context.Context) (Outcome, string) {
	r := b.allowed()
	if r.err != nil {
		where := ""
		if r.addr != "" {
			where = " at " + r.addr
		}
		return Failed, fmt.Sprintf("allowed name did not answer%s: %v", where, r.err)
	}
	return Reachable, fmt.Sprintf("%s (resolved to %s by %s)", r.desc, r.addr, b.e.res.server)
}

// allowedSNIToDeniedIP sends the allowed name as SNI to the denied
// address. A gateway that binds names to its own resolution forwards it
// to the allowed host: the handshake then completes with the allowed
// name's certificate, which is not a leak. A different certificate means
// the denied address answered.
func (b *battery) allowedSNIToDeniedIP(ctx context.Context) (Outcome, string) {
	host := hostOf(b.t.AllowedName)
	var tr tlsResult
	sctx, cancel := context.WithTimeout(ctx, b.e.timeout)
	defer cancel()
	s := b.e.streamProbe(sctx, b.t.DeniedAddress, tlsTalk(host, &tr))
	got, ev := s.classify(b.e.timeout)
	if got != Leak || s.talkErr != nil || tr.leafFP == "" {
		return got, ev
	}
	ref := b.allowed()
	switch {
	case ref.err != nil || ref.leafFP == "":
		return Leak, fmt.Sprintf("%s; the allowed name's own certificate could not be fetched to compare (%v), so this counts as the denied address answering", ev, ref.err)
	case ref.leafFP == tr.leafFP:
		return Blocked, fmt.Sprintf("handshake completed with the allowed name's own certificate (leaf sha256 %s, same as %s presents when reached normally): the gateway bound the name to its own resolution; the denied address was not reached", shortFP(tr.leafFP), ref.addr)
	}
	return Leak, fmt.Sprintf("%s; the leaf differs from the allowed name's own (sha256 %s at %s): the denied address answered", ev, shortFP(ref.leafFP), ref.addr)
}

// allowedNameDeniedPort connects to the allowed name's address on a port
// no rule allows.
func (b *battery) allowedNameDeniedPort(ctx context.Context) (Outcome, string) {
	host := hostOf(b.t.AllowedName)
	ip, err := b.e.lookup(ctx, host)
	if err != nil {
		return NotTested, fmt.Sprintf("the allowed name did not resolve through the node's resolver: %v", err)
	}
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(int(b.t.DeniedPort)))
	var tr tlsResult
	got, ev := b.e.streamProbe(ctx, addr, tlsTalk(host, &tr)).classify(b.e.timeout)
	return got, addr + ": " + ev
}

// metadata asks the metadata endpoint for its root document.
//
// When the node's configuration lets the probed side reach the address
// (metadataExpected), the row is a positive check: what would be a leak
// (any answer) is reachable, what would be blocked failed.
func (b *battery) metadata(ctx context.Context) (Outcome, string) {
	h := http.Header{"Metadata": {"true"}, "Metadata-Flavor": {"Google"}}
	got, ev := b.e.streamProbe(ctx, b.t.MetadataAddress, httpTalk(hostOf(b.t.MetadataAddress), h)).classify(b.e.timeout)
	if b.metadataExpected() != Reachable {
		return got, ev
	}
	const why = " (the node's configuration lets "
	who := "this node"
	if b.pod {
		who = "pods"
	}
	switch got {
	case Leak:
		return Reachable, ev + why + who + " reach it)"
	case Blocked:
		return Failed, ev + why + who + " reach it, yet it did not answer)"
	}
	return got, ev
}

// httpIPLiteral sends plain HTTP whose Host is the IP literal itself.
func (b *battery) httpIPLiteral(ctx context.Context, addr string) (Outcome, string) {
	return b.e.streamProbe(ctx, addr, httpTalk(hostOf(addr), nil)).classify(b.e.timeout)
}
