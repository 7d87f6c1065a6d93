package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"
)

// maxResponseHead bounds the proxy's answer to CONNECT.
const maxResponseHead = 8 << 10

// dialTunnel connects to addr and, when target is not empty, opens a
// CONNECT tunnel to target through it. The returned connection carries the
// tunnel's bytes only: the proxy's answer head has been consumed, and no
// byte past it was read (the head is read one byte at a time).
func dialTunnel(addr, target string, timeout time.Duration) (*net.TCPConn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	tc := c.(*net.TCPConn)
	if target == "" {
		return tc, nil
	}
	_ = tc.SetDeadline(time.Now().Add(timeout))
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n"
	if _, err := io.WriteString(tc, req); err != nil {
		tc.Close()
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	head, err := readHead(tc)
	if err != nil {
		tc.Close()
		return nil, err
	}
	code, err := parseStatus(head)
	if err != nil {
		tc.Close()
		return nil, err
	}
	if code != 200 {
		tc.Close()
		return nil, fmt.Errorf("CONNECT %s: status %d", target, code)
	}
	_ = tc.SetDeadline(time.Time{})
	return tc, nil
}

// readHead consumes the proxy's answer head from c and nothing after it:
// it peeks at the socket (MSG_PEEK), then reads exactly up to the end of
// the head, so the tunnel's first bytes stay in the socket and a later
// io.Copy can still splice. Two system calls for a head sent in one write.
func readHead(c *net.TCPConn) ([]byte, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, maxResponseHead)
	var head []byte
	for {
		var n int
		var perr error
		err := rc.Read(func(fd uintptr) bool {
			n, _, perr = syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK)
			return perr != syscall.EAGAIN
		})
		if err == nil {
			err = perr
		}
		if err != nil {
			return head, fmt.Errorf("read CONNECT answer: %w", err)
		}
		if n == 0 {
			return head, fmt.Errorf("read CONNECT answer: %w", io.ErrUnexpectedEOF)
		}
		all := append(head, buf[:n]...)
		take := n
		end := headEnd(all)
		if end >= 0 {
			take = end - len(head)
		}
		if _, err := io.ReadFull(c, buf[:take]); err != nil {
			return head, fmt.Errorf("read CONNECT answer: %w", err)
		}
		head = all[:len(head)+take]
		if end >= 0 {
			return head, nil
		}
		if len(head) > maxResponseHead {
			return head, errors.New("read CONNECT answer: head over 8 KiB")
		}
	}
}

// headEnd returns the length of the HTTP head at the start of b (up to and
// including the blank line), or -1 when b holds no complete head.
func headEnd(b []byte) int {
	end := -1
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		end = i + 4
	}
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 && (end < 0 || i+2 < end) {
		end = i + 2
	}
	return end
}

// parseStatus returns the status code of an HTTP/1.x status line.
func parseStatus(head []byte) (int, error) {
	line, _, _ := bytes.Cut(head, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	f := bytes.Fields(line)
	if len(f) < 2 || !bytes.HasPrefix(f[0], []byte("HTTP/1.")) || len(f[1]) != 3 {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	code, err := strconv.Atoi(string(f[1]))
	if err != nil || code < 100 {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	return code, nil
}
