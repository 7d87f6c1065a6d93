package config

import (
	_ "embed"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
)

//go:embed default.yaml
var defaultYAML []byte

// defaultName is the file name errors in the embedded default would carry.
const defaultName = "<embedded default.yaml>"

// Default returns the text of the embedded default configuration, used
// when no --config is given. Its relative paths are relative to the
// working directory.
func Default() []byte {
	return append([]byte(nil), defaultYAML...)
}

// Load reads, decodes and validates the configuration file at path; path
// "" loads the embedded default. Relative file paths in the file are made
// absolute against the file's directory; in the embedded default they are
// kept relative (to the working directory).
//
// A problem with the file's content is returned as *Errors listing every
// problem found; a failure to read the file is returned as a wrapped
// os error.
func Load(path string) (*File, error) {
	if path == "" {
		return parse(defaultName, defaultYAML, "")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	// One byte over the limit is enough to report the file as too large.
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	return parse(path, data, filepath.Dir(abs))
}

// Parse decodes and validates data as the configuration file name. name
// appears in error messages, and relative file paths in data are resolved
// against filepath.Dir(name). Errors are *Errors.
func Parse(name string, data []byte) (*File, error) {
	return parse(name, data, filepath.Dir(name))
}

// parse decodes data over the defaults, resolves relative paths against
// dir ("" keeps them relative to the working directory), and validates.
func parse(name string, data []byte, dir string) (*File, error) {
	f := new(File)
	v := reflect.ValueOf(f).Elem()
	d := newDecoder(name)
	if d.decodeDocument(data, v) {
		d.resolvePaths(v, dir)
		d.validate(f)
	}
	if errs := d.result(); errs != nil {
		return nil, errs
	}
	return f, nil
}
