package egress

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// cmsg builds one control message as the kernel lays it out.
func cmsg(level, typ int, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	if unix.SizeofCmsghdr == 16 {
		binary.NativeEndian.PutUint64(b[0:8], uint64(unix.CmsgLen(len(data))))
		binary.NativeEndian.PutUint32(b[8:12], uint32(level))
		binary.NativeEndian.PutUint32(b[12:16], uint32(typ))
	} else {
		binary.NativeEndian.PutUint32(b[0:4], uint32(unix.CmsgLen(len(data))))
		binary.NativeEndian.PutUint32(b[4:8], uint32(level))
		binary.NativeEndian.PutUint32(b[8:12], uint32(typ))
	}
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func sockaddr4(ap netip.AddrPort) []byte {
	b := make([]byte, unix.SizeofSockaddrInet4)
	binary.NativeEndian.PutUint16(b[0:2], unix.AF_INET)
	binary.BigEndian.PutUint16(b[2:4], ap.Port())
	a := ap.Addr().As4()
	copy(b[4:8], a[:])
	return b
}

func sockaddr6(ap netip.AddrPort) []byte {
	b := make([]byte, unix.SizeofSockaddrInet6)
	binary.NativeEndian.PutUint16(b[0:2], unix.AF_INET6)
	binary.BigEndian.PutUint16(b[2:4], ap.Port())
	a := ap.Addr().As16()
	copy(b[8:24], a[:])
	return b
}

func TestParseOrigDst(t *testing.T) {
	v4 := netip.MustParseAddrPort("198.19.0.10:123")
	v6 := netip.MustParseAddrPort("[fdaa:99::10]:123")
	mapped := netip.AddrPortFrom(netip.AddrFrom16(v4.Addr().As16()), 123)
	wrongFamily := sockaddr4(v4)
	binary.NativeEndian.PutUint16(wrongFamily[0:2], unix.AF_INET6)
	tests := []struct {
		name string
		oob  []byte
		want netip.AddrPort
		ok   bool
	}{
		{"none", nil, netip.AddrPort{}, false},
		{"ipv4", cmsg(unix.SOL_IP, unix.IP_ORIGDSTADDR, sockaddr4(v4)), v4, true},
		{"ipv6", cmsg(unix.SOL_IPV6, unix.IPV6_ORIGDSTADDR, sockaddr6(v6)), v6, true},
		{"ipv4-mapped unmapped", cmsg(unix.SOL_IPV6, unix.IPV6_ORIGDSTADDR, sockaddr6(mapped)), v4, true},
		{"after another message", append(cmsg(unix.SOL_IP, unix.IP_TTL, []byte{64, 0, 0, 0}), cmsg(unix.SOL_IP, unix.IP_ORIGDSTADDR, sockaddr4(v4))...), v4, true},
		{"short data", cmsg(unix.SOL_IP, unix.IP_ORIGDSTADDR, sockaddr4(v4)[:6]), netip.AddrPort{}, false},
		{"wrong family", cmsg(unix.SOL_IP, unix.IP_ORIGDSTADDR, wrongFamily), netip.AddrPort{}, false},
		{"other message only", cmsg(unix.SOL_IP, unix.IP_TTL, []byte{64, 0, 0, 0}), netip.AddrPort{}, false},
		{"truncated header", []byte{1, 2, 3}, netip.AddrPort{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseOrigDst(tc.oob)
			if got != tc.want || ok != tc.ok {
				t.Errorf("parseOrigDst(%x) = %v, %v; want %v, %v", tc.oob, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParseOrigDst: control data is the kernel's, but the parser must
// never panic whatever the bytes, and a success is a valid address.
func FuzzParseOrigDst(f *testing.F) {
	f.Add(cmsg(unix.SOL_IP, unix.IP_ORIGDSTADDR, sockaddr4(netip.MustParseAddrPort("198.19.0.10:123"))))
	f.Add(cmsg(unix.SOL_IPV6, unix.IPV6_ORIGDSTADDR, sockaddr6(netip.MustParseAddrPort("[fdaa::1]:53"))))
	f.Add([]byte{})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, oob []byte) {
		ap, ok := parseOrigDst(oob)
		if ok && !ap.Addr().IsValid() {
			t.Errorf("parseOrigDst(%x) = %v, true; want a valid address", oob, ap)
		}
	})
}
