package s3

import (
	"fmt"
	"io"
	"testing"
)

// BenchmarkWriter64MiB writes (and reads back) a 64 MiB object on
// versitygw with several part sizes and parts in flight:
//
//	AIRLOCK_REQUIRE_TOOLS=1 go test -run '^$' -bench . -benchtime 10x ./internal/storage/s3/
func BenchmarkWriter64MiB(b *testing.B) {
	g := startGateway(b)
	data := random(64 << 20)
	for _, c := range []struct{ partMiB, inFlight int }{{8, 1}, {8, 2}, {16, 1}, {16, 2}} {
		b.Run(fmt.Sprintf("write/part=%dMiB/inflight=%d", c.partMiB, c.inFlight), func(b *testing.B) {
			d := open(b, g.URL(g.NewBucket(b)), Options{})
			d.partSize, d.inFlight = c.partMiB<<20, c.inFlight
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				w, err := d.NewWriter(ctx, "blobs/bench")
				if err != nil {
					b.Fatal(err)
				}
				for rest := data; len(rest) > 0; rest = rest[min(len(rest), 1<<20):] {
					if _, err := w.Write(rest[:min(len(rest), 1<<20)]); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("read", func(b *testing.B) {
		d := open(b, g.URL(g.NewBucket(b)), Options{})
		if err := d.Put(ctx, "blobs/bench", data); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			r, err := d.Open(ctx, "blobs/bench", int64(len(data)))
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, r); err != nil || n != int64(len(data)) {
				b.Fatalf("read %d bytes, %v", n, err)
			}
			r.Close()
		}
	})
}
