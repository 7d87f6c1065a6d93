package registry

import (
	"context"
	"net/http"
	"strconv"
	"strings"
)

// pendingContent is blob content that has not yet verified against its
// digest: a pull-through cache fill still downloading. A client can tell
// bad bytes only in a response that holds the blob's last byte (it hashes
// the whole blob, and that byte is held until the verification, the
// response cut when it fails); a response that stops short of the end is
// sent only once the content verified.
type pendingContent interface {
	// Verified blocks until the content verified (nil) or failed to (an
	// error fit for the client), or ctx ends.
	Verified(ctx context.Context) error
	// StreamToEnd lets reads return bytes before the verification: the
	// caller's response includes the blob's last byte and is aborted when
	// a read fails.
	StreamToEnd()
}

// awaitVerified makes content that is still being verified safe to serve
// for the GET r: a response holding the blob's last byte streams, anything
// else waits for the verification. It returns the verification's error.
// Content that is not pending (a stored blob) is served as it is.
func awaitVerified(r *http.Request, content any, size int64) error {
	p, ok := content.(pendingContent)
	if !ok {
		return nil
	}
	if includesLastByte(r.Header.Get("Range"), size) {
		p.StreamToEnd()
		return nil
	}
	return p.Verified(r.Context())
}

// includesLastByte reports whether a response to a GET with this Range
// header (empty: none) certainly carries byte size-1 of the blob: no Range
// (the whole body), or a range set, as RFC 9110 §14.1.2 writes it, with a
// satisfiable range reaching the end (bytes=N-, bytes=-N, bytes=N-M with
// M ≥ size-1). Anything it cannot parse counts as not reaching the end, so
// the caller waits for verified content: a wait is never unsafe.
func includesLastByte(header string, size int64) bool {
	if header == "" {
		return true
	}
	if size <= 0 {
		return false
	}
	unit, set, ok := strings.Cut(header, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return false
	}
	reaches := false
	for _, spec := range strings.Split(set, ",") {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue // RFC 9110 allows empty list elements
		}
		first, last, ok := strings.Cut(spec, "-")
		if !ok {
			return false
		}
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		if first == "" { // suffix: the last N bytes
			n, ok := rangeNumber(last)
			if !ok {
				return false
			}
			if n > 0 {
				reaches = true
			}
			continue
		}
		start, ok := rangeNumber(first)
		if !ok {
			return false
		}
		if last == "" {
			if start < size {
				reaches = true
			}
			continue
		}
		end, ok := rangeNumber(last)
		if !ok || end < start {
			return false
		}
		if start < size && end >= size-1 {
			reaches = true
		}
	}
	return reaches
}

// rangeNumber parses the digits of a range bound.
func rangeNumber(s string) (int64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
