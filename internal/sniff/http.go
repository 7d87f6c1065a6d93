package sniff

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
)

// maxMethod bounds the method token; longer tokens are not HTTP as airlock
// sees it, which lets binary protocols that happen to start with a letter be
// classified Unknown early.
const maxMethod = 24

// parseHTTP reads an HTTP/1.x request head (RFC 9112 §2–§3, §5).
func parseHTTP(p []byte) (Result, error) {
	// Method token, then one SP.
	i := 0
	for i < len(p) && i <= maxMethod && isTchar(p[i]) {
		i++
	}
	switch {
	case i > maxMethod:
		return Result{Kind: Unknown}, nil
	case i == len(p):
		return Result{}, ErrNeedMore
	case p[i] != ' ':
		return Result{Kind: Unknown}, nil
	}
	lineEnd := bytes.IndexByte(p, '\n')
	if lineEnd < 0 {
		if !printable(p[i:]) {
			return Result{Kind: Unknown}, nil
		}
		if len(p) >= MaxHTTPHead {
			return Result{Kind: HTTP}, ErrTooLarge
		}
		return Result{}, ErrNeedMore
	}
	line := string(bytes.TrimSuffix(p[:lineEnd], []byte("\r")))
	method, rest, _ := strings.Cut(line, " ")
	target, version, ok := strings.Cut(rest, " ")
	if !ok || !isHTTPVersion(version) {
		if strings.HasPrefix(version, "HTTP/") {
			return malformed(HTTP, "request line %q: only HTTP/1.x is read (HTTP/2 has no readable host here)", clip(line))
		}
		return Result{Kind: Unknown}, nil
	}
	if lineEnd+1 > MaxHTTPHead {
		return Result{Kind: HTTP}, ErrTooLarge
	}
	// The head ends at the first empty line. LF alone is accepted as a line
	// terminator (RFC 9112 §2.2).
	end := -1
	for off := lineEnd + 1; off < len(p); {
		nl := bytes.IndexByte(p[off:], '\n')
		if nl < 0 {
			break
		}
		if nl == 0 || (nl == 1 && p[off] == '\r') {
			end = off + nl + 1
			break
		}
		off += nl + 1
	}
	if end < 0 || end > MaxHTTPHead {
		if end > MaxHTTPHead || len(p) >= MaxHTTPHead {
			return Result{Kind: HTTP}, ErrTooLarge
		}
		return Result{}, ErrNeedMore
	}
	res := Result{Kind: HTTP, Method: method, Len: end}
	if !visible(target) {
		return malformed(HTTP, "request target %q", clip(target))
	}
	host, hosts, err := hostField(p[lineEnd+1 : end])
	if err != nil {
		return res, err
	}
	if hosts > 1 {
		return malformed(HTTP, "%d Host header fields", hosts)
	}
	// A Host field, when present, must be valid even when the target wins.
	var hostName string
	var hostPort uint16
	if hosts == 1 && host != "" {
		if hostName, hostPort, err = splitHostPort(host); err != nil {
			return malformed(HTTP, "Host %q: %v", clip(host), err)
		}
	}
	switch {
	case method == "CONNECT":
		// authority-form: host ":" port (RFC 9112 §3.2.3).
		n, port, err := splitHostPort(target)
		if err != nil || port == 0 {
			return malformed(HTTP, "CONNECT target %q: want host:port", clip(target))
		}
		res.Name, res.Port = n, port
	case target[0] == '/' || target == "*":
		// origin-form or asterisk-form: the host comes from Host.
		res.Name, res.Port = hostName, hostPort
	default:
		// absolute-form: the target's authority wins over Host (RFC 9112
		// §3.2.2).
		n, port, err := absoluteHost(target)
		if err != nil {
			return malformed(HTTP, "request target %q: %v", clip(target), err)
		}
		res.Name, res.Port = n, port
	}
	return res, nil
}

// isHTTPVersion matches "HTTP/1." DIGIT.
func isHTTPVersion(v string) bool {
	return len(v) == 8 && strings.HasPrefix(v, "HTTP/1.") && v[7] >= '0' && v[7] <= '9'
}

// hostField scans the header field lines of a head (each ending in LF, the
// last being the empty line) and returns the Host value and how many Host
// lines there were. It refuses what RFC 9112 §5 tells servers to reject:
// whitespace between the field name and the colon, obsolete line folding,
// and control characters in values.
func hostField(fields []byte) (string, int, error) {
	var host string
	n := 0
	for len(fields) > 0 {
		nl := bytes.IndexByte(fields, '\n')
		line := fields[:nl]
		fields = fields[nl+1:]
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			_, err := malformed(HTTP, "obsolete line folding in the header")
			return "", 0, err
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			_, err := malformed(HTTP, "header line %q has no field name", clip(string(line)))
			return "", 0, err
		}
		for _, c := range line[:colon] {
			if !isTchar(c) {
				_, err := malformed(HTTP, "header field name %q", clip(string(line[:colon])))
				return "", 0, err
			}
		}
		value := bytes.Trim(line[colon+1:], " \t")
		for _, c := range value {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				_, err := malformed(HTTP, "control character 0x%02x in header field %q", c, clip(string(line[:colon])))
				return "", 0, err
			}
		}
		if strings.EqualFold(string(line[:colon]), "host") {
			n++
			host = string(value)
		}
	}
	return host, n, nil
}

// absoluteHost returns the host and port of an absolute-form target
// ("http://host:port/path"). Userinfo ("user@host") is refused: it is
// deprecated (RFC 9110 §4.2.4) and a classic way to disguise the host.
func absoluteHost(target string) (string, uint16, error) {
	scheme, rest, ok := strings.Cut(target, "://")
	if !ok {
		return "", 0, errString("not origin-form, absolute-form or authority-form")
	}
	switch strings.ToLower(scheme) {
	case "http", "https":
	default:
		return "", 0, errString("scheme " + clip(scheme) + " is not http or https")
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	if strings.Contains(authority, "@") {
		return "", 0, errString("userinfo in the authority")
	}
	host, port, err := splitHostPort(authority)
	if err != nil {
		return "", 0, err
	}
	if host == "" {
		return "", 0, errString("empty host")
	}
	return host, port, nil
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port". The host
// is limited to letters, digits, '-', '.' and '_' (a reg-name with
// percent-encoding or sub-delims is refused rather than decoded); a
// bracketed host must be an IPv6 address. An empty port ("host:") is 0.
func splitHostPort(s string) (string, uint16, error) {
	var host, port string
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, errString("unclosed '['")
		}
		host = s[1:end]
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", 0, errString("bracketed host is not an IPv6 address")
		}
		rest := s[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return "", 0, errString("junk after ']'")
			}
			port = rest[1:]
		}
	} else {
		var hasPort bool
		host, port, hasPort = strings.Cut(s, ":")
		if hasPort && strings.Contains(port, ":") {
			return "", 0, errString("more than one ':'")
		}
		for i := 0; i < len(host); i++ {
			c := host[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
				return "", 0, fmt.Errorf("host contains %q", rune(c))
			}
		}
	}
	if port == "" {
		return host, 0, nil
	}
	if len(port) > 5 {
		return "", 0, errString("port out of range")
	}
	v := 0
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return "", 0, errString("port is not a number")
		}
		v = v*10 + int(port[i]-'0')
	}
	if v < 1 || v > 65535 {
		return "", 0, errString("port out of range")
	}
	return host, uint16(v), nil
}

// isTchar reports whether c may appear in an HTTP token (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// visible reports whether s is non-empty and holds only visible ASCII.
func visible(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return s != ""
}

// printable reports whether b holds only visible ASCII, SP, HTAB and CR.
func printable(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 && c != '\t' && c != '\r') || c >= 0x7f {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

type errString string

func (e errString) Error() string { return string(e) }
