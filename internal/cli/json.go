package cli

import (
	"encoding/json"
	"io"
	"reflect"
)

// WriteJSON writes v as indented JSON, with every nil slice reachable
// through v's structs and pointers written as [] rather than null: a
// list in the documented --json output is always a list, even empty.
func WriteJSON(w io.Writer, v any) error {
	if v != nil {
		p := reflect.New(reflect.TypeOf(v))
		p.Elem().Set(reflect.ValueOf(v))
		fillNilSlices(p.Elem(), 0)
		v = p.Elem().Interface()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func fillNilSlices(v reflect.Value, depth int) {
	if depth > 32 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			fillNilSlices(v.Elem(), depth+1)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillNilSlices(v.Field(i), depth+1)
			}
		}
	case reflect.Slice:
		if v.IsNil() {
			if v.CanSet() && v.Type().Elem().Kind() != reflect.Uint8 { // []byte is base64, not a list
				v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			}
			return
		}
		for i := range v.Len() {
			fillNilSlices(v.Index(i), depth+1)
		}
	case reflect.Array:
		for i := range v.Len() {
			fillNilSlices(v.Index(i), depth+1)
		}
	}
}
