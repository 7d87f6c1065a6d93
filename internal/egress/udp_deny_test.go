package egress

import (
	"net/netip"
	"testing"
	"time"
)

func denyKey(src string, port uint16) udpKey {
	return udpKey{src: netip.AddrPortFrom(netip.MustParseAddr(src), 40000), dst: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.9"), port)}
}

// A remembered flow is forgotten when its time is up, and beyond the
// bound the oldest first; the memory and its queue stay bounded.
func TestUDPMemory(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	var m udpMemory[udpKey]
	m.add(denyKey("127.0.0.3", 1), now, 5*time.Second, 2)
	before, after := m.has(denyKey("127.0.0.3", 1), now.Add(5*time.Second-1)), m.has(denyKey("127.0.0.3", 1), now.Add(5*time.Second))
	if !before || after {
		t.Errorf("remembered for 5s: has at +5s-1ns, +5s = %v, %v; want true, false", before, after)
	}
	m = udpMemory[udpKey]{}
	for p := range uint16(3) {
		m.add(denyKey("127.0.0.3", p), now.Add(time.Duration(p)), time.Hour, 2)
	}
	if m.has(denyKey("127.0.0.3", 0), now) || !m.has(denyKey("127.0.0.3", 1), now) || !m.has(denyKey("127.0.0.3", 2), now) || len(m.until) != 2 {
		t.Errorf("3 flows into room for 2: remembered %v; want ports 1 and 2", m.until)
	}
	for p := range uint16(10_000) {
		k := denyKey("127.0.0.3", p%500)
		at := now.Add(time.Duration(p) * time.Millisecond)
		if !m.has(k, at) {
			m.add(k, at, time.Second, 100)
		}
	}
	if len(m.until) > 100 || len(m.order)-m.head > 100 || len(m.order) > 300 {
		t.Errorf("after 10,000 adds with bound 100: %d remembered, queue %d (head %d); want at most 100, 100", len(m.until), len(m.order)-m.head, m.head)
	}
}

// Deny records: one per client address and destination per timeout,
// whatever the source port; at most perSource per client address.
func TestUDPDenyRecords(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	ttl := 5 * time.Second
	var r udpDenyRecords
	rec := func(k udpKey, at time.Time) bool { return r.record(k, at, ttl, 8, 2) }
	otherPort := denyKey("127.0.0.3", 1)
	otherPort.src = netip.AddrPortFrom(otherPort.src.Addr(), 40001)
	for _, step := range []struct {
		name string
		k    udpKey
		at   time.Duration
		want bool
	}{
		{"first deny", denyKey("127.0.0.3", 1), 0, true},
		{"same flow again", denyKey("127.0.0.3", 1), time.Second, false},
		{"another source port, same destination", otherPort, time.Second, false},
		{"another destination", denyKey("127.0.0.3", 2), time.Second, true},
		{"a third destination: the client's 2 are used", denyKey("127.0.0.3", 3), time.Second, false},
		{"another client", denyKey("127.0.0.4", 1), time.Second, true},
		{"after the timeout", otherPort, ttl, true},
		{"the client's share is free again", denyKey("127.0.0.3", 3), ttl + time.Second, true},
	} {
		if got := rec(step.k, now.Add(step.at)); got != step.want {
			t.Errorf("%s: record(%v, +%s) = %v, want %v", step.name, step.k, step.at, got, step.want)
		}
	}
	// Beyond the bound the oldest record is forgotten and its client's
	// share with it.
	r = udpDenyRecords{}
	for i := range 9 {
		src := netip.AddrFrom4([4]byte{127, 0, 1, byte(i)}).String()
		if !r.record(denyKey(src, 1), now, time.Hour, 8, 1) {
			t.Errorf("client %s: first deny not recorded", src)
		}
	}
	if len(r.mem.until) != 8 || len(r.perSrc) != 8 || r.perSrc[netip.MustParseAddr("127.0.1.0")] != 0 {
		t.Errorf("9 clients into room for 8: %d remembered, %d clients counted (127.0.1.0: %d); want 8, 8, 0", len(r.mem.until), len(r.perSrc), r.perSrc[netip.MustParseAddr("127.0.1.0")])
	}
}
