package egress

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/airlockdev/airlock/internal/dnsname"
	"github.com/airlockdev/airlock/internal/policy"
)

// maxProxyHead bounds the explicit proxy's request line and header fields.
const maxProxyHead = 16 << 10

// handleProxy serves one explicit-proxy connection: one CONNECT tunnel or
// one absolute-form HTTP request (answered with Connection: close). pre
// holds bytes already read from c (the event-loop engine hands it the
// requests it does not relay itself); they come first. An established
// CONNECT tunnel outlives this goroutine: it is relayed by the poller,
// which writes the decision record and calls release when the tunnel ends;
// every other flow ends (record, release) when this returns.
func (s *Server) handleProxy(ctx context.Context, c *net.TCPConn, pre []byte, release func()) {
	f := &flow{listener: listenerProxy, start: s.now(), src: addrPortOf(c.RemoteAddr())}
	var up *net.TCPConn
	detached := false
	defer func() {
		if detached {
			return
		}
		if up != nil {
			s.untrack(up)
		}
		s.finish(f)
		release()
	}()

	c.SetReadDeadline(time.Now().Add(s.headTimeout))
	var r io.Reader = c
	if len(pre) > 0 {
		r = io.MultiReader(bytes.NewReader(pre), c)
	}
	lim := &headLimit{r: r, n: maxProxyHead}
	br := bufio.NewReaderSize(lim, 1024)
	req, err := http.ReadRequest(br)
	if err != nil {
		malformedHead(f, err).send(c)
		return
	}
	lim.n = -1 // the body, if any, is not bounded
	c.SetReadDeadline(time.Time{})

	if a := s.proxyDecide(f, req); a != nil {
		a.send(c)
		return
	}
	up, err = s.dialFor(ctx, f)
	if err != nil {
		dialAnswer(f).send(c)
		return
	}

	if req.Method == http.MethodConnect {
		if _, err := c.Write(connectEstablished); err != nil {
			f.err = err
			return
		}
		// Bytes the client sent after its request head (it need not wait
		// for the 200) go first.
		if n := br.Buffered(); n > 0 {
			b, _ := br.Peek(n)
			w, err := up.Write(b)
			f.up += int64(w)
			if err != nil {
				f.err = err
				return
			}
		}
		detached = true
		s.startTunnel(f, c, up, func() {
			s.untrack(up)
			s.finish(f)
			release()
		})
		return
	}
	s.forwardHTTP(f, req, c, up)
}

// connectEstablished is the answer to a CONNECT whose upstream connected.
var connectEstablished = []byte("HTTP/1.1 200 Connection Established\r\n\r\n")

// malformedHead records a proxy request head that could not be read
// (err) on f and returns the answer.
func malformedHead(f *flow, err error) *answer {
	f.decision, f.err = policy.Deny(policy.ReasonMalformed), fmt.Errorf("reading the proxy request: %w", err)
	return errorAnswer(http.StatusBadRequest, "malformed proxy request")
}

// proxyDecide reads req's target into f and decides the flow. A non-nil
// answer is sent instead of dialling (malformed, or denied in enforce
// mode); otherwise the flow is dialled: allowed, or denied in report mode
// (f.wouldDeny). It may wait for the other replicas' names (s.remote).
func (s *Server) proxyDecide(f *flow, req *http.Request) *answer {
	host, port, app, msg := proxyTarget(req)
	f.app, f.port = app, port
	if msg != "" {
		f.decision, f.rawName = policy.Deny(policy.ReasonMalformed), host
		f.err = errors.New(msg)
		return errorAnswer(http.StatusBadRequest, msg)
	}
	invalidName := false
	if a, err := netip.ParseAddr(host); err == nil {
		f.dst = netip.AddrPortFrom(a.Unmap(), port)
	} else if n, err := dnsname.Parse(host); err == nil {
		f.name = n
	} else {
		f.rawName, invalidName = host, true
	}
	f.decision = s.decide(policy.Flow{
		Src: f.src.Addr(), Dst: netip.AddrPortFrom(f.dst.Addr(), port),
		Proto: policy.ProtoTCP, App: app, Name: f.name,
	})
	if invalidName && !f.decision.Allowed() {
		f.decision = policy.Deny(policy.ReasonNameInvalid)
	}
	if !f.decision.Allowed() {
		if s.mode != ModeReport || invalidName {
			return denyAnswer(f.decision.Reason)
		}
		f.wouldDeny = true
	}
	return nil
}

// dialAnswer is the answer to a decided flow whose dial failed: 403 when
// the dial turned it into a deny (or it was a report-mode would-deny), 502
// otherwise.
func dialAnswer(f *flow) *answer {
	if !f.decision.Allowed() {
		return denyAnswer(f.decision.Reason)
	}
	return errorAnswer(http.StatusBadGateway, "the upstream could not be reached")
}

// forwardHTTP sends an absolute-form request to the origin in origin-form
// with Connection: close and relays the answer.
func (s *Server) forwardHTTP(f *flow, req *http.Request, c, up *net.TCPConn) {
	for _, h := range []string{"Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate", "Keep-Alive", "Te", "Trailer", "Upgrade"} {
		req.Header.Del(h)
	}
	req.Close = true
	cw := &countWriter{w: up}
	bw := bufio.NewWriter(cw)
	err := req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	f.up = cw.n
	if err != nil {
		f.err = fmt.Errorf("forwarding the request: %w", err)
		errorAnswer(http.StatusBadGateway, "the upstream could not be reached").send(c)
		return
	}
	s.m.Tunnels.Inc()
	defer s.m.Tunnels.Dec()
	// *net.TCPConn to *net.TCPConn: spliced on Linux.
	n, err := io.Copy(c, up)
	f.down = n
	if err != nil {
		f.err = fmt.Errorf("relaying the response: %w", err)
	}
	c.CloseWrite()
}

// proxyTarget reads where a proxy request goes: CONNECT host:port
// (https), or an absolute-form http:// URL (http, port 80 by default).
// msg says what is wrong when the request is not a proxy request.
func proxyTarget(req *http.Request) (host string, port uint16, app policy.App, msg string) {
	if req.Method == http.MethodConnect {
		h, p, err := net.SplitHostPort(req.RequestURI)
		if err != nil {
			return req.RequestURI, 0, policy.AppHTTPS, "CONNECT needs host:port"
		}
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return h, 0, policy.AppHTTPS, "CONNECT port must be 1..65535"
		}
		return h, uint16(n), policy.AppHTTPS, ""
	}
	u := req.URL
	if !u.IsAbs() || u.Host == "" {
		return "", 0, policy.AppHTTP, "not a proxy request: use CONNECT or an absolute http:// URL"
	}
	if u.Scheme != "http" {
		return u.Hostname(), 0, policy.AppHTTP, "only http:// URLs are proxied; use CONNECT for TLS"
	}
	port = 80
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return u.Hostname(), 0, policy.AppHTTP, "URL port must be 1..65535"
		}
		port = uint16(n)
	}
	return u.Hostname(), port, policy.AppHTTP, ""
}

// answer is a response the explicit proxy sends instead of a tunnel,
// with Connection: close.
type answer struct {
	code   int
	body   string
	reason policy.Reason // sent as X-Airlock-Reason when set
}

// denyAnswer is 403 with the reason code and its meaning.
func denyAnswer(r policy.Reason) *answer {
	return &answer{code: http.StatusForbidden, body: fmt.Sprintf("airlock: denied: %s: %s\n", r, r.Meaning()), reason: r}
}

func errorAnswer(code int, msg string) *answer {
	return &answer{code: code, body: "airlock: " + msg + "\n"}
}

// bytes is the whole response.
func (a *answer) bytes() []byte {
	h := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n",
		a.code, http.StatusText(a.code), len(a.body))
	if a.reason != "" {
		h += "X-Airlock-Reason: " + string(a.reason) + "\r\n"
	}
	return []byte(h + "\r\n" + a.body)
}

// send writes the answer and half-closes c.
func (a *answer) send(c *net.TCPConn) {
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.Write(a.bytes())
	c.CloseWrite()
}

// headLimit reads at most n bytes (n < 0: no limit) and then reports an
// oversized head.
type headLimit struct {
	r io.Reader
	n int64
}

func (l *headLimit) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		return 0, errors.New("proxy request head too large")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (w *countWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.n += int64(n)
	return n, err
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
