package sniff

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestReadHeadOverPipe(t *testing.T) {
	// A real client on one end of a pipe, ReadHead on the other: what the
	// transparent listener does.
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tls.Client(client, &tls.Config{ServerName: "pipe.example"}).Handshake()
		client.Close()
	}()
	defer func() { server.Close(); <-done }()
	if err := server.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf, res, err := ReadHead(server)
	if err != nil {
		t.Fatalf("ReadHead(pipe) error = %v", err)
	}
	if res.Kind != TLS || res.Name != "pipe.example" || res.Len != len(buf) {
		t.Fatalf("ReadHead(pipe) = %d bytes, %+v, want TLS pipe.example over all bytes", len(buf), res)
	}
}

func TestReadHeadOneByteAtATime(t *testing.T) {
	rec := refragment(realHello(t, &tls.Config{ServerName: "slow.example"}), 3, 50)
	stream := append(append([]byte{}, rec...), "application data that must not be read"...)
	buf, res, err := ReadHead(iotest.OneByteReader(bytes.NewReader(stream)))
	if err != nil {
		t.Fatalf("ReadHead(one byte reader) error = %v", err)
	}
	if !bytes.Equal(buf, rec) {
		t.Fatalf("ReadHead(one byte reader) read %d bytes, want exactly the %d of the hello", len(buf), len(rec))
	}
	if res.Name != "slow.example" {
		t.Fatalf("ReadHead(one byte reader) name = %q, want slow.example", res.Name)
	}
}

func TestReadHeadReturnsEverythingRead(t *testing.T) {
	in := "GET / HTTP/1.1\r\nHost: a.example\r\n\r\nbody bytes"
	buf, res, err := ReadHead(strings.NewReader(in))
	if err != nil {
		t.Fatalf("ReadHead error = %v", err)
	}
	if string(buf) != in || res.Len != len(in)-len("body bytes") || res.Name != "a.example" {
		t.Fatalf("ReadHead(%q) = %q, %+v, want all bytes back and Len up to the blank line", in, buf, res)
	}
}

func TestReadHeadErrors(t *testing.T) {
	hello := realHello(t, &tls.Config{ServerName: "x.example"})
	tests := []struct {
		name     string
		r        io.Reader
		wantErr  error
		wantKind Kind
	}{
		{name: "eof inside hello", r: bytes.NewReader(hello[:20]), wantErr: io.ErrUnexpectedEOF, wantKind: TLS},
		{name: "eof at start", r: bytes.NewReader(nil), wantErr: io.ErrUnexpectedEOF, wantKind: Unknown},
		{name: "read error", r: iotest.TimeoutReader(bytes.NewReader(hello)), wantErr: iotest.ErrTimeout, wantKind: TLS},
		{name: "endless http head", r: io.MultiReader(strings.NewReader("GET / HTTP/1.1\r\nX: "), endless('a')), wantErr: ErrTooLarge, wantKind: HTTP},
		{name: "endless one byte records", r: io.MultiReader(bytes.NewReader([]byte{0x16, 3, 1, 0, 4, 1, 0, 0x30, 0}), bytes.NewReader(bytes.Repeat([]byte{0x16, 3, 3, 0, 1, 0}, 4000))), wantErr: ErrTooLarge, wantKind: TLS},
		{name: "malformed", r: strings.NewReader("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), wantErr: ErrMalformed, wantKind: HTTP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// TimeoutReader fails its second read; make the first one short.
			r := tt.r
			if tt.name == "read error" {
				r = iotest.TimeoutReader(bytes.NewReader(hello[:10]))
			}
			buf, res, err := ReadHead(r)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReadHead error = %v, want %v", err, tt.wantErr)
			}
			if res.Kind != tt.wantKind {
				t.Fatalf("ReadHead kind = %v, want %v", res.Kind, tt.wantKind)
			}
			if len(buf) > MaxClientHello {
				t.Fatalf("ReadHead read %d bytes, more than MaxClientHello %d", len(buf), MaxClientHello)
			}
		})
	}
}

// TestReadHeadSlowLoris checks that a client that starts a ClientHello and
// stalls is cut by the deadline the caller set, and the error says so.
func TestReadHeadSlowLoris(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	hello := realHello(t, &tls.Config{ServerName: "loris.example"})
	go func() { _, _ = client.Write(hello[:7]) }()
	if err := server.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	buf, res, err := ReadHead(server)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadHead(stalled client) error = %v, want os.ErrDeadlineExceeded", err)
	}
	if len(buf) != 7 || res.Kind != TLS {
		t.Fatalf("ReadHead(stalled client) = %d bytes, kind %v, want the 7 bytes sent and kind tls", len(buf), res.Kind)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("ReadHead(stalled client) returned after %v, the deadline was 50ms", d)
	}
}

type endlessReader byte

func endless(c byte) io.Reader { return endlessReader(c) }

func (e endlessReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}
