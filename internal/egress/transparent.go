package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/airlockdev/airlock/internal/dnsname"
	"github.com/airlockdev/airlock/internal/policy"
	"github.com/airlockdev/airlock/internal/sniff"
)

// handleTransparent serves one redirected connection: read its original
// destination, sniff the SNI or Host under the head deadline, decide, dial
// the resolved name (or, for a network rule, the original destination),
// replay the bytes read, relay.
func (s *Server) handleTransparent(ctx context.Context, c *net.TCPConn) {
	orig, err := s.origDst(c)
	if err != nil {
		s.m.Refused.WithLabelValues("original_dst").Inc()
		s.log.Warn("egress transparent connection refused: no original destination", keySrc, c.RemoteAddr().String(), keyError, err.Error())
		return
	}
	orig = netip.AddrPortFrom(orig.Addr().Unmap(), orig.Port())
	if orig == addrPortOf(c.LocalAddr()) {
		// Not redirected: a connection to the listener itself would loop.
		s.m.Refused.WithLabelValues("loop").Inc()
		s.log.Warn("egress transparent connection refused: not redirected (its destination is the listener itself)", keySrc, c.RemoteAddr().String(), keyDst, orig.String())
		return
	}
	f := &flow{listener: listenerTransparent, start: s.now(), src: addrPortOf(c.RemoteAddr()), dst: orig, port: orig.Port()}
	defer s.finish(f)

	c.SetReadDeadline(time.Now().Add(s.headTimeout))
	prefix, res, err := sniff.ReadHead(c)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		f.decision, f.err = policy.Deny(policy.ReasonMalformed), fmt.Errorf("reading the client's first bytes: %w", err)
		if res.Kind == sniff.TLS {
			f.app = policy.AppHTTPS
		}
		if s.mode != ModeReport || errors.Is(err, sniff.ErrNeedMore) || len(prefix) == 0 {
			return
		}
		f.wouldDeny = true
		s.forwardTransparent(ctx, f, c, prefix)
		return
	}
	switch res.Kind {
	case sniff.TLS:
		f.app = policy.AppHTTPS
	case sniff.HTTP:
		f.app = policy.AppHTTP
	}
	invalidName := false
	if res.Name != "" {
		if _, err := netip.ParseAddr(res.Name); err != nil {
			if n, err := dnsname.Parse(res.Name); err == nil {
				f.name = n
			} else {
				f.rawName, invalidName = res.Name, true
			}
		}
		// An IP literal is no name: only network rules can allow it.
	}
	f.decision = s.decide(policy.Flow{Src: f.src.Addr(), Dst: orig, Proto: policy.ProtoTCP, App: f.app, Name: f.name})
	if !f.decision.Allowed() {
		switch {
		case invalidName:
			f.decision = policy.Deny(policy.ReasonNameInvalid)
		case f.app == policy.AppNone && f.decision.Reason == policy.ReasonNoMatch:
			f.decision = policy.Deny(policy.ReasonProtocolUnknown)
		}
		if s.mode != ModeReport {
			return
		}
		f.wouldDeny = true
	}
	s.forwardTransparent(ctx, f, c, prefix)
}

// forwardTransparent dials, replays prefix and relays.
func (s *Server) forwardTransparent(ctx context.Context, f *flow, c *net.TCPConn, prefix []byte) {
	up, err := s.dialFor(ctx, f)
	if err != nil {
		return
	}
	defer s.untrack(up)
	n, err := up.Write(prefix)
	f.up += int64(n)
	if err != nil {
		f.err = fmt.Errorf("replaying the first bytes: %w", err)
		return
	}
	s.tunnel(f, c, up)
}
