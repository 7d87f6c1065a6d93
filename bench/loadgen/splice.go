package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"time"
)

// spliceClient is one keep-alive HTTP/1.1 connection that GETs one URL and
// moves each body to /dev/null with splice(2) (os.File.ReadFrom of a TCP
// connection), without copying it through user space.
type spliceClient struct {
	u       *url.URL
	req     []byte
	conn    *net.TCPConn
	br      *bufio.Reader
	null    *os.File
	expires time.Time
}

func newSpliceClient(raw string, deadline time.Time) (*spliceClient, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return nil, fmt.Errorf("splice client needs an http:// URL, got %q", raw)
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: airlock-bench-loadgen\r\nAccept: */*\r\n\r\n", u.RequestURI(), u.Host)
	return &spliceClient{u: u, req: []byte(req), null: null, expires: deadline}, nil
}

func (c *spliceClient) close() {
	if c.conn != nil {
		c.conn.Close()
	}
	c.null.Close()
}

func (c *spliceClient) dial() error {
	conn, err := net.DialTimeout("tcp", c.u.Host, 5*time.Second)
	if err != nil {
		return err
	}
	c.conn = conn.(*net.TCPConn)
	_ = c.conn.SetDeadline(c.expires)
	c.br = bufio.NewReaderSize(c.conn, 64<<10)
	return nil
}

// get sends one GET and consumes the response, adding body bytes to
// counter as they arrive. The connection is dropped after any error.
func (c *spliceClient) get(size int64, counter *atomic.Int64) (int, error) {
	if c.conn == nil {
		if err := c.dial(); err != nil {
			return 0, err
		}
	}
	status, err := c.roundTrip(size, counter)
	if err != nil {
		c.conn.Close()
		c.conn = nil
	}
	return status, err
}

func (c *spliceClient) roundTrip(size int64, counter *atomic.Int64) (int, error) {
	if _, err := c.conn.Write(c.req); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, err
	}
	n := resp.ContentLength
	if n < 0 || len(resp.TransferEncoding) > 0 {
		return resp.StatusCode, fmt.Errorf("response without Content-Length")
	}
	// The body starts in the bufio buffer; the rest is spliced from the
	// socket. resp.Body is never read.
	k := min(int64(c.br.Buffered()), n)
	if _, err := c.br.Discard(int(k)); err != nil {
		return resp.StatusCode, err
	}
	counter.Add(k)
	left := n - k
	for left > 0 {
		w, err := io.CopyN(c.null, c.conn, min(left, 4<<20))
		counter.Add(w)
		left -= w
		if err != nil {
			return resp.StatusCode, err
		}
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("status %d", resp.StatusCode)
	}
	if size >= 0 && n != size {
		return resp.StatusCode, fmt.Errorf("body of %d bytes, want %d", n, size)
	}
	if resp.Close {
		c.conn.Close()
		c.conn = nil
	}
	return resp.StatusCode, nil
}
