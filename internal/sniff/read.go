package sniff

import (
	"errors"
	"fmt"
	"io"
)

// ReadHead reads from r until Parse decides and returns every byte read —
// possibly more than Result.Len, since a read may return bytes beyond the
// head — so the caller can replay them upstream. It reads at most
// MaxClientHello bytes.
//
// The error is Parse's (ErrTooLarge, ErrSSLv2, ErrMalformed…), or the read
// error wrapped (a deadline shows as os.ErrDeadlineExceeded through
// errors.Is; a close before Parse decided as io.ErrUnexpectedEOF). The
// Result is the last one Parse gave, so Kind is known even on an error.
//
// ReadHead sets no deadline: the caller sets one on the connection before
// calling it.
func ReadHead(r io.Reader) ([]byte, Result, error) {
	buf := make([]byte, 0, 2048)
	var res Result
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= MaxClientHello {
				// Parse guarantees a decision at this size; stay bounded anyway.
				return buf, res, ErrTooLarge
			}
			bigger := make([]byte, len(buf), min(2*cap(buf), MaxClientHello))
			copy(bigger, buf)
			buf = bigger
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			var perr error
			res, perr = Parse(buf)
			if !errors.Is(perr, ErrNeedMore) {
				return buf, res, perr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return buf, res, fmt.Errorf("sniff: reading the first %d bytes: %w", len(buf), err)
		}
	}
}
