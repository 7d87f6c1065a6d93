package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/airlockdev/airlock/internal/dnsname"
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
	if _, err := dnsname.ParseHost(strings.TrimSuffix(host, ".")); host == "" || err == nil {
		return ""
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Sprintf("host %s is neither an IP address nor a host name", quote(host))
	}
	return ""
}
