package node

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Resolver file locations, as paths on the node.
const (
	ResolvConf      = "/etc/resolv.conf"
	ResolvedDropIn  = "/etc/systemd/resolved.conf.d/airlock.conf"
	resolvedStub    = "/run/systemd/resolve/stub-resolv.conf"
	resolvedStubIP  = "127.0.0.53"
	resolvedRunPath = "systemd/resolve/"
)

// detectResolver decides between resolv.conf and systemd-resolved under
// root: resolved is in use when /etc/resolv.conf is a symlink into
// /run/systemd/resolve/, or names the stub resolver 127.0.0.53, or is
// missing while resolved's stub file exists. Otherwise resolv.conf is what
// the node's libc reads.
func detectResolver(root string) ResolverMode {
	p := filepath.Join(root, ResolvConf)
	if target, err := os.Readlink(p); err == nil && strings.Contains(target, resolvedRunPath) {
		return ResolverResolved
	}
	b, err := os.ReadFile(p)
	if err == nil {
		for _, ns := range nameservers(string(b)) {
			if ns == resolvedStubIP {
				return ResolverResolved
			}
		}
		return ResolverResolvConf
	}
	if _, err := os.Stat(filepath.Join(root, resolvedStub)); err == nil {
		return ResolverResolved
	}
	return ResolverResolvConf
}

func nameservers(conf string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(conf))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "nameserver" {
			out = append(out, f[1])
		}
	}
	return out
}

// shortTimeouts is the options line written with several DNS servers:
// glibc waits timeout seconds for a server before asking the next, and
// makes attempts rounds over the list, so a dead replica costs about a
// second instead of the default 5 s (resolv.conf(5)).
const shortTimeouts = "options timeout:1 attempts:2"

// resolvConf renders /etc/resolv.conf naming only airlock DNS, one
// nameserver per replica in order; the search, domain and options lines of
// the current file are kept. With several servers the timeout and
// attempts options are airlock's (shortTimeouts), replacing the file's.
func resolvConf(dns []netip.AddrPort, current string) (string, error) {
	for i, ap := range dns {
		if ap.Port() != 53 {
			return "", fmt.Errorf("node.%s %s: resolv.conf cannot carry a port; serve airlock DNS on port 53 for nodes, or set node.resolver: resolved (systemd-resolved takes ip:port) or none", entryKey("dns", i, len(dns)), ap)
		}
	}
	var b strings.Builder
	b.WriteString("# written by `airlock node apply`: every name is resolved by airlock DNS.\n")
	b.WriteString("# `airlock node reset` restores what was here before.\n")
	for _, ap := range dns {
		fmt.Fprintf(&b, "nameserver %s\n", ap.Addr())
	}
	several := len(dns) > 1
	sc := bufio.NewScanner(strings.NewReader(current))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || (f[0] != "search" && f[0] != "domain" && f[0] != "options") {
			continue
		}
		if f[0] == "options" && several {
			kept := f[:1]
			for _, o := range f[1:] {
				if !strings.HasPrefix(o, "timeout:") && !strings.HasPrefix(o, "attempts:") {
					kept = append(kept, o)
				}
			}
			if len(kept) == 1 {
				continue
			}
			f = kept
		}
		b.WriteString(strings.Join(f, " ") + "\n")
	}
	if several {
		b.WriteString(shortTimeouts + "\n")
	}
	return b.String(), nil
}

// resolvedDropIn renders the systemd-resolved drop-in: airlock DNS as the
// global servers, one per replica in order, and the routing domain ~. so
// every name goes to them. systemd-resolved moves to the next server when
// one stops answering.
func resolvedDropIn(dns []netip.AddrPort) string {
	servers := make([]string, len(dns))
	for i, ap := range dns {
		servers[i] = ap.Addr().String()
		if ap.Port() != 53 {
			servers[i] = ap.String()
		}
	}
	return "# written by `airlock node apply`: every name is resolved by airlock DNS.\n" +
		"# `airlock node reset` removes this file.\n" +
		"[Resolve]\n" +
		"DNS=" + strings.Join(servers, " ") + "\n" +
		"Domains=~.\n"
}
