package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// decodeDocument fills out (an addressable struct) from the YAML document
// data: defaults first, then the file over them. Problems are collected in
// d. It reports false when data is not one YAML document, so that there is
// nothing to validate.
func (d *decoder) decodeDocument(data []byte, out reflect.Value) bool {
	d.defaults(out)
	if len(data) > maxFileSize {
		d.add(position{1, 1}, "", fmt.Sprintf("file is %d bytes; the limit is %d bytes (4 MiB)", len(data), maxFileSize))
		return false
	}
	if p, msg, ok := checkText(data); !ok {
		d.add(p, "", msg)
		return false
	}
	root, err := d.parseYAML(data)
	if err != nil {
		return false
	}
	if root == nil {
		return true
	}
	d.record("", root)
	d.decode(root, out, "")
	return true
}

// parseYAML parses the single YAML document in data. It returns nil for an
// empty document, and reports syntax errors and extra documents in d.
func (d *decoder) parseYAML(data []byte) (root *yaml.Node, err error) {
	defer func() {
		// yaml.v3 reports syntax errors by panicking and recovering
		// internally; anything else escaping it is a parser bug, which must
		// not take the process down with it.
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("yaml parser failure: %v", r)
			d.add(position{1, 1}, "", "the YAML parser failed on this file: "+fmt.Sprint(r))
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		d.syntax(err)
		return nil, err
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.syntax(err)
		return nil, err
	default:
		d.add(posOf(&next), "", "a config file holds one YAML document; a second one starts here")
		return nil, errors.New("more than one document")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || isNull(doc.Content[0]) {
		return nil, nil
	}
	return doc.Content[0], nil
}

// syntax reports a yaml.v3 parse error. Its text carries a line
// ("yaml: line 3: did not find expected key") but no column; column 1 is
// used.
func (d *decoder) syntax(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(num); err == nil && l > 0 {
				line, msg = l, after
			}
		}
	}
	d.add(position{line, 1}, "", "invalid YAML: "+msg)
}

// checkText finds the first byte sequence YAML does not allow: invalid
// UTF-8 or a control character other than tab and line breaks. The YAML
// parser rejects these too, but without saying where.
func checkText(data []byte) (position, string, bool) {
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return position{line, col}, "the file is not valid UTF-8 text", false
		case !yamlPrintable(r):
			return position{line, col}, fmt.Sprintf("control character %U is not allowed in YAML", r), false
		}
		i += size
		switch {
		case r == '\n', r == '\r' && (i == len(data) || data[i] != '\n'):
			line, col = line+1, 1
		case r == '\r':
		default:
			col++
		}
	}
	return position{}, "", true
}

// yamlPrintable is YAML 1.2's c-printable set.
func yamlPrintable(r rune) bool {
	switch {
	case r == '\t', r == '\n', r == '\r', r == 0x85:
		return true
	case r >= 0x20 && r <= 0x7e:
		return true
	case r >= 0xa0 && r <= 0xd7ff, r >= 0xe000 && r <= 0xfffd, r >= 0x10000 && r <= 0x10ffff:
		return true
	}
	return false
}
