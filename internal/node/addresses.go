package node

import (
	"fmt"
	"net/netip"
	"strings"
)

// MaxDNS is how many DNS servers node.dns may list: resolv.conf's libc
// reads the first three nameserver lines only (MAXNS).
const MaxDNS = 3

// gatewayVIP is what validation says when node.gateway is not one address.
const gatewayVIP = "use the virtual address (keepalived or a load balancer) of your gateway replicas, see docs/ha.md"

// Addresses is one address or several, in order: the replicas of the
// airlock registry or of airlock DNS as the node reaches them (or one
// virtual address in front of them). In the config file it is a string
// ("10.42.2.4:5000", as before replicas) or a list of strings.
type Addresses []string

// UnmarshalText takes the one-address form: a string. The config decoder
// fills the list form element by element.
func (a *Addresses) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*a = nil
		return nil
	}
	*a = Addresses{string(b)}
	return nil
}

// MarshalYAML renders one address as a string, as the field was written
// before replicas, and several as a list.
func (a Addresses) MarshalYAML() (any, error) {
	switch len(a) {
	case 0:
		return "", nil
	case 1:
		return a[0], nil
	}
	return []string(a), nil
}

// String is the addresses joined by ", " (for messages and state).
func (a Addresses) String() string {
	return strings.Join(a, ", ")
}

// key is the config key of entry i of a (entryKey).
func (a Addresses) key(key string, i int) string { return entryKey(key, i, len(a)) }

// entryKey names entry i of n addresses under key, in messages and rule
// comments: the key alone for one address (as before replicas), key[i]
// in a list.
func entryKey(key string, i, n int) string {
	if n == 1 {
		return key
	}
	return fmt.Sprintf("%s[%d]", key, i)
}

// validate reports every entry that is not "ip:port", or repeats an
// earlier one; extra, when set, adds a check of a parsed entry (its
// message, "" when fine).
func (a Addresses) validate(key string, report func(path, msg string), extra func(ap netip.AddrPort, s string) string) {
	seen := map[netip.AddrPort]int{}
	for i, s := range a {
		ap, err := parseHostPort(s)
		if err != nil {
			report(a.key(key, i), err.Error())
			continue
		}
		if j, dup := seen[ap]; dup {
			report(a.key(key, i), fmt.Sprintf("%s repeats %s[%d]", s, key, j))
			continue
		}
		seen[ap] = i
		if extra != nil {
			if msg := extra(ap, s); msg != "" {
				report(a.key(key, i), msg)
			}
		}
	}
}

// parseAll parses every entry as "ip:port" (node.KEY[i] in errors).
func (a Addresses) parseAll(key string) ([]netip.AddrPort, error) {
	out := make([]netip.AddrPort, 0, len(a))
	for i, s := range a {
		ap, err := parseHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("node.%s: %w", a.key(key, i), err)
		}
		out = append(out, ap)
	}
	return out, nil
}
