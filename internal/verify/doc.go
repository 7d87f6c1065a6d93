// Package verify is the escape-attempt battery behind `airlock verify`:
// real probes over every channel a node could leak through (TCP to an IP,
// an allowed SNI aimed at a denied IP, an allowed name on a denied port,
// DNS through the node's resolver and straight to an outside resolver,
// UDP/443, IPv6, ICMP, ICMPv6 of several types to an off-link address, the
// metadata address, an IP-literal HTTP Host, DoH), each classified as
// blocked or leaked from what the far side answered, plus the positive
// checks (the allowed name answers; an image's manifest and config come
// through the node's containerd mirror configuration; the metadata address
// when the node's configuration lets the probed side reach it). It never
// reads the firewall ruleset to guess. ReflectICMPv6 is the far side of
// the ICMPv6 probes (`airlock verify --reflect-icmpv6`): it sends each
// probe back, since no ordinary host answers a routed neighbour discovery
// message.
//
// Data flow: Run takes the verify targets and Options (root directory,
// network namespace, per-probe timeout), finds the node's resolver under
// the root (resolv.conf, airlock's systemd-resolved drop-in, else
// node.dns), runs every probe concurrently and returns a Report: one Row
// per channel. Rendering (table, JSON) and the verdict that main turns
// into an exit code are methods of Report.
//
// Concurrency: every probe runs on its own goroutine. With a network
// namespace, each probe goroutine locks its OS thread and joins the
// namespace (never unlocking, so the thread dies with it), and every
// socket, including those a library opens on goroutines of its own
// (http.Transport), is created through env.dial, which does the same on a
// fresh locked goroutine: no socket is ever created in the caller's
// namespace. Run holds no state between calls; the package has no globals.
package verify
