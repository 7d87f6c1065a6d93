package config

import (
	"path/filepath"
	"reflect"
)

// resolvePaths joins every relative file path in v to dir (which may itself
// be relative) and cleans every path; dir "" leaves relative paths relative
// to the working directory. File paths are the string and []string fields
// tagged config:"path", anywhere in v; empty paths stay empty (not set).
func (d *decoder) resolvePaths(v reflect.Value, dir string) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			d.resolvePaths(v.Elem(), dir)
		}
	case reflect.Slice:
		for i := range v.Len() {
			d.resolvePaths(v.Index(i), dir)
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			ev := reflect.New(v.Type().Elem()).Elem()
			ev.Set(it.Value())
			d.resolvePaths(ev, dir)
			v.SetMapIndex(it.Key(), ev)
		}
	case reflect.Struct:
		if !plainStruct(v.Type()) {
			return
		}
		for _, f := range d.fieldsOf(v.Type()) {
			fv := v.FieldByIndex(f.index)
			switch {
			case !f.path:
				d.resolvePaths(fv, dir)
			case fv.Kind() == reflect.String:
				fv.SetString(resolvePath(fv.String(), dir))
			case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
				for i := range fv.Len() {
					e := fv.Index(i)
					e.SetString(resolvePath(e.String(), dir))
				}
			}
		}
	}
}

func resolvePath(p, dir string) string {
	if p == "" {
		return ""
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}
