package egress

import (
	"cmp"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/airlockdev/airlock/internal/netclass"
)

// Mode says what the gateway does with a denied flow.
type Mode string

// Modes.
const (
	// ModeEnforce denies: 403 with the reason for the explicit proxy, a
	// close for transparent flows.
	ModeEnforce Mode = "enforce"
	// ModeReport logs the would-be deny and lets the flow through.
	ModeReport Mode = "report"
)

// Engine is how the explicit proxy serves its connections.
type Engine string

// Engines.
const (
	// EngineLoop serves CONNECT tunnels from event loops, one per CPU
	// (GOMAXPROCS), each with its own epoll set: no goroutine per
	// connection. Other requests (absolute-form HTTP) go to the goroutine
	// path, and tunnels past their first bulkHandoff bytes to the relay
	// engine. Linux only; elsewhere EngineGoroutine is used.
	EngineLoop Engine = "loop"
	// EngineGoroutine serves each connection on its own goroutine, with
	// Go's network poller.
	EngineGoroutine Engine = "goroutine"
)

// Defaults applied by SetDefaults.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultHeadTimeout = 5 * time.Second
	// DefaultUDPIdleTimeout ends a UDP flow that carried no datagram in
	// either direction for this long.
	DefaultUDPIdleTimeout = 60 * time.Second
	// DefaultUDPMaxFlows bounds the UDP flows each UDP listener keeps.
	DefaultUDPMaxFlows = 4096
	// DefaultUDPDenyTimeout is how long a denied UDP flow is remembered.
	DefaultUDPDenyTimeout = 5 * time.Second
	// MinUDPMaxFlowsPerSource is the least default share of one client
	// source: the default udpMaxFlowsPerSource is udpMaxFlows/16, but not
	// below this (nor above udpMaxFlows).
	MinUDPMaxFlowsPerSource = 16
)

// DefaultUDPMaxFlowsPerSource is the default udpMaxFlowsPerSource for a
// udpMaxFlows of maxFlows: a sixteenth of it, at least 16, at most
// maxFlows.
func DefaultUDPMaxFlowsPerSource(maxFlows int) int {
	return min(max(maxFlows/16, MinUDPMaxFlowsPerSource), maxFlows)
}

// Config is the gateway section of airlock.yaml.
type Config struct {
	// Mode is enforce (default) or report (log would-deny, allow).
	Mode Mode `yaml:"mode"`
	// ProxyListen is the explicit proxy's address ("host:port"): HTTP
	// CONNECT and absolute-form plain HTTP. Empty: no explicit proxy.
	ProxyListen string `yaml:"proxyListen" config:"listen"`
	// TransparentListen is the address the gateway host's nftables rules
	// redirect tcp/80 and tcp/443 to ("host:port"). Empty: no transparent
	// listener.
	TransparentListen string `yaml:"transparentListen" config:"listen"`
	// L4Listen receives the TCP ports of network rules that the gateway
	// host's TPROXY rule intercepts (everything but 80 and 443, which go to
	// TransparentListen); the socket is IP_TRANSPARENT, so each connection
	// keeps its original destination. Use a wildcard host ("0.0.0.0:15002"
	// or "[::]:15002"); needs CAP_NET_ADMIN. Empty: no L4 forwarding.
	L4Listen string `yaml:"l4Listen" config:"listen"`
	// AllowedInternalRanges are CIDRs (or single addresses) of loopback,
	// private or other special addresses that an allowed name may resolve
	// to (on-prem services, tests). Default empty: every such address is
	// refused for a name (reason internal_address). Parsed once, when the
	// config is decoded (netclass.AllowedRange); the dialer and the DNS
	// rebinding filter get these same prefixes.
	AllowedInternalRanges netclass.AllowedRanges `yaml:"allowedInternalRanges"`
	// AllowIPv6 permits IPv6 destinations. Default false: an IPv6
	// destination is refused (reason ipv6_disabled) and AAAA answers are
	// skipped when dialling a name.
	AllowIPv6 bool `yaml:"allowIPv6"`
	// DialTimeout bounds name resolution plus the TCP connect to the
	// upstream, per flow. Default 10s; zero means the default.
	DialTimeout time.Duration `yaml:"dialTimeout"`
	// HeadTimeout bounds how long a client may take to send its TLS
	// ClientHello or HTTP request head (transparent listener) or its proxy
	// request head (explicit proxy); a slow client is cut at it. Default 5s;
	// zero means the default.
	HeadTimeout time.Duration `yaml:"headTimeout"`
	// ProxyEngine is how the explicit proxy serves connections: loop
	// (default; event loops, one per CPU, on Linux) or goroutine (a
	// goroutine per connection). Both apply the same policy and write the
	// same decision records; loop costs less CPU per tunnel.
	ProxyEngine Engine `yaml:"proxyEngine"`
	// SourceAddresses are local addresses outbound connections are bound
	// to, round-robin per address family, to spread SNAT ports over several
	// addresses. Default empty: the kernel picks the source.
	SourceAddresses []string `yaml:"sourceAddresses"`
	// UDPIdleTimeout ends a UDP flow (L4 or DNAT; one flow per client
	// source and original destination) after this long without a datagram
	// either way; its decision record is written then. Default 60s; zero
	// means the default.
	UDPIdleTimeout time.Duration `yaml:"udpIdleTimeout"`
	// UDPMaxFlows bounds the live UDP flows of each UDP listener, so a
	// flood cannot exhaust memory or file descriptors (a flow holds two
	// sockets); it also bounds, separately, the denied flows the listener
	// remembers. When the table is full a new flow takes the place of the
	// least recently used flow of the source holding the most flows, or of
	// a flow idle for a second; failing both its datagram is dropped and
	// counted (table_full). Default 4096; zero means the default.
	UDPMaxFlows int `yaml:"udpMaxFlows"`
	// UDPMaxFlowsPerSource bounds the live UDP flows of one client address
	// per UDP listener, so one client cannot take the table. A client at
	// its limit opens a new flow in place of its own least recently used
	// flow when that one has been idle for a second; otherwise the datagram
	// is dropped and counted (source_limit). Default 0, which means
	// udpMaxFlows/16, at least 16 and at most udpMaxFlows (256 for the
	// default udpMaxFlows); must not exceed udpMaxFlows.
	UDPMaxFlowsPerSource int `yaml:"udpMaxFlowsPerSource"`
	// UDPDenyTimeout is how long a denied UDP flow (client source and
	// destination) is remembered: its later datagrams are dropped without
	// a new decision. A denied flow holds no flow slot. It is also how long
	// a client address and destination that got a deny record get no
	// other (more source ports, same destination). Default 5s; zero means
	// the default.
	UDPDenyTimeout time.Duration `yaml:"udpDenyTimeout"`
}

// SetDefaults fills what the file left out: mode enforce, dialTimeout 10s,
// headTimeout 5s, proxyEngine loop, udpIdleTimeout 60s, udpMaxFlows 4096, udpDenyTimeout
// 5s. udpMaxFlowsPerSource stays 0, which means a share of udpMaxFlows
// (DefaultUDPMaxFlowsPerSource): the file may set udpMaxFlows after the
// defaults are applied.
func (c *Config) SetDefaults() {
	if c.Mode == "" {
		c.Mode = ModeEnforce
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.HeadTimeout == 0 {
		c.HeadTimeout = DefaultHeadTimeout
	}
	if c.ProxyEngine == "" {
		c.ProxyEngine = EngineLoop
	}
	if c.UDPIdleTimeout == 0 {
		c.UDPIdleTimeout = DefaultUDPIdleTimeout
	}
	if c.UDPMaxFlows == 0 {
		c.UDPMaxFlows = DefaultUDPMaxFlows
	}
	if c.UDPDenyTimeout == 0 {
		c.UDPDenyTimeout = DefaultUDPDenyTimeout
	}
}

// Validate reports every problem with a path relative to the section. The
// listen addresses are checked by the config loader (config:"listen").
func (c *Config) Validate(report func(path, msg string)) {
	switch c.Mode {
	case ModeEnforce, ModeReport, "":
	default:
		report("mode", fmt.Sprintf("%q: want enforce or report", c.Mode))
	}
	if c.ProxyListen != "" && c.ProxyListen == c.TransparentListen {
		report("transparentListen", fmt.Sprintf("%q is also proxyListen; the two listeners need different addresses", c.TransparentListen))
	}
	switch c.ProxyEngine {
	case EngineLoop, EngineGoroutine, "":
	default:
		report("proxyEngine", fmt.Sprintf("%q: want loop or goroutine", c.ProxyEngine))
	}
	if c.DialTimeout < 0 {
		report("dialTimeout", fmt.Sprintf("must be positive, got %s", c.DialTimeout))
	}
	if c.HeadTimeout < 0 {
		report("headTimeout", fmt.Sprintf("must be positive, got %s", c.HeadTimeout))
	}
	if c.UDPIdleTimeout < 0 {
		report("udpIdleTimeout", fmt.Sprintf("must be positive, got %s", c.UDPIdleTimeout))
	}
	if c.UDPMaxFlows < 0 {
		report("udpMaxFlows", fmt.Sprintf("must be positive, got %d", c.UDPMaxFlows))
	}
	maxFlows := cmp.Or(c.UDPMaxFlows, DefaultUDPMaxFlows)
	switch {
	case c.UDPMaxFlowsPerSource < 0:
		report("udpMaxFlowsPerSource", fmt.Sprintf("must be positive, got %d", c.UDPMaxFlowsPerSource))
	case c.UDPMaxFlowsPerSource > maxFlows && maxFlows > 0:
		report("udpMaxFlowsPerSource", fmt.Sprintf("%d exceeds udpMaxFlows (%d)", c.UDPMaxFlowsPerSource, maxFlows))
	}
	if c.UDPDenyTimeout < 0 {
		report("udpDenyTimeout", fmt.Sprintf("must be positive, got %s", c.UDPDenyTimeout))
	}
	for i, s := range c.SourceAddresses {
		if _, msg := parseSource(s); msg != "" {
			report("sourceAddresses["+strconv.Itoa(i)+"]", msg)
		}
	}
}

// parseSource parses a sourceAddresses entry: one unicast IP address.
func parseSource(s string) (netip.Addr, string) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, fmt.Sprintf("%q: want an IP address", s)
	case a.Zone() != "":
		return netip.Addr{}, fmt.Sprintf("%q: an address with a zone is not accepted", s)
	case a.IsUnspecified() || a.IsMulticast():
		return netip.Addr{}, fmt.Sprintf("%q: want a unicast address of this host", s)
	}
	return a.Unmap(), ""
}
