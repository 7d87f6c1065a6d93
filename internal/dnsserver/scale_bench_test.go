package dnsserver

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// rawUpstream is a minimal forwarder for benchmarks: it answers every query
// with one A record (TTL 300) by echoing the question, so that its own cost
// stays small next to the server's.
func rawUpstream(tb testing.TB) string {
	tb.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 4096)
		out := make([]byte, 0, 4096)
		for {
			n, ap, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			off := 12
			for off < n && buf[off] != 0 {
				off += 1 + int(buf[off])
			}
			qend := off + 5
			if qend > n {
				continue
			}
			out = append(out[:0], buf[:qend]...)
			out[2] |= 0x80 // QR
			out[3] = 0x80  // RA, NOERROR
			binary.BigEndian.PutUint16(out[6:], 1)
			binary.BigEndian.PutUint16(out[8:], 0)
			binary.BigEndian.PutUint16(out[10:], 0)
			out = append(out, 0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 11, 2, 0, 1)
			_, _ = pc.WriteToUDPAddrPort(out, ap)
		}
	}()
	return pc.LocalAddr().String()
}

// BenchmarkMissPath: every query a name never asked before, forwarded.
func BenchmarkMissPath(b *testing.B) {
	cfg := defaults(rawUpstream(b))
	cfg.LogAllowed = LogNone
	cfg.AllowNames = []string{"*.bench.test"}
	cfg.SetDefaults()
	srv, err := New(cfg, Deps{})
	if err != nil {
		b.Fatal(err)
	}
	pc, ln, err := listenBoth("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, pc, ln) }()
	defer func() { cancel(); <-done }()
	for srv.Addr() == nil {
		runtimeGosched()
	}
	addr := pc.LocalAddr().String()
	var seq atomic.Int64
	const clients = 8
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N/clients + 1
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("udp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			defer conn.Close()
			buf := make([]byte, 4096)
			m := new(dns.Msg)
			for range per {
				m.SetQuestion(fmt.Sprintf("u%d.c%d.bench.test.", seq.Add(1), c), dns.TypeA)
				m.Id = uint16(seq.Load())
				p, _ := m.Pack()
				conn.Write(p)
				if _, err := conn.Read(buf); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func runtimeGosched() { runtime.Gosched() }
