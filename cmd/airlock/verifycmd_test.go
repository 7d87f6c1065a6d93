package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/airlockdev/airlock/internal/testkit/dnstest"
)

// verifyPeers starts loopback peers for `airlock verify`: a DNS server
// resolving allowed.test to 127.0.0.1, an HTTPS server, an HTTP server
// and a listener that closes connections without a byte.
type verifyPeers struct {
	dns, https, http, closer string
}

func startVerifyPeers(t *testing.T) verifyPeers {
	t.Helper()
	var p verifyPeers
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dnstest.Serve(t, pc, nil, dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if q.Question[0].Name == "allowed.test." && q.Question[0].Qtype == dns.TypeA {
			rr, _ := dns.NewRR("allowed.test. 60 IN A 127.0.0.1")
			m.Answer = append(m.Answer, rr)
		} else if q.Question[0].Name != "allowed.test." {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	}))
	p.dns = pc.LocalAddr().String()

	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(ts.Close)
	p.https = strings.TrimPrefix(ts.URL, "https://")
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(hs.Close)
	p.http = strings.TrimPrefix(hs.URL, "http://")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { buf := make([]byte, 4096); c.Read(buf); c.Close() }()
		}
	}()
	p.closer = ln.Addr().String()
	return p
}

func portPart(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func TestVerifyExitCodes(t *testing.T) {
	p := startVerifyPeers(t)
	closed := func() string {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		return ln.Addr().String()
	}()
	tests := []struct {
		name     string
		allowed  string // allowedName
		metadata string
		want     int
		summary  string
	}{
		{"isolated, allowed name answers", "allowed.test:" + portPart(p.https), p.closer, exitOK, "ok: 0 leaks"},
		{"isolated, allowed name down", "allowed.test:" + portPart(closed), p.closer, exitPositiveFailed, "FAILED: 0 leaks"},
		{"metadata answers", "allowed.test:" + portPart(p.https), p.http, exitFinding, "LEAK: 1 leak,"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "airlock.yaml")
			writeFile(t, cfg, fmt.Sprintf("version: 1\nnode:\n  dns: %s\nverify:\n  targets:\n    allowedName: %s\n    deniedPort: %s\n    metadataAddress: %s\n",
				p.dns, tt.allowed, portPart(p.closer), tt.metadata))
			var out, errOut bytes.Buffer
			code := run([]string{"verify", "--config", cfg, "--root", dir, "--timeout", "1s"}, &out, &errOut)
			if code != tt.want || !strings.Contains(out.String(), tt.summary) {
				t.Errorf("airlock verify = %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", code, tt.want, tt.summary, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), "resolver "+p.dns+" (node.dns") {
				t.Errorf("airlock verify output does not name the resolver %s (node.dns):\n%s", p.dns, out.String())
			}

			out.Reset()
			code = run([]string{"verify", "--config", cfg, "--root", dir, "--timeout", "1s", "--json"}, &out, &errOut)
			var rep struct {
				Leaks   int               `json:"leaks"`
				Results []json.RawMessage `json:"results"`
			}
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil || code != tt.want || len(rep.Results) == 0 {
				t.Errorf("airlock verify --json = %d, %v (%s), want %d and a JSON report", code, err, out.String(), tt.want)
			}
		})
	}
}

func TestVerifyUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"verify", "extra"}, {"verify", "--timeout", "0s"}, {"verify", "--bogus"}, {"verify", "--reflect-icmpv6", "--netns", "x"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != exitUsage {
			t.Errorf("run(%q) = %d, want %d", args, code, exitUsage)
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"verify", "--netns", "alxv-does-not-exist", "--config", writeEmptyConfig(t)}, &out, &errOut); code != exitFinding || !strings.Contains(errOut.String(), "network namespace") {
		t.Errorf("verify --netns missing = %d (%s), want %d and a namespace error", code, errOut.String(), exitFinding)
	}
}

func writeEmptyConfig(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "airlock.yaml")
	writeFile(t, p, "version: 1\n")
	return p
}
