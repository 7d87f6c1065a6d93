package egress

import (
	"bufio"
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
// one absolute-form HTTP request (answered with Connection: close). An
// established CONNECT tunnel outlives this goroutine: it is relayed by the
// poller, which writes the decision record and calls release when the
// tunnel ends; every other flow ends (record, release) when this returns.
func (s *Server) handleProxy(ctx context.Context, c *net.TCPConn, release func()) {
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
	lim := &headLimit{r: c, n: maxProxyHead}
	br := bufio.NewReaderSize(lim, 1024)
	req, err := http.ReadRequest(br)
	if err != nil {
		f.decision, f.err = policy.Deny(policy.ReasonMalformed), fmt.Errorf("reading the proxy request: %w", err)
		proxyError(c, http.StatusBadRequest, "malformed proxy request")
		return
	}
	lim.n = -1 // the body, if any, is not bounded
	c.SetReadDeadline(time.Time{})

	host, port, app, msg := proxyTarget(req)
	f.app, f.port = app, port
	if msg != "" {
		f.decision, f.rawName = policy.Deny(policy.ReasonMalformed), host
		f.err = errors.New(msg)
		proxyError(c, http.StatusBadRequest, msg)
		return
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
			proxyDeny(c, f.decision.Reason)
			return
		}
		f.wouldDeny = true
	}

	up, err = s.dialFor(ctx, f)
	if err != nil {
		if !f.decision.Allowed() {
			proxyDeny(c, f.decision.Reason)
		} else {
			proxyError(c, http.StatusBadGateway, "the upstream could not be reached")
		}
		return
	}

	if req.Method == http.MethodConnect {
		if _, err := io.WriteString(c, "HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
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
		proxyError(c, http.StatusBadGateway, "the upstream could not be reached")
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

// proxyDeny answers 403 with the reason code and its meaning.
func proxyDeny(c *net.TCPConn, r policy.Reason) {
	body := fmt.Sprintf("airlock: denied: %s: %s\n", r, r.Meaning())
	writeResponse(c, http.StatusForbidden, body, r)
}

func proxyError(c *net.TCPConn, code int, msg string) {
	writeResponse(c, code, "airlock: "+msg+"\n", "")
}

func writeResponse(c *net.TCPConn, code int, body string, r policy.Reason) {
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	h := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n",
		code, http.StatusText(code), len(body))
	if r != "" {
		h += "X-Airlock-Reason: " + string(r) + "\r\n"
	}
	io.WriteString(c, h+"\r\n"+body)
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
