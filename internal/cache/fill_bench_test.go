package cache

import (
	"context"
	"io"
	"testing"
)

// BenchmarkColdFill is one cold fill of a 64 MiB blob from an in-memory
// upstream, read to its end by one client through WriteTo: the time to
// the client's last byte (receive, write, hash, verify). The commit (fsync,
// rename) that follows is waited for outside the timer. bench/fill.sh
// measures fills over real sockets.
func BenchmarkColdFill(b *testing.B) {
	const size = 64 << 20
	up := newFake()
	content := random(size)
	d := up.addBlob(content)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		s, _ := newStore(b, up, nil)
		b.StartTimer()
		r, n, err := s.OpenBlob(context.Background(), "aks/x", d)
		if err != nil {
			b.Fatal(err)
		}
		got, err := r.(io.WriterTo).WriteTo(io.Discard)
		r.Close()
		if err != nil || got != n || n != size {
			b.Fatalf("WriteTo = %d, %v (size %d)", got, err, n)
		}
		b.StopTimer()
		waitFills(b, s)
		b.StartTimer()
	}
}
