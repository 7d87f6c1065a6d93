package registry

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestIncludesLastByte(t *testing.T) {
	const size = 1000
	tests := []struct {
		header string
		want   bool
	}{
		{header: "", want: true},
		{header: "bytes=0-99", want: false},
		{header: "bytes=100-199", want: false},
		{header: "bytes=0-998", want: false},
		{header: "bytes=0-999", want: true},
		{header: "bytes=0-5000", want: true},
		{header: "bytes=100-", want: true},
		{header: "bytes=999-", want: true},
		{header: "bytes=1000-", want: false}, // unsatisfiable
		{header: "bytes=-1", want: true},
		{header: "bytes=-5000", want: true},
		{header: "bytes=-0", want: false},
		{header: "bytes=0-9,20-29", want: false},
		{header: "bytes=0-9,-10", want: true},
		{header: "bytes=0-9, 990-", want: true},
		{header: "bytes=0-9,,990-", want: true},
		{header: "BYTES=990-", want: true},
		{header: "bytes=0-9,x", want: false},
		{header: "bytes=9-0", want: false},
		{header: "bytes=+1-", want: false},
		{header: "bytes=-", want: false},
		{header: "bytes=", want: false},
		{header: "items=0-", want: false},
		{header: "bytes=99999999999999999999-", want: false},
	}
	for _, tt := range tests {
		if got := includesLastByte(tt.header, size); got != tt.want {
			t.Errorf("includesLastByte(%q, %d) = %v, want %v", tt.header, size, got, tt.want)
		}
	}
	if includesLastByte("bytes=0-", 0) {
		t.Errorf("includesLastByte(%q, 0) = true, want false: an empty blob has no last byte", "bytes=0-")
	}
}

// lastByteWatch records whether reads reached the last byte of its content.
type lastByteWatch struct {
	*bytes.Reader
	size      int64
	read      bool // any byte read
	readsLast bool
}

func (w *lastByteWatch) Read(p []byte) (int, error) {
	off, _ := w.Seek(0, io.SeekCurrent)
	n, err := w.Reader.Read(p)
	if n > 0 {
		w.read = true
		if off+int64(n) >= w.size {
			w.readsLast = true
		}
	}
	return n, err
}

// FuzzIncludesLastByte checks includesLastByte against net/http's own
// Range handling: when it says a response carries the blob's last byte,
// http.ServeContent must read that byte or no byte at all — otherwise a
// response short of the end would stream bytes that are not verified yet.
func FuzzIncludesLastByte(f *testing.F) {
	for _, s := range []string{"", "bytes=0-99", "bytes=100-", "bytes=-10", "bytes=0-9,-10", "bytes=0-9,20-29", "bytes=5-4", "bytes=0-0,0-0", "bytes= 1 - 2 ", "BYTES=1-"} {
		f.Add(s, uint16(1000))
	}
	f.Fuzz(func(t *testing.T, header string, n uint16) {
		size := int64(n % 4096)
		got := includesLastByte(header, size)
		if !got {
			return // waiting for verified content is always safe
		}
		w := &lastByteWatch{Reader: bytes.NewReader(make([]byte, size)), size: size}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if header != "" {
			req.Header.Set("Range", header)
		}
		rec := httptest.NewRecorder()
		rec.Header().Set("Content-Type", "application/octet-stream") // as getBlob: no sniffing read
		http.ServeContent(rec, req, "", zeroTime, w)
		if w.read && !w.readsLast {
			t.Errorf("includesLastByte(%q, %d) = true, but ServeContent sent bytes without the last one", header, size)
		}
	})
}

func TestFirstOffset(t *testing.T) {
	for _, c := range []struct {
		rng  string
		size int64
		want int64
	}{
		{"", 100, 0}, {"bytes=10-", 100, 10}, {"bytes=10-20", 100, 10}, {"bytes=-30", 100, 70},
		{"bytes=-300", 100, 0}, {"bytes=5-9, 50-60", 100, 5}, {"bytes=200-", 100, 0},
		{"items=1-2", 100, 0}, {"bytes=x-", 100, 0}, {"bytes=-0", 100, 0}, {"bytes=", 100, 0},
	} {
		if got := firstOffset(c.rng, c.size); got != c.want {
			t.Errorf("firstOffset(%q, %d) = %d, want %d", c.rng, c.size, got, c.want)
		}
	}
}
