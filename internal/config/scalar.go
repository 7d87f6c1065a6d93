package config

import (
	"encoding"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// scalar decodes a string, bool, integer or float.
func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string) {
	k := v.Kind()
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "expected %s, got %s", kindName(k), describe(n))
		return
	}
	switch k {
	case reflect.String:
		v.SetString(n.Value)
	case reflect.Bool:
		switch {
		case isString(n):
		case n.Value == "true" || n.Value == "True" || n.Value == "TRUE":
			v.SetBool(true)
			return
		case n.Value == "false" || n.Value == "False" || n.Value == "FALSE":
			v.SetBool(false)
			return
		}
		d.fail(n, path, "expected true or false, got %s", describe(n))
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, v.Type().Bits())
		switch {
		case isString(n) || (err != nil && !errors.Is(err, strconv.ErrRange)):
			d.fail(n, path, "expected a number, got %s", describe(n))
		case err != nil || math.IsInf(f, 0) || math.IsNaN(f):
			d.fail(n, path, "%s is not a finite number", quote(n.Value))
		default:
			v.SetFloat(f)
		}
	default:
		d.integer(n, v, path)
	}
}

// kindName is what a Go kind expects, for messages.
func kindName(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "an integer"
}

// integer decodes an unquoted integer into any int or uint kind, checking
// its range. Accepted forms: 42, -42, +42, 1_000_000, 0x2a, 0o52, 0b101010.
// A leading zero (052) is refused: YAML 1.1 reads it as octal, YAML 1.2 as
// decimal.
func (d *decoder) integer(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode || isString(n) {
		d.fail(n, path, "expected an integer, got %s", describe(n))
		return
	}
	neg, mag, err := parseInteger(n.Value)
	if errors.Is(err, errLeadingZero) {
		d.fail(n, path, "%s: a leading zero is ambiguous; write the number without it (or with 0o for octal)", quote(n.Value))
		return
	}
	if errors.Is(err, strconv.ErrSyntax) {
		d.fail(n, path, "expected an integer, got %s", describe(n))
		return
	}
	bits := v.Type().Bits()
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		lo, hi := -(int64(1) << (bits - 1)), int64(1)<<(bits-1)-1
		limit := uint64(hi)
		if neg {
			limit++
		}
		if err != nil || mag > limit {
			d.fail(n, path, "%s is out of range (%d to %d)", n.Value, lo, hi)
			return
		}
		i := int64(mag) // wraps to math.MinInt64 for -2^63 as intended
		if neg {
			i = -i
		}
		v.SetInt(i)
	default:
		hi := uint64(math.MaxUint64) >> (64 - bits)
		if err != nil || mag > hi || (neg && mag != 0) {
			d.fail(n, path, "%s is out of range (0 to %d)", n.Value, hi)
			return
		}
		v.SetUint(mag)
	}
}

var errLeadingZero = errors.New("leading zero")

// parseInteger splits s into a sign and a magnitude. Errors wrap
// strconv.ErrSyntax, strconv.ErrRange or errLeadingZero.
func parseInteger(s string) (neg bool, mag uint64, err error) {
	rest := s
	if r, ok := strings.CutPrefix(rest, "-"); ok {
		neg, rest = true, r
	} else if r, ok := strings.CutPrefix(rest, "+"); ok {
		rest = r
	}
	if len(rest) > 1 && rest[0] == '0' && rest[1] >= '0' && rest[1] <= '9' {
		return false, 0, errLeadingZero
	}
	if rest == "" || rest[0] == '+' || rest[0] == '-' {
		return false, 0, strconv.ErrSyntax
	}
	mag, err = strconv.ParseUint(rest, 0, 64)
	return neg, mag, err
}

// duration decodes a Go duration string such as 10s, 5m or 1h30m. A bare
// number other than 0 is refused: its unit would be a guess.
func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "expected a duration such as 10s or 5m, got %s", describe(n))
		return
	}
	s := strings.TrimSpace(n.Value)
	dur, err := time.ParseDuration(s)
	if err == nil {
		v.SetInt(int64(dur))
		return
	}
	if _, ferr := strconv.ParseFloat(s, 64); ferr == nil {
		d.fail(n, path, "duration %s has no unit; add one: %ss, %sm or %sh", s, s, s, s)
		return
	}
	d.fail(n, path, "expected a duration such as 10s, 5m or 1h30m (units ns, us, ms, s, m, h), got %s", describe(n))
}

// text decodes a type that parses itself (encoding.TextUnmarshaler), such
// as netip.Prefix or a size type that reads "10GiB". A named integer type
// with UnmarshalText also takes an unquoted integer as is.
func (d *decoder) text(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "expected a string, got %s", describe(n))
		return
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if !isString(n) {
			if _, _, err := parseInteger(n.Value); err == nil || errors.Is(err, strconv.ErrRange) {
				d.integer(n, v, path)
				return
			}
		}
	}
	u := v.Addr().Interface().(encoding.TextUnmarshaler)
	if err := u.UnmarshalText([]byte(n.Value)); err != nil {
		d.fail(n, path, "invalid value %s: %v", quote(n.Value), err)
	}
}
