package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// checkListen returns what is wrong with a listen address, or "" when it
// is empty (not listening) or a valid host:port. The host may be empty
// (every interface), an IP address or a host name; port 0 picks a free
// port.
func checkListen(addr string) string {
	if addr == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return fmt.Sprintf("%s is not a host:port address (e.g. 127.0.0.1:5000): %s", quote(addr), ae.Err)
		}
		return fmt.Sprintf("%s is not a host:port address (e.g. 127.0.0.1:5000)", quote(addr))
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("port %s is not a number from 0 to 65535", quote(port))
	}
	if host == "" || validHostName(host) {
		return ""
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Sprintf("host %s is neither an IP address nor a host name", quote(host))
	}
	return ""
}

// validHostName reports whether s is a DNS host name: dot-separated labels
// of letters, digits and hyphens, not starting or ending with a hyphen.
func validHostName(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	// All-numeric dotted names are malformed IP addresses, not names.
	return strings.Trim(s, "0123456789.") != ""
}
