package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a configuration file, at a position in it.
//
// Line and Col are 1-based; Col counts characters, not bytes. Path names
// the setting with the YAML keys from the top of the file, list indexes in
// brackets and map keys quoted in brackets, for example
// registry.users[0].passwordHash or registry.upstreams["mcr.microsoft.com"].url.
// Path is empty for a problem with the file as a whole (its size, its YAML
// syntax).
type Error struct {
	File      string
	Line, Col int
	Path, Msg string
}

// String renders the error as file:line:col: path: message.
func (e Error) String() string {
	if e.Path == "" {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.File, e.Line, e.Col, e.Path, e.Msg)
}

// Error implements error, so that one Error can be wrapped on its own.
func (e Error) Error() string { return e.String() }

// Errors is every problem found in one file, sorted by position. Load and
// Parse return it as *Errors; it is never empty when returned.
type Errors []Error

// Error joins the errors, one per line.
func (es *Errors) Error() string {
	lines := make([]string, len(*es))
	for i, e := range *es {
		lines[i] = e.String()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives the single errors to errors.Is and errors.As.
func (es *Errors) Unwrap() []error {
	out := make([]error, len(*es))
	for i, e := range *es {
		out[i] = e
	}
	return out
}

// sortByPosition orders errors by line then column, keeping the order in
// which they were found for errors at the same place.
func (es Errors) sortByPosition() {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Col < es[j].Col
	})
}
