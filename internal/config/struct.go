package config

import (
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// field is a struct field the decoder fills.
type field struct {
	name   string // YAML key: the yaml tag's name, else the Go name with a lowercase first letter
	index  []int  // for reflect.Value.FieldByIndex; longer than one for ",inline" fields
	path   bool   // tagged config:"path": a file path resolved against the config file's directory
	listen bool   // tagged config:"listen": a host:port listen address, checked for every section
}

// fieldsOf lists the decodable fields of struct type t, in declaration
// order. Unexported fields and fields tagged yaml:"-" are skipped; an
// embedded struct tagged yaml:",inline" contributes its fields.
func (d *decoder) fieldsOf(t reflect.Type) []field {
	if fs, ok := d.fields[t]; ok {
		return fs
	}
	fs := appendFields(nil, t, nil)
	d.fields[t] = fs
	return fs
}

func appendFields(fs []field, t reflect.Type, prefix []int) []field {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, hasTag := sf.Tag.Lookup("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if tag == "-" || (!sf.IsExported() && !(sf.Anonymous && opts == "inline")) {
			continue
		}
		index := append(append([]int(nil), prefix...), i)
		if opts == "inline" && sf.Type.Kind() == reflect.Struct {
			fs = appendFields(fs, sf.Type, index)
			continue
		}
		if !hasTag || name == "" {
			r, size := utf8.DecodeRuneInString(sf.Name)
			name = string(unicode.ToLower(r)) + sf.Name[size:]
		}
		ctag := sf.Tag.Get("config")
		fs = append(fs, field{name: name, index: index, path: ctag == "path", listen: ctag == "listen"})
	}
	return fs
}

// plainStruct reports whether t is a struct the decoder fills field by
// field (and not a value type such as netip.Prefix that parses itself).
func plainStruct(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// defaulter is implemented by configuration structs that have defaults.
// SetDefaults is called on a zero value before the file is decoded over
// it, after the defaults of its nested structs, so a parent may override
// them.
type defaulter interface{ SetDefaults() }

// defaults sets the defaults of v (addressable) and of the structs nested
// in it by value.
func (d *decoder) defaults(v reflect.Value) {
	if !plainStruct(v.Type()) {
		return
	}
	for _, f := range d.fieldsOf(v.Type()) {
		d.defaults(v.FieldByIndex(f.index))
	}
	if s, ok := v.Addr().Interface().(defaulter); ok {
		s.SetDefaults()
	}
}

// structure decodes a YAML mapping into a struct over its current value.
func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a map, got %s", describe(n))
		return
	}
	fs := d.fieldsOf(v.Type())
	for _, e := range d.entries(n, path, fieldPath) {
		p := fieldPath(path, e.name)
		f, ok := lookupField(fs, e.name)
		if !ok {
			d.unknown(e.key, path, e.name, fs)
			continue
		}
		d.record(p, e.key)
		d.decode(e.value, v.FieldByIndex(f.index), p)
	}
}

func lookupField(fs []field, name string) (field, bool) {
	for _, f := range fs {
		if f.name == name {
			return f, true
		}
	}
	return field{}, false
}

// unknown reports a key that names no field, with the likely intended one.
func (d *decoder) unknown(key *yaml.Node, parent, name string, fs []field) {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	p := fieldPath(parent, name)
	if s := suggest(name, names); s != "" {
		// The intended field keeps its default; do not also complain about it.
		d.failed = append(d.failed, fieldPath(parent, s))
		d.fail(key, p, "unknown field (did you mean %q?)", s)
		return
	}
	if len(names) == 0 {
		d.fail(key, p, "unknown field (no fields are allowed here)")
		return
	}
	d.fail(key, p, "unknown field (known fields: %s)", strings.Join(names, ", "))
}

// entry is one key: value pair of a mapping, after merge keys are applied.
type entry struct {
	key   *yaml.Node // where the key is written (for positions)
	name  string
	value *yaml.Node
}

// entries lists the pairs of mapping n. A duplicate key is an error. Merge
// keys (<<: *anchor, or a list of anchors) add the pairs of the mappings
// they name that n does not set itself; among several, the first wins.
// sub builds the path of a key under path, for messages.
func (d *decoder) entries(n *yaml.Node, path string, sub func(parent, key string) string) []entry {
	var out []entry
	seen := make(map[string]*yaml.Node)
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		name, ok := d.keyName(k, path)
		if !ok {
			continue
		}
		if isMergeKey(k) {
			merges = append(merges, val)
			continue
		}
		if first, dup := seen[name]; dup {
			d.fail(k, sub(path, name), "duplicate key (first set at line %d, column %d)", first.Line, first.Column)
			continue
		}
		seen[name] = k
		out = append(out, entry{key: k, name: name, value: val})
	}
	for _, m := range merges {
		out = d.merge(out, seen, m, path, 0)
	}
	return out
}

// keyName is the text of mapping key k.
func (d *decoder) keyName(k *yaml.Node, path string) (string, bool) {
	r := d.deref(k, path)
	if r == nil || !d.visit(k, path) {
		return "", false
	}
	if r.Kind != yaml.ScalarNode {
		d.fail(k, path, "a key must be a string, got %s", describe(r))
		return "", false
	}
	return r.Value, true
}

// isMergeKey reports whether k is the YAML merge key <<.
func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
}

// merge adds to out the pairs of the mapping (or list of mappings) src
// whose keys are not yet in seen.
func (d *decoder) merge(out []entry, seen map[string]*yaml.Node, src *yaml.Node, path string, depth int) []entry {
	if d.stopped {
		return out
	}
	s := d.deref(src, path)
	if s == nil || !d.visit(src, path) {
		return out
	}
	if depth == maxDepth {
		d.fatal(src, path, "merge keys nested more than %d levels deep", maxDepth)
		return out
	}
	switch s.Kind {
	case yaml.SequenceNode:
		for _, e := range s.Content {
			if r := d.deref(e, path); r != nil && r.Kind != yaml.MappingNode {
				d.fail(e, path, "a merge key (<<) takes a map or a list of maps, got a list holding %s", describe(r))
				continue
			}
			out = d.merge(out, seen, e, path, depth+1)
		}
	case yaml.MappingNode:
		var inner []*yaml.Node
		for i := 0; i+1 < len(s.Content); i += 2 {
			k, val := s.Content[i], s.Content[i+1]
			name, ok := d.keyName(k, path)
			if !ok {
				continue
			}
			if isMergeKey(k) {
				inner = append(inner, val)
				continue
			}
			if _, dup := seen[name]; dup {
				continue
			}
			seen[name] = k
			out = append(out, entry{key: k, name: name, value: val})
		}
		for _, m := range inner {
			out = d.merge(out, seen, m, path, depth+1)
		}
	default:
		d.fail(src, path, "a merge key (<<) takes a map or a list of maps, got %s", describe(s))
	}
	return out
}

// checkTag accepts nodes without an explicit tag, and the standard tags
// that fit the node's kind.
func (d *decoder) checkTag(n *yaml.Node, path string) bool {
	if n.Style&yaml.TaggedStyle == 0 {
		return true
	}
	ok := false
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str", "!!int", "!!float", "!!bool", "!!null":
			ok = true
		}
	case yaml.MappingNode:
		ok = n.Tag == "!!map"
	case yaml.SequenceNode:
		ok = n.Tag == "!!seq"
	}
	if !ok {
		d.fail(n, path, "unsupported YAML tag %s", quote(n.Tag))
	}
	return ok
}

// isString reports whether scalar n is written as a string: quoted, a block
// scalar, or tagged !!str.
func isString(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode {
		return false
	}
	if n.Style&yaml.TaggedStyle != 0 {
		return n.Tag == "!!str"
	}
	return n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0
}

// isNull reports whether n is a YAML null: empty, ~, null, or tagged !!null.
func isNull(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode {
		return false
	}
	if n.Style&yaml.TaggedStyle != 0 {
		return n.Tag == "!!null"
	}
	if isString(n) {
		return false
	}
	switch n.Value {
	case "", "~", "null", "Null", "NULL":
		return true
	}
	return false
}
