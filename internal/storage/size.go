package storage

import (
	"fmt"
	"strconv"
	"strings"
)

// Size is a number of bytes, written as a number or with a unit
// (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB).
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// UnmarshalText parses "50GiB", "500MB", "1024".
func (s *Size) UnmarshalText(b []byte) error {
	v := strings.TrimSpace(string(b))
	mult := int64(1)
	for _, u := range sizeUnits {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size: write a whole number of bytes or one with a unit, e.g. 50GiB", string(b))
	}
	if n > 0 && mult > (1<<62)/n {
		return fmt.Errorf("%q is too large", string(b))
	}
	*s = Size(n * mult)
	return nil
}
