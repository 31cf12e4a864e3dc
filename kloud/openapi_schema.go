package kloud

import (
	"encoding/json"
	"reflect"
	"strings"
	"time"
)

// schemas turns Go types (the client SDK's, which the handlers encode)
// into OpenAPI 3.1 schemas (JSON Schema 2020-12), each named struct once
// under components/schemas, so the description's bodies cannot drift from
// the types the API speaks.
type schemas struct {
	defs map[string]any
	// names maps each struct type to its component name.
	names map[reflect.Type]string
}

func newSchemas() *schemas {
	return &schemas{defs: map[string]any{}, names: map[reflect.Type]string{}}
}

var (
	timeType       = reflect.TypeFor[time.Time]()
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	marshalerType  = reflect.TypeFor[json.Marshaler]()
)

// of returns the schema of t: a $ref for named structs.
func (s *schemas) of(t reflect.Type) map[string]any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawMessageType:
		return map[string]any{} // any JSON value
	case t.Kind() != reflect.Pointer && t.Implements(marshalerType):
		// A type that encodes itself (a state name, a decimal string):
		// its zero value's encoding tells which JSON type it is.
		b, err := json.Marshal(reflect.Zero(t).Interface())
		if err == nil && len(b) > 0 {
			switch b[0] {
			case '"':
				return map[string]any{"type": "string"}
			case '{':
				return map[string]any{"type": "object"}
			case '[':
				return map[string]any{"type": "array"}
			case 't', 'f':
				return map[string]any{"type": "boolean"}
			default:
				return map[string]any{"type": "number"}
			}
		}
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return map[string]any{"anyOf": []any{s.of(t.Elem()), map[string]any{"type": "null"}}}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		// A nil slice encodes as null.
		return map[string]any{"type": []any{"array", "null"}, "items": s.of(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": []any{"object", "null"}, "additionalProperties": s.of(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		return s.ref(t)
	}
	return map[string]any{}
}

// ref names a struct under components/schemas and refers to it.
func (s *schemas) ref(t reflect.Type) map[string]any {
	name, ok := s.names[t]
	if !ok {
		name = t.Name()
		if name == "" {
			return s.object(t)
		}
		for taken := true; taken; {
			taken = false
			for other, n := range s.names {
				if n == name && other != t {
					name, taken = pkgName(t)+name, true
					break
				}
			}
		}
		s.names[t] = name
		s.defs[name] = map[string]any{} // placeholder: a type may refer to itself
		s.defs[name] = s.object(t)
	}
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

func pkgName(t reflect.Type) string {
	p := t.PkgPath()
	p = p[strings.LastIndex(p, "/")+1:]
	if p == "" {
		return ""
	}
	return strings.ToUpper(p[:1]) + p[1:]
}

// object is a struct's schema: its JSON fields as encoding/json sees
// them; a field without omitempty or omitzero is required.
func (s *schemas) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []any
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" || !f.IsExported() && !f.Anonymous {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					walk(ft)
					continue
				}
			}
			if name == "" {
				name = f.Name
			}
			props[name] = s.of(f.Type)
			if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
				required = append(required, name)
			}
		}
	}
	walk(t)
	out := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}
