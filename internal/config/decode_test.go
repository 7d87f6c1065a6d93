package config

import (
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// size is a byte count written as 512, "4KiB" or "2MiB", like the size
// types domain packages define.
type size int64

func (s *size) UnmarshalText(b []byte) error {
	str := string(b)
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20} {
		if rest, ok := strings.CutSuffix(str, suffix); ok {
			str, mult = rest, m
			break
		}
	}
	n, err := strconv.ParseInt(str, 10, 64)
	if err != nil {
		return fmt.Errorf("size %q: want a number of bytes, KiB or MiB", string(b))
	}
	*s = size(n * mult)
	return nil
}

type mode string

type inner struct {
	Name string   `yaml:"name"`
	Port uint16   `yaml:"port"` // default 80
	Tags []string `yaml:"tags"`
}

func (i *inner) SetDefaults() { i.Port = 80 }

type Embedded struct {
	Extra string `yaml:"extra"`
}

type empty struct{}

type sample struct {
	Embedded `yaml:",inline"`
	Str      string           `yaml:"str"` // default "default"
	Bool     bool             `yaml:"bool"`
	Int      int              `yaml:"int"`
	I8       int8             `yaml:"i8"`
	U16      uint16           `yaml:"u16"`
	U64      uint64           `yaml:"u64"`
	I64      int64            `yaml:"i64"`
	Float    float64          `yaml:"float"`
	Dur      time.Duration    `yaml:"dur"` // default 1s
	Size     size             `yaml:"size"`
	Prefix   netip.Prefix     `yaml:"prefix"`
	AddrPort netip.AddrPort   `yaml:"addrPort"`
	PtrBool  *bool            `yaml:"ptrBool"` // default true
	Inner    inner            `yaml:"inner"`
	PtrInner *inner           `yaml:"ptrInner"`
	List     []inner          `yaml:"list"`
	Nested   [][]string       `yaml:"nested"`
	Map      map[string]inner `yaml:"map"`
	Mode     mode             `yaml:"mode"`
	Empty    empty            `yaml:"empty"`
	Untagged string
	Skipped  string `yaml:"-"`
}

func (s *sample) SetDefaults() {
	s.Str = "default"
	s.Dur = time.Second
	t := true
	s.PtrBool = &t
}

// tree is a recursive type, to reach the nesting limit.
type tree struct {
	Child *tree `yaml:"child"`
}

// decodeInto decodes in (as file t.yaml) into out without validation and
// returns the errors, one per line, or "".
func decodeInto(in string, out any) string {
	d := newDecoder("t.yaml")
	d.decodeDocument([]byte(in), reflect.ValueOf(out).Elem())
	if errs := d.result(); errs != nil {
		return errs.Error()
	}
	return ""
}

func ptr[T any](v T) *T { return &v }

func TestDecodeValues(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want sample
	}{
		{
			name: "empty file keeps defaults",
			in:   "",
			want: sample{Str: "default", Dur: time.Second, PtrBool: ptr(true), Inner: inner{Port: 80}},
		},
		{
			name: "null keeps defaults",
			in:   "str:\ndur: ~\nptrBool: null\ninner: !!null\n",
			want: sample{Str: "default", Dur: time.Second, PtrBool: ptr(true), Inner: inner{Port: 80}},
		},
		{
			name: "every kind",
			in: `
extra: inlined
str: 123
bool: FALSE
int: -42
i8: -128
u16: 65535
u64: 18446744073709551615
i64: 0x7fffffffffffffff
float: 2.5e3
dur: 1h30m
size: 4KiB
prefix: 10.0.0.0/8
addrPort: "[::1]:53"
ptrBool: false
inner: {name: a, tags: [x, "y"]}
ptrInner: {port: 0}
list:
  - name: first
  - {name: second, port: 8080}
nested: [[a, b], [], [c]]
map:
  mcr.microsoft.com: {name: mcr}
  "": {}
mode: enforce
empty: {}
untagged: yes
`,
			want: sample{
				Embedded: Embedded{Extra: "inlined"},
				Str:      "123", Bool: false, Int: -42, I8: -128, U16: 65535, U64: 1<<64 - 1, I64: 1<<63 - 1,
				Float: 2500, Dur: 90 * time.Minute, Size: 4096,
				Prefix:   netip.MustParsePrefix("10.0.0.0/8"),
				AddrPort: netip.MustParseAddrPort("[::1]:53"),
				PtrBool:  ptr(false),
				Inner:    inner{Name: "a", Port: 80, Tags: []string{"x", "y"}},
				PtrInner: &inner{Port: 0},
				List:     []inner{{Name: "first", Port: 80}, {Name: "second", Port: 8080}},
				Nested:   [][]string{{"a", "b"}, {}, {"c"}},
				Map:      map[string]inner{"mcr.microsoft.com": {Name: "mcr", Port: 80}, "": {Port: 80}},
				Mode:     "enforce",
				Untagged: "yes",
			},
		},
		{
			name: "integer forms",
			in:   "int: +1_000\ni64: -0b101\nu64: 0o17\nsize: 1024\n",
			want: sample{Str: "default", Dur: time.Second, PtrBool: ptr(true), Inner: inner{Port: 80},
				Int: 1000, I64: -5, U64: 15, Size: 1024},
		},
		{
			name: "zero duration needs no unit",
			in:   "dur: 0\n",
			want: sample{Str: "default", PtrBool: ptr(true), Inner: inner{Port: 80}},
		},
		{
			name: "anchors, aliases and merge keys",
			in: `
inner: &base {name: base, port: 1, tags: [t]}
ptrInner: *base
list:
  - <<: *base
    port: 2
  - <<: [{name: over}, *base]
map:
  k: {<<: *base}
nested: [&l [a], *l]
`,
			want: sample{Str: "default", Dur: time.Second, PtrBool: ptr(true),
				Inner:    inner{Name: "base", Port: 1, Tags: []string{"t"}},
				PtrInner: &inner{Name: "base", Port: 1, Tags: []string{"t"}},
				List:     []inner{{Name: "base", Port: 2, Tags: []string{"t"}}, {Name: "over", Port: 1, Tags: []string{"t"}}},
				Map:      map[string]inner{"k": {Name: "base", Port: 1, Tags: []string{"t"}}},
				Nested:   [][]string{{"a"}, {"a"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got sample
			if err := decodeInto(tt.in, &got); err != "" {
				t.Fatalf("decode(%q) errors:\n%s", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(netip.Prefix{}, netip.AddrPort{}),
				cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
				cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("decode(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestDecodeDoesNotWriteThroughDefaultPointer(t *testing.T) {
	shared := true
	s := sample{PtrBool: &shared}
	d := newDecoder("t.yaml")
	root := mustNode(t, "ptrBool: false\n")
	d.decode(root, reflect.ValueOf(&s).Elem(), "")
	if errs := d.result(); errs != nil {
		t.Fatal(errs)
	}
	if !shared || *s.PtrBool {
		t.Errorf("after decoding ptrBool: false, shared = %v, *s.PtrBool = %v; want true, false", shared, *s.PtrBool)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"unknown field with hint", "inner:\n  nmae: x\n",
			`t.yaml:2:3: inner.nmae: unknown field (did you mean "name"?)`},
		{"unknown field hint ignores case", "Str: x\n",
			`t.yaml:1:1: Str: unknown field (did you mean "str"?)`},
		{"unknown field swapped letters", "inner: {nmae: x, prot: 1}\n",
			"t.yaml:1:9: inner.nmae: unknown field (did you mean \"name\"?)\n" +
				`t.yaml:1:18: inner.prot: unknown field (did you mean "port"?)`},
		{"unknown field lists known ones", "inner:\n  colour: red\n",
			`t.yaml:2:3: inner.colour: unknown field (known fields: name, port, tags)`},
		{"unknown field where none are allowed", "empty: {x: 1}\n",
			`t.yaml:1:9: empty.x: unknown field (no fields are allowed here)`},
		{"skipped field is unknown", "skipped: x\n",
			`t.yaml:1:1: skipped: unknown field (known fields: extra, str, bool, int, i8, u16, u64, i64, float, dur, size, prefix, addrPort, ptrBool, inner, ptrInner, list, nested, map, mode, empty, untagged)`},
		{"duplicate key", "str: a\nbool: true\nstr: b\n",
			`t.yaml:3:1: str: duplicate key (first set at line 1, column 1)`},
		{"duplicate map key", "map:\n  a: {}\n  a: {}\n",
			`t.yaml:3:3: map["a"]: duplicate key (first set at line 2, column 3)`},
		{"key not a string", "map: {[a]: {}}\n",
			`t.yaml:1:7: map: a key must be a string, got a list`},
		{"list for a map", "inner: [a]\n",
			`t.yaml:1:8: inner: expected a map, got a list`},
		{"scalar for a map", "map: x\n",
			`t.yaml:1:6: map: expected a map, got "x"`},
		{"map for a list", "list: {a: 1}\n",
			`t.yaml:1:7: list: expected a list, got a map`},
		{"map for a string", "str: {a: 1}\n",
			`t.yaml:1:6: str: expected a string, got a map`},
		{"list for an integer", "int: [1]\n",
			`t.yaml:1:6: int: expected an integer, got a list`},
		{"word for an integer", "int: abc\n",
			`t.yaml:1:6: int: expected an integer, got "abc"`},
		{"float for an integer", "int: 1.5\n",
			`t.yaml:1:6: int: expected an integer, got "1.5"`},
		{"quoted integer", "int: \"5000\"\n",
			`t.yaml:1:6: int: expected an integer, got the string "5000"`},
		{"leading zero", "int: 0755\n",
			`t.yaml:1:6: int: "0755": a leading zero is ambiguous; write the number without it (or with 0o for octal)`},
		{"uint16 too large", "u16: 65536\n",
			`t.yaml:1:6: u16: 65536 is out of range (0 to 65535)`},
		{"negative uint", "u16: -1\n",
			`t.yaml:1:6: u16: -1 is out of range (0 to 65535)`},
		{"int8 too small", "i8: -129\n",
			`t.yaml:1:5: i8: -129 is out of range (-128 to 127)`},
		{"int64 overflow", "i64: 9223372036854775808\n",
			`t.yaml:1:6: i64: 9223372036854775808 is out of range (-9223372036854775808 to 9223372036854775807)`},
		{"uint64 overflow", "u64: 18446744073709551616\n",
			`t.yaml:1:6: u64: 18446744073709551616 is out of range (0 to 18446744073709551615)`},
		{"bool word", "bool: yes\n",
			`t.yaml:1:7: bool: expected true or false, got "yes"`},
		{"quoted bool", "bool: 'true'\n",
			`t.yaml:1:7: bool: expected true or false, got the string "true"`},
		{"float word", "float: fast\n",
			`t.yaml:1:8: float: expected a number, got "fast"`},
		{"float infinity", "float: 1e999\n",
			`t.yaml:1:8: float: "1e999" is not a finite number`},
		{"float NaN", "float: NaN\n",
			`t.yaml:1:8: float: "NaN" is not a finite number`},
		{"duration without unit", "dur: 10\n",
			`t.yaml:1:6: dur: duration 10 has no unit; add one: 10s, 10m or 10h`},
		{"duration with unknown unit", "dur: 2d\n",
			`t.yaml:1:6: dur: expected a duration such as 10s, 5m or 1h30m (units ns, us, ms, s, m, h), got "2d"`},
		{"duration as a list", "dur: [1s]\n",
			`t.yaml:1:6: dur: expected a duration such as 10s or 5m, got a list`},
		{"text unmarshaler error", "prefix: 10.0.0.0/33\n",
			`t.yaml:1:9: prefix: invalid value "10.0.0.0/33": netip.ParsePrefix("10.0.0.0/33"): prefix length out of range`},
		{"text unmarshaler map", "addrPort: {a: 1}\n",
			`t.yaml:1:11: addrPort: expected a string, got a map`},
		{"size with bad unit", "size: 10XB\n",
			`t.yaml:1:7: size: invalid value "10XB": size "10XB": want a number of bytes, KiB or MiB`},
		{"size out of range", "size: 9223372036854775808\n",
			`t.yaml:1:7: size: 9223372036854775808 is out of range (-9223372036854775808 to 9223372036854775807)`},
		{"unsupported tag", "str: !secret x\n",
			`t.yaml:1:6: str: unsupported YAML tag "!secret"`},
		{"tag of the wrong kind", "list: !!map {}\n",
			`t.yaml:1:7: list: expected a list, got a map`},
		{"binary tag", "str: !!binary aGk=\n",
			`t.yaml:1:6: str: unsupported YAML tag "!!binary"`},
		{"merge of a scalar", "inner: {<<: x}\n",
			`t.yaml:1:13: inner: a merge key (<<) takes a map or a list of maps, got "x"`},
		{"merge of a list of scalars", "inner: {<<: [x]}\n",
			`t.yaml:1:14: inner: a merge key (<<) takes a map or a list of maps, got a list holding "x"`},
		{"error inside an alias points at the anchor", "inner: &a {port: x}\nptrInner: *a\n",
			"t.yaml:1:18: inner.port: expected an integer, got \"x\"\n" +
				`t.yaml:1:18: ptrInner.port: expected an integer, got "x"`},
		{"list element paths", "list:\n  - {}\n  - port: -5\n",
			`t.yaml:3:11: list[1].port: -5 is out of range (0 to 65535)`},
		{"map entry paths", "map:\n  a.b: {tags: {}}\n",
			`t.yaml:2:15: map["a.b"].tags: expected a list, got a map`},
		{"top level not a map", "- a\n",
			`t.yaml:1:1: expected a map, got a list`},
		{"syntax error", "str: a\n  bool: b\n",
			`t.yaml:2:1: invalid YAML: mapping values are not allowed in this context`},
		{"unknown anchor", "str: *nope\n",
			`t.yaml:1:1: invalid YAML: unknown anchor 'nope' referenced`},
		{"two documents", "str: a\n---\nstr: b\n",
			`t.yaml:2:1: a config file holds one YAML document; a second one starts here`},
		{"invalid UTF-8", "str: ok\nbool: \"\xff\"\n",
			`t.yaml:2:8: the file is not valid UTF-8 text`},
		{"control character", "str: \"a\x07\"\n",
			`t.yaml:1:8: control character U+0007 is not allowed in YAML`},
		{"control character after CRLF", "str: a\r\nint: 1\x00\r\n",
			`t.yaml:2:7: control character U+0000 is not allowed in YAML`},
		{"file too large", "str: " + strings.Repeat("a", maxFileSize),
			`t.yaml:1:1: file is 4194309 bytes; the limit is 4194304 bytes (4 MiB)`},
		{"errors sorted by position", "str: [x]\nbool: 1\nint: x\n",
			"t.yaml:1:6: str: expected a string, got a list\n" +
				"t.yaml:2:7: bool: expected true or false, got \"1\"\n" +
				`t.yaml:3:6: int: expected an integer, got "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s sample
			if got := decodeInto(tt.in, &s); got != tt.want {
				t.Errorf("decode(%.60q) errors =\n%s\nwant\n%s", tt.in, got, tt.want)
			}
		})
	}
}

func TestDecodeLimits(t *testing.T) {
	t.Run("billion laughs", func(t *testing.T) {
		// Each level repeats the previous one ten times: 10^10 strings.
		var in strings.Builder
		in.WriteString("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
		for i := 1; i <= 9; i++ {
			fmt.Fprintf(&in, "l%d: &l%d [*l%[3]d, *l%[3]d, *l%[3]d, *l%[3]d, *l%[3]d, *l%[3]d, *l%[3]d, *l%[3]d, *l%[3]d, *l%[3]d]\n", i, i, i-1)
		}
		var bomb struct {
			L0 []string                   `yaml:"l0"`
			L1 [][]string                 `yaml:"l1"`
			L2 [][][]string               `yaml:"l2"`
			L3 [][][][]string             `yaml:"l3"`
			L4 [][][][][]string           `yaml:"l4"`
			L5 [][][][][][]string         `yaml:"l5"`
			L6 [][][][][][][]string       `yaml:"l6"`
			L7 [][][][][][][][]string     `yaml:"l7"`
			L8 [][][][][][][][][]string   `yaml:"l8"`
			L9 [][][][][][][][][][]string `yaml:"l9"`
		}
		start := time.Now()
		got := decodeInto(in.String(), &bomb)
		// The root, its 10 keys and l0..l4 are 123,466 values; l5 alone is
		// 1,111,111. The budget runs out in l5 at [7][8][8][8], after 8
		// of its l0 lists: the 9th, [8], is where the error points, at l0's
		// anchor (line 1).
		want := "t.yaml:1:5: l5[7][8][8][8][8]: more than 1000000 values after expanding aliases; is an alias repeated exponentially?"
		if got != want {
			t.Errorf("decode(billion laughs) =\n%s\nwant\n%s", got, want)
		}
		if el := time.Since(start); el > 20*time.Second {
			t.Errorf("decode(billion laughs) took %v", el)
		}
	})
	t.Run("merge bomb", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("str: &m0 {name: x, port: 1}\n")
		for i := 1; i <= 9; i++ {
			fmt.Fprintf(&b, "m%d: &m%d {<<: [*m%d, *m%d, *m%d, *m%d, *m%d, *m%d, *m%d, *m%d, *m%d, *m%d]}\n",
				i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
		}
		b.WriteString("inner: *m9\n")
		var s struct {
			Inner inner `yaml:"inner"`
			Extra map[string]map[string]string
		}
		got := decodeInto(b.String(), &s)
		if !strings.Contains(got, "more than 1000000 values after expanding aliases") {
			t.Errorf("decode(merge bomb) = %q, want the value limit error", got)
		}
	})
	t.Run("nesting", func(t *testing.T) {
		in := strings.Repeat("{child: ", 150) + strings.Repeat("}", 150) + "\n"
		var tr tree
		got := decodeInto(in, &tr)
		want := "t.yaml:1:801: " + strings.Repeat("child.", 33) + "ch…: nested more than 100 levels deep"
		if got != want {
			t.Errorf("decode(150 levels) =\n%s\nwant\n%s", got, want)
		}
	})
	t.Run("self-referencing alias", func(t *testing.T) {
		var tr tree
		got := decodeInto("child: &a {child: *a}\n", &tr)
		if !strings.HasSuffix(got, ": nested more than 100 levels deep") {
			t.Errorf("decode(cyclic alias) = %q, want the nesting error", got)
		}
	})
	t.Run("too many errors", func(t *testing.T) {
		in := "nested:\n" + strings.Repeat("  - x\n", 150)
		var s sample
		got := strings.Split(decodeInto(in, &s), "\n")
		if len(got) != maxErrors+1 {
			t.Fatalf("decode(150 errors) gave %d lines, want %d", len(got), maxErrors+1)
		}
		if want := "t.yaml:102:5: too many errors (more than 100); fix these first"; got[maxErrors] != want {
			t.Errorf("last line = %q, want %q", got[maxErrors], want)
		}
		if want := `t.yaml:2:5: nested[0]: expected a list, got "x"`; got[0] != want {
			t.Errorf("first line = %q, want %q", got[0], want)
		}
	})
}

func TestLongKeysAndValuesAreClipped(t *testing.T) {
	long := strings.Repeat("é", 1000)
	var s sample
	got := decodeInto(long+": x\nprefix: "+long+"\n", &s)
	lines := strings.Split(got, "\n")
	if len(lines) != 2 {
		t.Fatalf("decode gave %d errors, want 2:\n%s", len(lines), got)
	}
	for _, l := range lines {
		if len(l) > 700 || !strings.Contains(l, "…") || !utf8.ValidString(l) {
			t.Errorf("error line of %d bytes = %q, want it clipped to valid UTF-8 with …", len(l), l)
		}
	}
}
