package egress

import (
	"net/netip"
	"testing"
	"time"
)

// admitTable is a flow table with no listener behind it, for admit.
func admitTable(maxFlows, perSource int) *udpTable {
	s := &Server{udp: udpConfig{maxFlows: maxFlows, perSource: perSource}}
	return s.newUDPTable("test", nil, nil)
}

// fakeFlows adds flows from src (127.0.0.x), one per entry of lasts (the
// time of each flow's last datagram), on ports from 1000 up.
func (t *udpTable) fakeFlows(src string, lasts ...time.Time) {
	a := netip.MustParseAddr(src)
	for _, l := range lasts {
		k := udpKey{src: netip.AddrPortFrom(a, uint16(1000+len(t.srcs[a].flowsOrNil()))), dst: netip.MustParseAddrPort("127.0.0.9:123")}
		f := &udpFlow{}
		f.last.Store(l.UnixNano())
		t.add(k, f)
	}
}

func (s *udpSource) flowsOrNil() map[udpKey]*udpFlow {
	if s == nil {
		return nil
	}
	return s.flows
}

func TestUDPAdmit(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	fresh, idle, older := now.Add(-udpEvictIdle/2), now.Add(-2*udpEvictIdle), now.Add(-3*udpEvictIdle)
	type flows struct {
		src   string
		lasts []time.Time
	}
	tests := []struct {
		name                string
		maxFlows, perSource int
		have                []flows
		from                string
		// wantVictim is the victim's "src last-unix" ("" for none); why
		// is the reason (evicted or refused).
		wantVictim string
		wantLast   time.Time
		wantWhy    string
	}{
		{name: "room", maxFlows: 4, perSource: 2, have: []flows{{"127.0.0.1", []time.Time{fresh}}}, from: "127.0.0.2"},
		{name: "room for the source's last flow", maxFlows: 4, perSource: 2, have: []flows{{"127.0.0.1", []time.Time{fresh}}}, from: "127.0.0.1"},
		{name: "source at its limit, flows busy", maxFlows: 8, perSource: 2,
			have: []flows{{"127.0.0.1", []time.Time{fresh, fresh}}}, from: "127.0.0.1", wantWhy: udpDropSourceLimit},
		{name: "source at its limit takes its own idle flow", maxFlows: 8, perSource: 2,
			have: []flows{{"127.0.0.1", []time.Time{fresh, idle}}, {"127.0.0.2", []time.Time{older}}}, from: "127.0.0.1",
			wantVictim: "127.0.0.1", wantLast: idle, wantWhy: udpDropSourceLimit},
		{name: "full table: the heaviest source gives way", maxFlows: 4, perSource: 4,
			have: []flows{{"127.0.0.1", []time.Time{fresh, older, fresh}}, {"127.0.0.2", []time.Time{idle}}}, from: "127.0.0.3",
			wantVictim: "127.0.0.1", wantLast: older, wantWhy: udpDropTableFull},
		{name: "full table: the heaviest gives way to a lighter source that has flows", maxFlows: 4, perSource: 4,
			have: []flows{{"127.0.0.1", []time.Time{fresh, fresh, fresh}}, {"127.0.0.2", []time.Time{fresh}}}, from: "127.0.0.2",
			wantVictim: "127.0.0.1", wantLast: fresh, wantWhy: udpDropTableFull},
		{name: "full table: not for a source as heavy as the heaviest less one, none idle", maxFlows: 4, perSource: 4,
			have: []flows{{"127.0.0.1", []time.Time{fresh, fresh}}, {"127.0.0.2", []time.Time{fresh, fresh}}}, from: "127.0.0.2",
			wantWhy: udpDropTableFull},
		{name: "full table: not for a source only one flow lighter, none idle", maxFlows: 3, perSource: 3,
			have: []flows{{"127.0.0.1", []time.Time{fresh, fresh}}, {"127.0.0.2", []time.Time{fresh}}}, from: "127.0.0.2",
			wantWhy: udpDropTableFull},
		{name: "full balanced table, none idle", maxFlows: 3, perSource: 3,
			have: []flows{{"127.0.0.1", []time.Time{fresh}}, {"127.0.0.2", []time.Time{fresh}}, {"127.0.0.3", []time.Time{fresh}}}, from: "127.0.0.4",
			wantWhy: udpDropTableFull},
		{name: "full balanced table: the idlest flow gives way", maxFlows: 3, perSource: 3,
			have: []flows{{"127.0.0.1", []time.Time{fresh}}, {"127.0.0.2", []time.Time{idle}}, {"127.0.0.3", []time.Time{older}}}, from: "127.0.0.4",
			wantVictim: "127.0.0.3", wantLast: older, wantWhy: udpDropTableFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := admitTable(tt.maxFlows, tt.perSource)
			for _, h := range tt.have {
				tab.fakeFlows(h.src, h.lasts...)
			}
			k, victim, why := tab.admit(netip.MustParseAddr(tt.from), now)
			gotVictim, gotLast := "", time.Time{}
			if victim != nil {
				gotVictim, gotLast = k.src.Addr().String(), time.Unix(0, victim.last.Load())
			}
			if gotVictim != tt.wantVictim || !gotLast.Equal(tt.wantLast) || why != tt.wantWhy {
				t.Errorf("admit(%s) = victim %q (last %v), %q; want %q (last %v), %q",
					tt.from, gotVictim, gotLast, why, tt.wantVictim, tt.wantLast, tt.wantWhy)
			}
		})
	}
}

// A refusal for want of an idle flow holds until the oldest flow has
// been idle for udpEvictIdle, then that flow gives way.
func TestUDPAdmitLater(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	tab := admitTable(2, 2)
	tab.fakeFlows("127.0.0.1", now, now.Add(100*time.Millisecond))
	src := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct {
		at         time.Duration
		wantVictim bool
	}{{0, false}, {udpEvictIdle / 2, false}, {udpEvictIdle - time.Nanosecond, false}, {udpEvictIdle, true}} {
		_, victim, why := tab.admit(src, now.Add(tc.at))
		if (victim != nil) != tc.wantVictim || why != udpDropSourceLimit {
			t.Errorf("admit at +%s = victim %v, %q; want victim %v, %q", tc.at, victim != nil, why, tc.wantVictim, udpDropSourceLimit)
		}
	}
}

// The count of flows per source and the heaviest source follow adds and
// removes.
func TestUDPTableCounts(t *testing.T) {
	tab := admitTable(16, 8)
	now := time.Now()
	tab.fakeFlows("127.0.0.1", now, now, now)
	tab.fakeFlows("127.0.0.2", now)
	if tab.heaviest != 3 || len(tab.srcs) != 2 || len(tab.flows) != 4 {
		t.Fatalf("after 3+1 flows: heaviest %d, sources %d, flows %d; want 3, 2, 4", tab.heaviest, len(tab.srcs), len(tab.flows))
	}
	for k, f := range tab.srcs[netip.MustParseAddr("127.0.0.1")].flows {
		tab.remove(k, f)
		tab.remove(k, f) // a second remove (an evicted flow's goroutine) does nothing
	}
	if tab.heaviest != 1 || len(tab.srcs) != 1 || len(tab.flows) != 1 {
		t.Errorf("after removing 127.0.0.1's flows: heaviest %d, sources %d, flows %d; want 1, 1, 1", tab.heaviest, len(tab.srcs), len(tab.flows))
	}
	if want := []int{0, 1, 0, 0, 0, 0, 0, 0, 0}; !equalInts(tab.byCount, want) {
		t.Errorf("byCount = %v, want %v", tab.byCount, want)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
