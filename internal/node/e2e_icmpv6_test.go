//go:build e2e

package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/airlockdev/airlock/internal/testkit/netnstest"
)

// The off-link target of the ICMPv6 probes: on gw's loopback, routed from
// the node through fdaa:61::1 and from the pod through the node. The
// sentinel goes to fdaa:61::1, inside node.allowedAddresses, on the same
// path.
var (
	offLink6  = netip.MustParseAddr("fdaa:62::10")
	sentinel6 = netip.MustParseAddr("fdaa:61::1")
)

// icmp6Probe is one ICMPv6 type sent off the link with a payload.
type icmp6Probe struct {
	typ  uint8
	name string
}

var icmp6Probes = []icmp6Probe{
	{133, "router solicitation"},
	{135, "neighbour solicitation"},
	{136, "neighbour advertisement"},
	{143, "MLDv2 report"},
	{128, "echo request"},
	{199, "unassigned type 199"},
}

// icmp6Catcher is a raw ICMPv6 socket in a namespace that keeps every
// message whose payload starts with its marker: the far side's own view
// of what arrived.
type icmp6Catcher struct {
	marker []byte
	mu     sync.Mutex
	got    map[string][]uint8 // payload tag → types seen
	signal chan struct{}
}

func newICMP6Catcher(t *testing.T, ns string) *icmp6Catcher {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	c := &icmp6Catcher{marker: []byte("alxn-icmp6-" + hex.EncodeToString(b[:]) + "/"), got: map[string][]uint8{}, signal: make(chan struct{}, 64)}
	fd := netnstest.RawICMPv6(t, ns)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				if err == unix.EINTR {
					continue
				}
				return
			}
			if n < 4 {
				continue
			}
			_, rest, ok := bytes.Cut(buf[4:n], c.marker)
			if !ok {
				continue
			}
			c.mu.Lock()
			c.got[string(rest)] = append(c.got[string(rest)], buf[0])
			c.mu.Unlock()
			select {
			case c.signal <- struct{}{}:
			default:
			}
		}
	}()
	return c
}

// seen returns the types that arrived with payload tag.
func (c *icmp6Catcher) seen(tag string) []uint8 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got[tag])
}

// sendOffLink sends each probe type from ns to offLink6 (hop limit 255,
// the value neighbour discovery demands, and a payload), then an echo
// request to sentinel6, all from one thread pinned to one CPU: packets on
// one path then stay in order, so once the sentinel has arrived every
// probe that was going to arrive has. It returns the probe types the
// catcher saw.
func sendOffLink(t *testing.T, ns string, c *icmp6Catcher) []uint8 {
	t.Helper()
	tag := ns + "/" + hex.EncodeToString(randBytes(4))
	if err := pinnedInNetns(ns, func() error {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		if err != nil {
			return fmt.Errorf("raw ICMPv6 socket: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 255); err != nil {
			return err
		}
		send := func(typ uint8, dst netip.Addr, tag string) {
			msg := append([]byte{typ, 0, 0, 0}, c.marker...) // the kernel fills in the checksum
			msg = append(msg, tag...)
			err := unix.Sendto(fd, msg, 0, &unix.SockaddrInet6{Addr: dst.As16()})
			t.Logf("%s: ICMPv6 type %d to %s, %d bytes of payload: send error %v", ns, typ, dst, len(msg)-4, err)
		}
		for _, p := range icmp6Probes {
			send(p.typ, offLink6, tag)
		}
		send(128, sentinel6, tag+"/sentinel")
		return nil
	}); err != nil {
		t.Fatalf("sending from %s: %v", ns, err)
	}
	deadline := time.After(15 * time.Second) // a guard against a hang, not a measurement
	for len(c.seen(tag+"/sentinel")) == 0 {
		select {
		case <-c.signal:
		case <-deadline:
			t.Fatalf("the sentinel echo request from %s to %s (allowed) never arrived: the path is broken, the probes prove nothing", ns, sentinel6)
		}
	}
	return c.seen(tag)
}

// pinnedInNetns runs f on a fresh thread in namespace ns, pinned to CPU 0.
// The thread is never unlocked, so it ends with the goroutine.
func pinnedInNetns(ns string, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			done <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		var cpu unix.CPUSet
		cpu.Set(0)
		if err := unix.SchedSetaffinity(0, &cpu); err != nil {
			done <- fmt.Errorf("pinning to CPU 0: %w", err)
			return
		}
		done <- f()
	}()
	return <-done
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func typeNames(types []uint8) []string {
	var out []string
	for _, typ := range types {
		name := fmt.Sprintf("type %d", typ)
		for _, p := range icmp6Probes {
			if p.typ == typ {
				name += " (" + p.name + ")"
			}
		}
		out = append(out, name)
	}
	return out
}

// TestE2ENodeICMPv6OffLink is issue 10 point 1: under block, no ICMPv6
// message a process shapes with a raw socket (neighbour discovery types
// with hop limit 255 and a payload, MLD, echo, an unassigned type) leaves
// the node or a pod for a routed, off-link address; the far side's raw
// socket is the witness. Neighbour discovery itself keeps working: the
// node resolves its gateway and the pod resolves the node over global
// addresses (the node answers with a unicast neighbour advertisement).
// With the accept rule airlock had before (ND types to any destination)
// put back, the same probes arrive: the test sees the leak when it exists.
func TestE2ENodeICMPv6OffLink(t *testing.T) {
	tp := newTopo(t)
	catcher := newICMP6Catcher(t, tp.gw)
	n := New(t.TempDir(), nsRunner{tp.node}, nil)
	in := e2eInput(OutboundBlock)
	if _, err := n.Apply(context.Background(), in); err != nil {
		t.Fatalf("Apply(block): %v", err)
	}
	for _, from := range []string{tp.node, tp.pod} {
		if got := sendOffLink(t, from, catcher); len(got) > 0 {
			t.Errorf("ICMPv6 from %s to off-link %s under block: %v reached the far side, want none", from, offLink6, typeNames(got))
		}
	}
	checkReach(t, "block, ND still works", []reach{
		{tp.node, "[fdaa:61::1]:443", true}, // inside allowedAddresses: the node resolved gw
		{tp.pod, "[fdaa:61::1]:443", true},  // the pod resolved the node from its global address
		{tp.pod, "[fdaa:62::10]:443", false},
	})

	// The rule of the old ruleset, in both base chains.
	for _, c := range []string{"output", "forward"} {
		netnstest.Exec(t, "ip", "netns", "exec", tp.node, "nft", "insert", "rule", "inet", Table, c,
			"icmpv6", "type", "{", "nd-neighbor-solicit,", "nd-neighbor-advert,", "nd-router-solicit", "}", "accept")
	}
	want := []uint8{133, 135, 136}
	for _, from := range []string{tp.node, tp.pod} {
		if got := sendOffLink(t, from, catcher); !slices.Equal(got, want) {
			t.Errorf("ICMPv6 from %s to off-link %s with the old ND rule: %v reached the far side, want %v", from, offLink6, typeNames(got), typeNames(want))
		}
	}
}

// TestE2ENodePodLinkLocal is issue 10 point 2: what the node may reach is
// not what its pods may reach. The metadata service 169.254.169.254 (a
// listener on gw) in node.allowedAddresses, as docs used to suggest, or in
// node.hostAllowedAddresses: the node reaches it, a pod does not (and
// apply says so for the first). An address in hostAllowedAddresses inside
// an allowedAddresses range: the node only. podLinkLocalAccess Allowed:
// pods reach the link-local addresses allowedAddresses lists.
func TestE2ENodePodLinkLocal(t *testing.T) {
	tests := []struct {
		name     string
		mut      func(*Config)
		cases    func(tp *topo) []reach
		wantNote string
	}{
		{"metadata in allowedAddresses", func(c *Config) {
			c.AllowedAddresses = append(c.AllowedAddresses, "169.254.169.254/32")
		}, func(tp *topo) []reach {
			return []reach{{tp.node, "169.254.169.254:443", true}, {tp.pod, "169.254.169.254:443", false}}
		}, "pods do not"},
		{"metadata in hostAllowedAddresses", func(c *Config) {
			c.HostAllowedAddresses = []string{"169.254.169.254"}
		}, func(tp *topo) []reach {
			return []reach{{tp.node, "169.254.169.254:443", true}, {tp.pod, "169.254.169.254:443", false}}
		}, ""},
		{"host-only address inside an allowed range", func(c *Config) {
			c.AllowedAddresses = append(c.AllowedAddresses, "198.18.64.0/24")
			c.HostAllowedAddresses = []string{"198.18.64.10/32"}
		}, func(tp *topo) []reach {
			return []reach{{tp.node, "198.18.64.10:443", true}, {tp.pod, "198.18.64.10:443", false}}
		}, ""},
		{"podLinkLocalAccess Allowed", func(c *Config) {
			c.AllowedAddresses = append(c.AllowedAddresses, "169.254.169.254/32")
			c.PodLinkLocalAccess = LinkLocalAllowed
		}, func(tp *topo) []reach {
			return []reach{{tp.node, "169.254.169.254:443", true}, {tp.pod, "169.254.169.254:443", true}}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := newTopo(t)
			n := New(t.TempDir(), nsRunner{tp.node}, nil)
			in := e2eInput(OutboundBlock)
			tt.mut(&in.Config)
			res, err := n.Apply(context.Background(), in)
			if err != nil {
				t.Fatalf("Apply(block): %v", err)
			}
			checkReach(t, tt.name, append(tt.cases(tp),
				reach{tp.pod, "198.18.61.1:5000", true}, // the registry: the pod's path works
			))
			if got := strings.Join(res.Plan.Notes, "\n"); (tt.wantNote != "") != strings.Contains(got, "link-local") || !strings.Contains(got, tt.wantNote) {
				t.Errorf("apply notes = %q, want a link-local note: %v", got, tt.wantNote != "")
			}
		})
	}
}
