package warm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/airlockdev/airlock/internal/oci"
)

// Ref is one line of a warm list: an image reference as users write it
// (mcr.microsoft.com/oss/kubernetes/pause:3.6, ubuntu:22.04, host/repo@sha256:…).
type Ref struct {
	Line int
	Raw  string
	Host string
	Repo string
	Ref  oci.Reference
}

func (r Ref) String() string { return r.Raw }

// ParseList reads references, one per line; blank lines and # comments
// are skipped. Every malformed line is reported with its number.
func ParseList(r io.Reader) ([]Ref, error) {
	var out []Ref
	var errs []error
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		ref, err := ParseRef(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		ref.Line = n
		out = append(out, ref)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// ParseRef parses one reference of a warm list (oci.ParseImageRef).
func ParseRef(s string) (Ref, error) {
	r, err := oci.ParseImageRef(s)
	return Ref{Raw: s, Host: r.Host, Repo: r.Repo, Ref: r.Ref}, err
}
