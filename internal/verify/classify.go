package verify

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// classifyErr turns an error from connecting, sending or waiting into an
// outcome. Only an answer from the far side is a leak: a TCP RST to the
// SYN (ECONNREFUSED) or an ICMP port unreachable to a datagram (the same
// errno on a connected UDP socket). The local firewall (EPERM, EACCES),
// no route (ENETUNREACH, EHOSTUNREACH) and silence (a timeout) are blocked.
// Any other error means the probe could not tell.
func classifyErr(err error, timeout time.Duration) (Outcome, string) {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return Leak, "connection refused: the far side answered (a TCP RST, or ICMP port unreachable to UDP)"
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return Blocked, fmt.Sprintf("the local firewall refused to send (%v)", errnoOf(err))
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return Blocked, fmt.Sprintf("no route (%v)", errnoOf(err))
	case isTimeout(err):
		return Blocked, fmt.Sprintf("no answer within %s", timeout)
	}
	return NotTested, fmt.Sprintf("probe error, outcome unknown: %v", err)
}

func errnoOf(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// isClosed reports whether err is the peer closing or resetting the
// connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// countConn counts the bytes the far side sent and keeps the first few.
type countConn struct {
	net.Conn
	n     atomic.Int64
	first []byte // written only by Read, read after the exchange
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		if len(c.first) < 16 {
			c.first = append(c.first, p[:min(n, 16-len(c.first))]...)
		}
		c.n.Add(int64(n))
	}
	return n, err
}

// talker speaks on a connected stream and describes what it saw. It
// returns a description when the exchange completed.
type talker func(ctx context.Context, c net.Conn) (string, error)

// stream is the outcome of one TCP exchange, before classification.
type stream struct {
	dialErr error
	talkErr error
	desc    string // from the talker when the exchange completed
	read    int64  // bytes from the far side
	first   []byte
}

// streamProbe connects to addr (ip:port) and runs talk under ctx's
// deadline.
func (e *env) streamProbe(ctx context.Context, addr string, talk talker) stream {
	c, err := e.dial(ctx, "tcp", addr)
	if err != nil {
		return stream{dialErr: err}
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	cc := &countConn{Conn: c}
	desc, err := talk(ctx, cc)
	return stream{talkErr: err, desc: desc, read: cc.n.Load(), first: cc.first}
}

// classify turns a stream into an outcome. Any byte from the far side is
// a leak. A connection accepted and then closed without a byte is what an
// intercepting gateway does to a denied flow: blocked. A connection
// accepted and held open without an answer is a leak: an interceptor
// decides on the first bytes and closes, so someone else took it.
func (s stream) classify(timeout time.Duration) (Outcome, string) {
	switch {
	case s.dialErr != nil:
		return classifyErr(s.dialErr, timeout)
	case s.read > 0 && s.talkErr == nil:
		return Leak, s.desc
	case s.read > 0:
		return Leak, fmt.Sprintf("the far side answered %d bytes (first %q), then: %v", s.read, s.first, s.talkErr)
	case s.talkErr == nil:
		return Leak, "exchange completed: " + s.desc
	case isClosed(s.talkErr):
		return Blocked, "intercepted, closed without data (connection accepted, then closed before any byte came back)"
	case isTimeout(s.talkErr):
		return Leak, fmt.Sprintf("connection accepted and held open without an answer for %s: an intercepting gateway would have closed it", timeout)
	}
	return classifyErr(s.talkErr, timeout)
}

// fingerprint is the SHA-256 of a certificate's DER bytes, in hex.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

func shortFP(fp string) string {
	if len(fp) > 16 {
		return fp[:16] + "…"
	}
	return fp
}
