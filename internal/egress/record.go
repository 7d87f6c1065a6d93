package egress

import (
	"cmp"
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/airlockdev/airlock/internal/dnsname"
	"github.com/airlockdev/airlock/internal/policy"
)

// Log keys of the decision record.
const (
	keyListener   = "listener"
	keySrc        = "src"
	keyDst        = "dst"
	keyPort       = "port"
	keyName       = "name"
	keyProto      = "proto"
	keyApp        = "app"
	keyVerdict    = "verdict"
	keyType       = "type"
	keyGroup      = "group"
	keyCollection = "collection"
	keyRule       = "rule"
	keyReason     = "reason"
	keyMode       = "mode"
	keyWouldDeny  = "would_deny"
	keyUpstream   = "upstream"
	keyBytesUp    = "bytes_up"
	keyBytesDown  = "bytes_down"
	keyDuration   = "duration_ms"
	keyError      = "error"
)

// Listener names, as logged and in metrics.
const (
	listenerProxy       = "proxy"
	listenerTransparent = "transparent"
)

// recordMsg is the message of every decision record.
const recordMsg = "egress decision"

// hitsComponent is the component the gateway's rule hits are counted for.
const hitsComponent = "gateway"

// flow is one connection's state from accept to the decision record.
type flow struct {
	listener string
	start    time.Time
	src      netip.AddrPort
	// dst is the original destination: the redirected address for the
	// transparent listener, the IP literal for the explicit proxy; invalid
	// when the client asked the explicit proxy for a name.
	dst  netip.AddrPort
	port uint16
	// proto is the transport; zero means TCP.
	proto policy.Proto
	name  dnsname.Name
	// rawName is the name as sent when it is not a valid host name.
	rawName   string
	app       policy.App
	decision  policy.Decision
	wouldDeny bool
	upstream  netip.AddrPort
	up, down  int64
	err       error
}

// finish writes the flow's one decision record and counts it.
func (s *Server) finish(f *flow) {
	d := f.decision
	if s.log.Enabled(context.Background(), slog.LevelInfo) {
		s.record(f)
	}
	s.hits.Count(hitsComponent, d, s.now())
	s.m.flowCounter(f.listener, d).Inc()
	s.m.bytesUp.Add(float64(f.up))
	s.m.bytesDown.Add(float64(f.down))
}

// record writes the flow's decision record (built only when the logger
// takes info records: its attributes cost allocations per flow).
func (s *Server) record(f *flow) {
	d := f.decision
	attrs := make([]slog.Attr, 0, 20)
	attrs = append(attrs,
		slog.String(keyListener, f.listener),
		slog.String(keySrc, f.src.String()),
	)
	if f.dst.Addr().IsValid() {
		attrs = append(attrs, slog.String(keyDst, f.dst.String()))
	}
	attrs = append(attrs, slog.Int(keyPort, int(f.port)))
	switch {
	case !f.name.IsZero():
		attrs = append(attrs, slog.String(keyName, f.name.String()))
	case f.rawName != "":
		attrs = append(attrs, slog.String(keyName, f.rawName))
	}
	attrs = append(attrs,
		slog.String(keyProto, cmp.Or(f.proto, policy.ProtoTCP).String()),
		slog.String(keyApp, f.app.String()),
		slog.String(keyVerdict, string(d.Verdict)),
		slog.String(keyReason, string(d.Reason)),
	)
	if d.Type != "" {
		attrs = append(attrs, slog.String(keyType, string(d.Type)), slog.String(keyGroup, d.Group),
			slog.String(keyCollection, d.Collection), slog.String(keyRule, d.Rule))
	}
	attrs = append(attrs, slog.String(keyMode, string(s.mode)))
	if f.wouldDeny {
		attrs = append(attrs, slog.Bool(keyWouldDeny, true))
	}
	if f.upstream.IsValid() {
		attrs = append(attrs, slog.String(keyUpstream, f.upstream.String()))
	}
	attrs = append(attrs,
		slog.Int64(keyBytesUp, f.up),
		slog.Int64(keyBytesDown, f.down),
		slog.Int64(keyDuration, s.now().Sub(f.start).Milliseconds()),
	)
	if f.err != nil {
		attrs = append(attrs, slog.String(keyError, f.err.Error()))
	}
	s.log.LogAttrs(context.Background(), slog.LevelInfo, recordMsg, attrs...)
}
