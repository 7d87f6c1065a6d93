package config

import (
	"reflect"
	"testing"
)

// TestFileTypesFollowTheProtocol walks every type reachable from File and
// checks what the decoder relies on, so that a section type replaced by a
// domain package's Config cannot silently break decoding: every field type
// is decodable, SetDefaults has a pointer receiver (a value receiver would
// set the defaults on a copy), and every section has a Validate method.
func TestFileTypesFollowTheProtocol(t *testing.T) {
	d := newDecoder("")
	seen := make(map[reflect.Type]bool)
	var walk func(t reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		if seen[typ] {
			return
		}
		seen[typ] = true
		if typ.Kind() != reflect.Pointer && typ.Kind() != reflect.Interface {
			if _, ok := typ.MethodByName("SetDefaults"); ok {
				t.Errorf("%s (%s) has SetDefaults with a value receiver; it must take a pointer", path, typ)
			}
		}
		switch {
		case typ == durationType, reflect.PointerTo(typ).Implements(textUnmarshalerType):
			return
		}
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice:
			walk(typ.Elem(), path+"[]")
		case reflect.Map:
			if typ.Key().Kind() != reflect.String {
				t.Errorf("%s: map key type %s is not a string", path, typ.Key())
			}
			walk(typ.Elem(), path+"[]")
		case reflect.Struct:
			for _, f := range d.fieldsOf(typ) {
				walk(typ.FieldByIndex(f.index).Type, fieldPath(path, f.name))
			}
		case reflect.String, reflect.Bool, reflect.Float32, reflect.Float64,
			reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		default:
			t.Errorf("%s: Go type %s cannot be decoded", path, typ)
		}
	}
	ft := reflect.TypeFor[File]()
	walk(ft, "")
	for _, f := range d.fieldsOf(ft) {
		typ := ft.FieldByIndex(f.index).Type
		if f.name == "version" {
			continue
		}
		if !reflect.PointerTo(typ).Implements(reflect.TypeFor[validator]()) {
			t.Errorf("section %s (%s) has no Validate(report func(path, msg string)) method", f.name, typ)
		}
	}
}
