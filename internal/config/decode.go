package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Limits that keep a hostile or broken file from exhausting memory or time.
const (
	// maxFileSize is the largest configuration file read, in bytes.
	maxFileSize = 4 << 20
	// maxNodes caps the values decoded, counting every expansion of an
	// alias, so that nested aliases ("billion laughs") cannot explode.
	maxNodes = 1_000_000
	// maxDepth caps the nesting of decoded values.
	maxDepth = 100
	// maxErrors is how many errors are collected before giving up.
	maxErrors = 100
	// maxAliasChain caps aliases that point at aliases.
	maxAliasChain = 100
)

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// position is a place in the file; line and col are 1-based.
type position struct{ line, col int }

func posOf(n *yaml.Node) position {
	if n == nil || n.Line == 0 {
		return position{1, 1}
	}
	return position{n.Line, n.Column}
}

// decoder fills Go values from a yaml.Node tree. It collects every error
// instead of stopping at the first, and remembers where each path it
// decoded was written so that later checks can point at it. A decoder is
// used for one file by one goroutine.
type decoder struct {
	file    string
	errs    Errors
	failed  []string            // paths that did not decode; validation stays quiet about them
	pos     map[string]position // path → position of its key (or list element)
	nodes   int                 // values visited, aliases counted at every use
	depth   int
	aliased int       // > 0 while decoding the expansion of an alias
	stopped bool      // a limit was reached: no more decoding, no more errors
	tooMany *position // where maxErrors was exceeded
	fields  map[reflect.Type][]field
}

func newDecoder(file string) *decoder {
	return &decoder{
		file:   file,
		pos:    make(map[string]position),
		fields: make(map[reflect.Type][]field),
	}
}

// add records an error at p unless decoding has stopped.
func (d *decoder) add(p position, path, msg string) {
	if d.stopped {
		return
	}
	if len(d.errs) == maxErrors {
		d.stopped = true
		d.tooMany = &p
		return
	}
	d.errs = append(d.errs, Error{File: d.file, Line: p.line, Col: p.col, Path: clip(path, maxPathLen), Msg: clip(msg, maxMsgLen)})
}

// Lengths beyond which paths and messages are cut, so that a huge key or
// value in the file does not make a huge error.
const (
	maxPathLen = 200
	maxMsgLen  = 400
)

// clip cuts s to at most n bytes, on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// fail records a decoding error at node n for path.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	if d.stopped {
		return
	}
	d.failed = append(d.failed, path)
	d.add(posOf(n), path, fmt.Sprintf(format, args...))
}

// fatal records an error and stops decoding.
func (d *decoder) fatal(n *yaml.Node, path, format string, args ...any) {
	d.fail(n, path, format, args...)
	d.stopped = true
}

// record remembers that path was written at n. Paths inside the expansion
// of an alias are not recorded: they take the position of the alias, and
// their number is not bounded by the size of the file.
func (d *decoder) record(path string, n *yaml.Node) {
	if d.aliased > 0 {
		return
	}
	if _, ok := d.pos[path]; !ok {
		d.pos[path] = posOf(n)
	}
}

// lookup is the position of path, or of its nearest parent that was in the
// file, or 1:1.
func (d *decoder) lookup(path string) position {
	for {
		if p, ok := d.pos[path]; ok {
			return p
		}
		if path == "" {
			return position{1, 1}
		}
		path = parentPath(path)
	}
}

// report adds a validation error for path unless decoding already failed at
// that path, inside it or around it: the decoding error says what is wrong,
// and the value validation sees there is only a default.
func (d *decoder) report(path, msg string) {
	if d.stopped {
		return
	}
	for _, f := range d.failed {
		if related(path, f) {
			return
		}
	}
	d.add(d.lookup(path), path, msg)
}

// result is the sorted errors, or nil when there are none.
func (d *decoder) result() *Errors {
	if len(d.errs) == 0 {
		return nil
	}
	errs := append(Errors(nil), d.errs...)
	errs.sortByPosition()
	if d.tooMany != nil {
		errs = append(errs, Error{File: d.file, Line: d.tooMany.line, Col: d.tooMany.col,
			Msg: fmt.Sprintf("too many errors (more than %d); fix these first", maxErrors)})
	}
	return &errs
}

// deref follows aliases to the node they name.
func (d *decoder) deref(n *yaml.Node, path string) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode; i++ {
		if n.Alias == nil || i == maxAliasChain {
			d.fail(n, path, "alias *%s does not name a value", n.Value)
			return nil
		}
		n = n.Alias
	}
	return n
}

// visit counts a decoded value against maxNodes.
func (d *decoder) visit(n *yaml.Node, path string) bool {
	d.nodes++
	if d.nodes > maxNodes {
		d.fatal(n, path, "more than %d values after expanding aliases; is an alias repeated exponentially?", maxNodes)
		return false
	}
	return true
}

// decode fills v (settable) from n. A null leaves v as it is, so that an
// empty "key:" keeps the default like an absent key does.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if d.stopped {
		return
	}
	if n.Kind == yaml.AliasNode {
		d.aliased++
		defer func() { d.aliased-- }()
	}
	if n = d.deref(n, path); n == nil || !d.visit(n, path) {
		return
	}
	if d.depth == maxDepth {
		d.fatal(n, path, "nested more than %d levels deep", maxDepth)
		return
	}
	d.depth++
	defer func() { d.depth-- }()
	if !d.checkTag(n, path) || isNull(n) {
		return
	}
	d.value(n, v, path)
}

// value dispatches on the Go type of v; n is neither an alias nor null.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	switch {
	case t.Kind() == reflect.Pointer:
		d.pointer(n, v, path)
	case t == durationType:
		d.duration(n, v, path)
	case reflect.PointerTo(t).Implements(textUnmarshalerType) && (t.Kind() != reflect.Slice || n.Kind != yaml.SequenceNode):
		// A list type that parses itself takes one string (node.Addresses:
		// one address or a list); a list of it is decoded element by element.
		d.text(n, v, path)
	default:
		switch t.Kind() {
		case reflect.Struct:
			d.structure(n, v, path)
		case reflect.Map:
			d.mapping(n, v, path)
		case reflect.Slice:
			d.sequence(n, v, path)
		case reflect.String, reflect.Bool, reflect.Float32, reflect.Float64,
			reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			d.scalar(n, v, path)
		default:
			d.fail(n, path, "internal error: cannot decode into Go type %s", t)
		}
	}
}

// pointer decodes into a new value so that a default the pointer shared is
// never written through. A struct starts from its defaults, or from the
// value already there.
func (d *decoder) pointer(n *yaml.Node, v reflect.Value, path string) {
	nv := reflect.New(v.Type().Elem())
	if v.IsNil() {
		d.defaults(nv.Elem())
	} else {
		nv.Elem().Set(v.Elem())
	}
	d.value(n, nv.Elem(), path)
	v.Set(nv)
}

// sequence decodes a YAML list into a slice, replacing any default.
func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "expected a list, got %s", describe(n))
		return
	}
	if d.nodes+len(n.Content) > maxNodes {
		d.fatal(n, path, "more than %d values after expanding aliases; is an alias repeated exponentially?", maxNodes)
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		p := indexPath(path, i)
		d.record(p, e)
		d.defaults(s.Index(i))
		d.decode(e, s.Index(i), p)
	}
	v.Set(s)
}

// mapping decodes a YAML mapping into a Go map with string keys, replacing
// any default.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(n, path, "internal error: map key type %s is not a string", t.Key())
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a map, got %s", describe(n))
		return
	}
	m := reflect.MakeMapWithSize(t, len(n.Content)/2)
	for _, e := range d.entries(n, path, keyPath) {
		p := keyPath(path, e.name)
		d.record(p, e.key)
		ev := reflect.New(t.Elem()).Elem()
		d.defaults(ev)
		d.decode(e.value, ev, p)
		m.SetMapIndex(reflect.ValueOf(e.name).Convert(t.Key()), ev)
	}
	v.Set(m)
}

// describe names what a node holds, for "expected X, got Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		if isString(n) {
			return "the string " + quote(n.Value)
		}
		return quote(n.Value)
	}
	return "nothing"
}

// quote quotes s for a message, shortened when long.
func quote(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max]) + "…"
	}
	return strconv.Quote(s)
}
