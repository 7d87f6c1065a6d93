// Package porttest picks loopback ports for tests. Only tests import it.
//
// A port is free when it is picked; nothing reserves it, so a test binds
// it soon after (another process may take it in between, as with any
// pick-then-bind).
package porttest

import (
	"net"
	"strconv"
	"testing"
)

// FreeAddr returns 127.0.0.1:PORT with a TCP port nothing listens on
// right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pick a free port: %v", err)
	}
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}
