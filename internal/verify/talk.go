package verify

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// tlsResult is what a TLS talker saw.
type tlsResult struct {
	leafFP string // SHA-256 of the leaf certificate; "" when none came
}

// tlsTalk sends a ClientHello with serverName as SNI ("" sends none) and
// completes the handshake without verifying the certificate: the probes
// test reachability, not trust. The leaf's fingerprint goes to out.
func tlsTalk(serverName string, out *tlsResult) talker {
	return func(ctx context.Context, c net.Conn) (string, error) {
		tc := tls.Client(c, &tls.Config{ServerName: serverName, InsecureSkipVerify: true, MinVersion: tls.VersionTLS10}) //nolint:gosec // reachability probe
		if err := tc.HandshakeContext(ctx); err != nil {
			return "", err
		}
		st := tc.ConnectionState()
		if len(st.PeerCertificates) == 0 {
			return "TLS handshake completed without a certificate", nil
		}
		leaf := st.PeerCertificates[0]
		out.leafFP = fingerprint(leaf)
		return fmt.Sprintf("TLS handshake completed: certificate %q, sha256 %s", leaf.Subject.CommonName, shortFP(out.leafFP)), nil
	}
}

// httpTalk sends a GET with the given Host header and reads the status
// line.
func httpTalk(host string, header http.Header) talker {
	return func(ctx context.Context, c net.Conn) (string, error) {
		req := "GET / HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: airlock-verify\r\nConnection: close\r\n"
		for k, vs := range header {
			for _, v := range vs {
				req += k + ": " + v + "\r\n"
			}
		}
		if _, err := io.WriteString(c, req+"\r\n"); err != nil {
			return "", err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return "", err
		}
		return "HTTP answer: " + strings.TrimSpace(line), nil
	}
}

// dohTalk does a TLS handshake with the URL's host as SNI, then POSTs a
// DNS wire query (RFC 8484) to the URL and reads the answer.
func dohTalk(u *url.URL, query []byte) talker {
	return func(ctx context.Context, c net.Conn) (string, error) {
		tc := tls.Client(c, &tls.Config{ServerName: sniOf(u.Hostname()), InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}) //nolint:gosec // reachability probe
		if err := tc.HandshakeContext(ctx); err != nil {
			return "", err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(query))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/dns-message")
		req.Header.Set("Accept", "application/dns-message")
		req.Close = true
		if err := req.Write(tc); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(bufio.NewReader(tc), req)
		if err != nil {
			return "", fmt.Errorf("TLS handshake completed, then reading the HTTP answer: %w", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return fmt.Sprintf("DoH answered: HTTP %s, %s, %d bytes", resp.Status, resp.Header.Get("Content-Type"), len(body)), nil
	}
}

// sniOf returns the name to send as SNI for host: none for an IP literal.
func sniOf(host string) string {
	if net.ParseIP(strings.Trim(host, "[]")) != nil {
		return ""
	}
	return host
}
