package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/porttest"
)

// Through a real redis-server that only speaks TLS and wants a password:
// the cluster trusts the CA of redis.tls.caFile, checks the server name,
// takes the password from the environment variable passwordEnv, and
// writes its keys under keyPrefix. A wrong password is degraded, not an
// error.
func TestTLSAndPassword(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("AIRLOCK_REQUIRE_TOOLS") == "1" {
			t.Fatal("redis-server not installed (scripts/deps.sh)")
		}
		t.Skip("redis-server not installed")
	}
	dir := t.TempDir()
	ca, cert, key := writeTLSFiles(t, dir, "redis.test")
	addr := porttest.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--port", "0", "--tls-port", port, "--bind", "127.0.0.1",
		"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca, "--tls-auth-clients", "no",
		"--requirepass", "s3cret", "--save", "", "--appendonly", "no", "--dir", dir)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	roots := x509.NewCertPool()
	pemCA, _ := os.ReadFile(ca)
	roots.AppendCertsFromPEM(pemCA)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "redis.test"})
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server with TLS not answering on %s: %v", addr, err)
		}
	}

	start := func(pass string) *Cluster {
		cfg := Config{Name: "tls", Redis: RedisConfig{Address: addr, PasswordEnv: "REDIS_PW", KeyPrefix: "pfx:",
			TLS: TLSConfig{Enabled: true, CAFile: ca, ServerName: "redis.test"}}}
		cfg.Validate(func(p, m string) { t.Errorf("config: %s: %s", p, m) })
		c, err := New(cfg, Deps{Getenv: func(string) string { return pass }})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Shutdown(context.Background()) })
		return c
	}
	ctx := context.Background()
	c := start("s3cret")
	if down, why := c.Degraded(); down {
		t.Fatalf("TLS with the right password: degraded: %s", why)
	}
	if err := c.Put(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	n, err := c.rdb.Exists(ctx, "pfx:rec:k").Result()
	if err != nil || n != 1 {
		t.Errorf("key under the prefix: exists=%d err=%v, want pfx:rec:k", n, err)
	}
	bad := start("wrong")
	if down, why := bad.Degraded(); !down {
		t.Error("wrong password: not degraded")
	} else {
		t.Logf("wrong password: degraded: %s", why)
	}
}

// writeTLSFiles writes a CA and a server certificate for name (and
// 127.0.0.1) signed by it; it returns the three PEM paths.
func writeTLSFiles(t *testing.T, dir, name string) (ca, cert, key string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	write := func(file, typ string, der []byte) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER), write("server.key", "EC PRIVATE KEY", keyDER)
}
