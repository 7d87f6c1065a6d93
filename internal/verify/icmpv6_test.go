package verify

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestICMPv6MessageRoundTrip(t *testing.T) {
	dst := netip.MustParseAddr("fdaa:99::66")
	for _, k := range icmpv6Kinds {
		msg := icmpv6Message(k.typ, dst, 0x1234, "0123456789abcdef", flagProbe)
		p, ok := parseICMPv6(msg)
		if !ok || p.typ != k.typ || p.nonce != "0123456789abcdef" || p.flag != flagProbe {
			t.Errorf("parseICMPv6(icmpv6Message(%d)) = %+v, %v; want the type, nonce and probe flag back", k.typ, p, ok)
		}
		if k.typ == icmpv6NeighSolic || k.typ == icmpv6NeighAdvert {
			if a := dst.As16(); !bytes.Equal(msg[8:24], a[:]) {
				t.Errorf("type %d target = %x, want %s", k.typ, msg[8:24], dst)
			}
		}
	}
	// The far side's kernel answers an echo request with the same
	// identifier, sequence and payload under type 129.
	reply := icmpv6Message(icmpv6EchoRequest, dst, 7, "fedcba9876543210", flagProbe)
	reply[0] = icmpv6EchoReply
	if p, ok := parseICMPv6(reply); !ok || p.typ != icmpv6EchoReply || p.nonce != "fedcba9876543210" {
		t.Errorf("parseICMPv6(echo reply) = %+v, %v; want type 129 and the nonce", p, ok)
	}
}

func TestParseICMPv6Rejects(t *testing.T) {
	good := icmpv6Message(icmpv6RouterSolic, netip.IPv6Loopback(), 0, "0123456789abcdef", flagProbe)
	tests := map[string][]byte{
		"empty":        nil,
		"header only":  good[:4],
		"truncated":    good[:len(good)-1],
		"trailing":     append(bytes.Clone(good), 'x'),
		"bad nonce":    bytes.Replace(bytes.Clone(good), []byte("0123"), []byte("xyz!"), 1),
		"bad flag":     append(bytes.Clone(good[:len(good)-1]), '*'),
		"other marker": bytes.Replace(bytes.Clone(good), []byte("airlock"), []byte("someone"), 1),
	}
	for name, msg := range tests {
		if p, ok := parseICMPv6(msg); ok {
			t.Errorf("parseICMPv6(%s %q) = %+v, want not a probe", name, msg, p)
		}
	}
}

func TestReflection(t *testing.T) {
	dst := netip.MustParseAddr("fdaa:99::66")
	for _, k := range icmpv6Kinds {
		msg := icmpv6Message(k.typ, dst, 1, "0123456789abcdef", flagProbe)
		msg[2], msg[3] = 0xab, 0xcd // a checksum, as received
		out, ok := reflection(msg)
		if k.typ == icmpv6EchoRequest {
			if ok {
				t.Errorf("reflection(echo request) = %x, want none (the far side's kernel answers)", out)
			}
			continue
		}
		if !ok {
			t.Fatalf("reflection(type %d) = none, want the probe back", k.typ)
		}
		if len(out) != len(msg) || out[0] != k.typ || out[2] != 0 || out[3] != 0 || out[len(out)-1] != flagReflection {
			t.Errorf("reflection(type %d) = %x, want the same bytes, checksum cleared, flagged as a reflection", k.typ, out)
		}
		if again, ok := reflection(out); ok {
			t.Errorf("reflection(reflection) = %x, want none: two reflectors must not play ping-pong", again)
		}
	}
	if out, ok := reflection([]byte{135, 0, 0, 0}); ok {
		t.Errorf("reflection(a real neighbour solicitation) = %x, want none", out)
	}
}

func TestLimiter(t *testing.T) {
	l := limiter{rate: 2, burst: 3}
	now := time.Unix(1000, 0)
	got := 0
	for range 10 {
		if l.allow(now) {
			got++
		}
	}
	if got != 3 {
		t.Errorf("limiter allowed %d at once, want the burst of 3", got)
	}
	if !l.allow(now.Add(500*time.Millisecond)) || l.allow(now.Add(500*time.Millisecond)) {
		t.Errorf("limiter after 0.5 s at 2/s: want exactly one more")
	}
}

// TestICMPv6Loopback runs the ICMPv6 rows against ::1 with a reflector in
// this process. Without a raw socket (not root) every row is not tested,
// with the reason; with one, every probe comes back: loopback is not
// isolated.
func TestICMPv6Loopback(t *testing.T) {
	// Open the reflector before the first probe: a probe sent to ::1
	// before its socket exists is never seen.
	if r, err := OpenReflector(); err == nil {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Serve(ctx, slog.New(slog.DiscardHandler)) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	rep := runTest(t, Targets{OffLinkIPv6: "::1"}, netip.AddrPort{}, fixedPorts{})
	for _, k := range icmpv6Kinds {
		r := rowOf(t, rep, k.channel)
		t.Logf("%s: %s (%s)", k.channel, r.Got, r.Evidence)
		switch {
		case r.Got == NotTested && (strings.Contains(r.Evidence, "CAP_NET_RAW") || strings.Contains(r.Evidence, "need Linux")):
		case r.Got == Leak && k.typ == icmpv6EchoRequest && strings.Contains(r.Evidence, "echo reply from ::1"):
		case r.Got == Leak && strings.Contains(r.Evidence, "its reflector sent it back"):
		default:
			t.Errorf("%s to ::1 = %s (%s), want LEAK (loopback answers) or not tested for want of a raw socket", k.channel, r.Got, r.Evidence)
		}
	}
}

// TestMetadataExpectedByConfig: when the node's configuration lets the
// probed side reach metadataAddress, the metadata row is a positive check.
func TestMetadataExpectedByConfig(t *testing.T) {
	tests := []struct {
		name     string
		target   string
		reaches  bool
		expected Outcome
		got      Outcome
	}{
		{"allowed and answers", httpServer(t), true, Reachable, Reachable},
		{"allowed and silent", interceptor(t), true, Reachable, Failed},
		{"not allowed and answers", httpServer(t), false, Blocked, Leak},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked []netip.Addr
			reaches := func(a netip.Addr, pod bool) bool {
				asked = append(asked, a)
				return tt.reaches && !pod
			}
			rep, err := run(context.Background(), Targets{MetadataAddress: tt.target}, Options{Root: t.TempDir(), Timeout: testTimeout, Reaches: reaches}, fixedPorts{udp: 1, http: 1})
			if err != nil {
				t.Fatal(err)
			}
			r := rowOf(t, rep, "metadata")
			if r.Expected != tt.expected || r.Got != tt.got {
				t.Errorf("metadata row = expected %s got %s (%s), want expected %s got %s", r.Expected, r.Got, r.Evidence, tt.expected, tt.got)
			}
			if len(asked) == 0 || asked[0] != netip.MustParseAddrPort(tt.target).Addr() {
				t.Errorf("Reaches asked about %v, want the metadata address of %s", asked, tt.target)
			}
		})
	}
}

func FuzzParseICMPv6(f *testing.F) {
	for _, k := range icmpv6Kinds {
		f.Add(icmpv6Message(k.typ, netip.MustParseAddr("fdaa::1"), 9, "0123456789abcdef", flagProbe))
	}
	f.Add([]byte{135, 0, 0, 0})
	f.Add([]byte{129, 0, 0, 0, 0, 0, 0, 0, 'a'})
	f.Fuzz(func(t *testing.T, msg []byte) {
		in := bytes.Clone(msg)
		p, ok := parseICMPv6(msg)
		out, rok := reflection(msg)
		if !bytes.Equal(in, msg) {
			t.Fatalf("parseICMPv6 or reflection changed their input")
		}
		if rok && (!ok || p.flag != flagProbe) {
			t.Fatalf("reflection(%x) answered something parseICMPv6 does not take for a probe (%+v %v)", msg, p, ok)
		}
		if !rok {
			return
		}
		if len(out) > len(msg) {
			t.Fatalf("reflection(%x) = %d bytes, larger than the %d-byte probe", msg, len(out), len(msg))
		}
		if q, ok := parseICMPv6(out); !ok || q.flag != flagReflection || q.nonce != p.nonce || q.typ != p.typ {
			t.Fatalf("parseICMPv6(reflection(%x)) = %+v %v, want the same type and nonce flagged as a reflection", msg, q, ok)
		}
	})
}
