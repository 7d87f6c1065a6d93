package config

import (
	"fmt"
	"reflect"
)

// validator is implemented by each section's Config. Validate calls report
// once per problem, with the path of the offending setting relative to the
// section ("users[0].passwordHash", "" for the section as a whole) and a
// message saying what is wrong and what is accepted. Validate sees the
// decoded values with defaults applied and relative paths resolved; it does
// no I/O.
type validator interface {
	Validate(report func(path, msg string))
}

// validate checks the version and runs the Validate method of every
// section of f, prefixing the paths they report with the section's key.
func (d *decoder) validate(f *File) {
	if _, ok := d.pos["version"]; !ok || f.Version == 0 {
		d.report("version", fmt.Sprintf("is required; add version: %d at the top of the file", Version))
	} else if f.Version != Version {
		d.report("version", fmt.Sprintf("unsupported version %d; this airlock reads version %d", f.Version, Version))
	}
	v := reflect.ValueOf(f).Elem()
	d.checkListens(v, "")
	for _, fd := range d.fieldsOf(v.Type()) {
		s, ok := v.FieldByIndex(fd.index).Addr().Interface().(validator)
		if !ok {
			continue
		}
		prefix := fd.name
		s.Validate(func(path, msg string) { d.report(joinPath(prefix, path), msg) })
	}
}

// checkListens reports every string field tagged config:"listen" that is
// not empty and not a valid host:port, so domain packages need not repeat
// the check (they cannot import this package).
func (d *decoder) checkListens(v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			d.checkListens(v.Elem(), path)
		}
	case reflect.Slice:
		for i := range v.Len() {
			d.checkListens(v.Index(i), indexPath(path, i))
		}
	case reflect.Struct:
		if !plainStruct(v.Type()) {
			return
		}
		for _, f := range d.fieldsOf(v.Type()) {
			fv := v.FieldByIndex(f.index)
			p := fieldPath(path, f.name)
			if f.listen && fv.Kind() == reflect.String {
				if msg := checkListen(fv.String()); msg != "" {
					d.report(p, msg)
				}
				continue
			}
			d.checkListens(fv, p)
		}
	}
}
