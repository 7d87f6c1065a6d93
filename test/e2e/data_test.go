//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// seededBytes returns n bytes of incompressible data determined by seed.
func seededBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = io.ReadFull(newSeededReader(seed, int64(n)), b)
	return b
}

// seededReader yields size bytes of ChaCha8 output for a seed: the same
// seed gives the same bytes, so a 256 MiB blob never has to sit in memory.
type seededReader struct {
	src       *rand.ChaCha8
	remaining int64
	read      atomic.Int64 // bytes handed out so far
	// throttle: after every throttleEvery bytes, sleep throttleFor.
	throttleEvery int64
	throttleFor   time.Duration
	sinceSleep    int64
}

func newSeededReader(seed uint64, size int64) *seededReader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	copy(key[8:], "airlock-e2e-data")
	return &seededReader{src: rand.NewChaCha8(key), remaining: size}
}

func (r *seededReader) Read(p []byte) (int, error) {
	if r.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	if r.throttleEvery > 0 {
		if r.sinceSleep >= r.throttleEvery {
			time.Sleep(r.throttleFor)
			r.sinceSleep = 0
		}
		if room := r.throttleEvery - r.sinceSleep; int64(len(p)) > room {
			p = p[:room]
		}
	}
	n, _ := r.src.Read(p)
	r.remaining -= int64(n)
	r.sinceSleep += int64(n)
	r.read.Add(int64(n))
	return n, nil
}

// seededDigest is the sha256 digest of newSeededReader(seed, size).
func seededDigest(seed uint64, size int64) string {
	h := sha256.New()
	_, _ = io.Copy(h, newSeededReader(seed, size))
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
