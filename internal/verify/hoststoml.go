package verify

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// hostsFile is what verify needs of a containerd hosts.toml: the upstream
// server and the [host."…"] entries, in file order.
type hostsFile struct {
	// Server is the top-level server with its own settings (URL =
	// server); containerd tries it after the host entries.
	Server hostEntry
	Hosts  []hostEntry
}

// hostEntry is one [host."URL"] table.
type hostEntry struct {
	URL          string
	Capabilities []string // nil: containerd's default (pull, resolve, push)
	CA           []string
	SkipVerify   bool
	OverridePath bool
	Header       map[string][]string
}

// has reports whether the entry has capability c.
func (h hostEntry) has(c string) bool {
	return h.Capabilities == nil || slices.Contains(h.Capabilities, c)
}

// hostsTOML is the document as toml.Unmarshal fills it. The top-level
// keys describe the server; Host is a map, so the order of the entries
// comes from tomlIndex.hosts.
type hostsTOML struct {
	Server string `toml:"server"`
	hostTOML
	Host map[string]hostTOML `toml:"host"`
}

// hostTOML is the part of containerd's hostFileConfig that verify reads.
// Other keys (client, dial_timeout, …) are ignored, as containerd's own
// decoding does for keys it does not know.
type hostTOML struct {
	Capabilities []string       `toml:"capabilities"`
	CA           any            `toml:"ca"` // a path or an array of paths
	SkipVerify   bool           `toml:"skip_verify"`
	OverridePath bool           `toml:"override_path"`
	Header       map[string]any `toml:"header"` // values: a string or an array of strings
}

// errHostOrder means the table of contents built from the document does
// not name the same hosts as the decoded document: a bug, never an
// input error (the fuzz target checks for it).
var errHostOrder = errors.New("host entries in document order disagree with the decoded document")

// parseHostsTOML decodes a containerd hosts.toml with go-toml. The host
// entries come back in file order, the order in which containerd tries
// them. Errors name the line and column; the caller adds the file name.
func parseHostsTOML(b []byte) (hostsFile, error) {
	var doc hostsTOML
	if err := toml.Unmarshal(b, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			if k := de.Key(); len(k) > 0 {
				return hostsFile{}, fmt.Errorf("line %d, column %d: %s: %w", row, col, strings.Join(k, "."), err)
			}
			return hostsFile{}, fmt.Errorf("line %d, column %d: %w", row, col, err)
		}
		return hostsFile{}, fmt.Errorf("decoding hosts.toml: %w", err)
	}
	ix, err := indexTOML(b)
	if err != nil {
		return hostsFile{}, fmt.Errorf("indexing hosts.toml: %w", err)
	}
	server, err := doc.hostTOML.entry(doc.Server, nil, ix)
	if err != nil {
		return hostsFile{}, err
	}
	f := hostsFile{Server: server}
	if len(ix.hosts) != len(doc.Host) {
		return hostsFile{}, fmt.Errorf("%w: %q, decoded %q", errHostOrder, ix.hosts, slices.Sorted(maps.Keys(doc.Host)))
	}
	for _, u := range ix.hosts {
		h, ok := doc.Host[u]
		if !ok {
			return hostsFile{}, fmt.Errorf("%w: %q not decoded", errHostOrder, u)
		}
		e, err := h.entry(u, []string{"host", u}, ix)
		if err != nil {
			return hostsFile{}, err
		}
		f.Hosts = append(f.Hosts, e)
	}
	return f, nil
}

// entry converts the decoded table at path at (nil: the top level) into a
// hostEntry, checking ca and header, whose TOML type may vary.
func (h hostTOML) entry(url string, at []string, ix tomlIndex) (hostEntry, error) {
	e := hostEntry{URL: url, Capabilities: h.Capabilities, SkipVerify: h.SkipVerify, OverridePath: h.OverridePath}
	ca, err := stringList(h.CA)
	if err != nil {
		return e, ix.errorAt(append(slices.Clone(at), "ca"), err)
	}
	e.CA = ca
	for _, k := range slices.Sorted(maps.Keys(h.Header)) {
		vs, err := stringList(h.Header[k])
		if err != nil {
			return e, ix.errorAt(append(slices.Clone(at), "header", k), err)
		}
		if e.Header == nil {
			e.Header = map[string][]string{}
		}
		e.Header[k] = vs
	}
	return e, nil
}

// stringList reads a value that may be a string or an array of strings,
// as containerd allows for ca and header values. nil (absent) gives nil.
func stringList(v any) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for i, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("element %d is a %T, want a string", i, x)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("is a %T, want a string or an array of strings", v)
}

// tomlIndex is a table of contents of a TOML document, built from
// go-toml's parser: the host URLs in the order they first appear, and
// the line of every key and table header, for error messages.
type tomlIndex struct {
	hosts []string
	lines map[string]int // joined key path -> line of its first appearance
}

// indexTOML walks the document's expressions in order. A host entry
// appears first wherever a key path host.<URL>… is first written: a
// [host."URL"] or [host."URL".header] header, a dotted key
// (host."URL".ca = …), or a key of an inline table (host = {"URL" = …}).
func indexTOML(b []byte) (tomlIndex, error) {
	ix := tomlIndex{lines: map[string]int{}}
	var p unstable.Parser
	p.Reset(b)
	var table []string // path of the current [table]
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keyPath(nil, e.Key())
			ix.note(&p, table, e.Child().Raw) // the first key part
		case unstable.KeyValue:
			ix.keyValue(&p, table, e)
		}
	}
	return ix, p.Error()
}

// keyValue notes the key-value e under path and, when its value is an
// inline table, the key-values inside it.
func (ix *tomlIndex) keyValue(p *unstable.Parser, path []string, e *unstable.Node) {
	full := keyPath(slices.Clone(path), e.Key())
	ix.note(p, full, e.Raw)
	v := e.Value()
	if v.Kind != unstable.InlineTable {
		return
	}
	for it := v.Children(); it.Next(); {
		if c := it.Node(); c.Kind == unstable.KeyValue {
			ix.keyValue(p, full, c)
		}
	}
}

// note records the line of path and, for host.<URL>…, the host's place.
func (ix *tomlIndex) note(p *unstable.Parser, path []string, at unstable.Range) {
	k := strings.Join(path, "\x00")
	if _, ok := ix.lines[k]; !ok {
		ix.lines[k] = p.Shape(at).Start.Line
	}
	if len(path) >= 2 && path[0] == "host" && !slices.Contains(ix.hosts, path[1]) {
		ix.hosts = append(ix.hosts, path[1])
	}
}

// errorAt wraps err with the dotted key path and the line of the longest
// prefix of path the document writes.
func (ix tomlIndex) errorAt(path []string, err error) error {
	for n := len(path); n > 0; n-- {
		if line, ok := ix.lines[strings.Join(path[:n], "\x00")]; ok {
			return fmt.Errorf("line %d: %s: %w", line, strings.Join(path, "."), err)
		}
	}
	return fmt.Errorf("%s: %w", strings.Join(path, "."), err)
}

// keyPath appends the parts of a (possibly dotted) key to path.
func keyPath(path []string, it unstable.Iterator) []string {
	for it.Next() {
		path = append(path, string(it.Node().Data))
	}
	return path
}
