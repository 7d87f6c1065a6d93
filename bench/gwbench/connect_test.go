package main

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		head    string
		want    int
		wantErr bool
	}{
		{"HTTP/1.1 200 Connection established\r\n\r\n", 200, false},
		{"HTTP/1.0 200\r\n\r\n", 200, false},
		{"HTTP/1.1 403 Forbidden\r\nX: y\r\n\r\n", 403, false},
		{"HTTP/2 200\r\n\r\n", 0, true},
		{"HTTP/1.1 20 OK\r\n\r\n", 0, true},
		{"HTTP/1.1 abc OK\r\n\r\n", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.head, func(t *testing.T) {
			got, err := parseStatus([]byte(tt.head))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseStatus(%q) = %d, %v, want %d, error %v", tt.head, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestHeadEnd(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"HTTP/1.1 200 OK\r\n\r\nBODY", 19},
		{"HTTP/1.0 200 OK\n\nBODY", 17},
		{"HTTP/1.1 200 OK\r\nX: y\r\n\r\n\n\n", 25},
		{"HTTP/1.1 200 OK\r\n", -1},
		{"", -1},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := headEnd([]byte(tt.in)); got != tt.want {
				t.Errorf("headEnd(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzConnectAnswer(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 200\n\n"))
	f.Add([]byte("\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		end := headEnd(b)
		if end < -1 || end > len(b) {
			t.Fatalf("headEnd(%q) = %d, outside the input", b, end)
		}
		if end < 0 {
			return
		}
		if code, err := parseStatus(b[:end]); err == nil && (code < 100 || code > 999) {
			t.Fatalf("parseStatus(%q) = %d", b[:end], code)
		}
	})
}

// TestDialTunnelSplitHead sends the answer head in pieces, the blank line
// straddling two writes, followed by tunnel bytes.
func TestDialTunnelSplitHead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			l, err := br.ReadString('\n')
			if err != nil || l == "\r\n" {
				break
			}
		}
		for _, part := range []string{"HTTP/1.1 200 OK\r\n", "X: y\r\n\r", "\nAFTER"} {
			io.WriteString(c, part)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	c, err := dialTunnel(ln.Addr().String(), "localhost:9", 5*time.Second)
	if err != nil {
		t.Fatalf("dialTunnel() error = %v", err)
	}
	defer c.Close()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "AFTER" {
		t.Errorf("tunnel bytes = %q, %v, want AFTER", got, err)
	}
}

// TestDialTunnel runs a fake proxy that answers CONNECT and sends bytes
// right after the head in the same write: dialTunnel must leave them on
// the connection, and the tunnel must echo.
func TestDialTunnel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	gotReq := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		line, _ := br.ReadString('\n')
		gotReq <- line
		for {
			l, err := br.ReadString('\n')
			if err != nil || l == "\r\n" {
				break
			}
		}
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\nEARLY")
		io.Copy(c, br)
	}()
	c, err := dialTunnel(ln.Addr().String(), "localhost:9", 5*time.Second)
	if err != nil {
		t.Fatalf("dialTunnel() error = %v", err)
	}
	defer c.Close()
	if got, want := <-gotReq, "CONNECT localhost:9 HTTP/1.1\r\n"; got != want {
		t.Errorf("request line = %q, want %q", got, want)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "EARLY" {
		t.Fatalf("first tunnel bytes = %q, %v, want EARLY", buf, err)
	}
	if err := oneTunnelOn(c, []byte("ping"), make([]byte, 4)); err != nil {
		t.Errorf("echo through the tunnel: %v", err)
	}
}

func TestDialTunnelDenied(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
	}()
	c, err := dialTunnel(ln.Addr().String(), "denied.invalid:1", 5*time.Second)
	if err == nil {
		c.Close()
		t.Fatal("dialTunnel() to a proxy answering 403: no error")
	}
	if !strings.Contains(err.Error(), "403") {
		t.Errorf("dialTunnel() error = %v, want it to name status 403", err)
	}
}
