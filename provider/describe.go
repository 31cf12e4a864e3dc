package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Field describes one field of a provider's credential or bootstrap struct,
// as GET /api/v1/providers shows it.
type Field struct {
	Name     string   `json:"name"`  // the JSON key
	Label    string   `json:"label"` // human label from the kloud tag
	Type     string   `json:"type"`  // string, integer, number, boolean, enum, list, object
	Secret   bool     `json:"secret"`
	Required bool     `json:"required"`
	Enum     []string `json:"enum,omitempty"`
}

// Enumer is implemented by a field type that lists its allowed values; such a
// field is described as an enum and decoding refuses any other value.
type Enumer interface {
	Values() []string
}

// Description is what GET /api/v1/providers answers for one provider.
type Description struct {
	Name         string  `json:"name"`
	ResourceType string  `json:"resource_type"`
	Credential   []Field `json:"credential"`
	Bootstrap    []Field `json:"bootstrap,omitempty"`
}

// Describe builds p's description from its schema structs.
func (p *Provider) Describe() (*Description, error) {
	d := &Description{Name: p.Name, ResourceType: p.TerraformType()}
	var err error
	if d.Credential, err = DescribeStruct(p.Schema.NewCredential()); err != nil {
		return nil, fmt.Errorf("describe %s credential: %w", p.Name, err)
	}
	if p.Schema.NewBootstrap != nil {
		if d.Bootstrap, err = DescribeStruct(p.Schema.NewBootstrap()); err != nil {
			return nil, fmt.Errorf("describe %s bootstrap: %w", p.Name, err)
		}
	}
	return d, nil
}

var enumerType = reflect.TypeFor[Enumer]()

// DescribeStruct describes the exported fields of the struct v points to.
// Tags read: json (the key; "-" skips; omitempty makes it optional) and
// kloud ("Label,secret,optional,required").
func DescribeStruct(v any) ([]Field, error) {
	t := reflect.TypeOf(v)
	if t == nil {
		return nil, errors.New("nil schema value")
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("schema value is %s, want a struct", t.Kind())
	}
	var fields []Field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, omitempty, skip := jsonName(sf)
		if skip {
			continue
		}
		f := Field{Name: name, Label: sf.Name, Required: !omitempty, Type: kindName(sf.Type)}
		if tag, ok := sf.Tag.Lookup("kloud"); ok {
			parts := strings.Split(tag, ",")
			if parts[0] != "" {
				f.Label = parts[0]
			}
			for _, opt := range parts[1:] {
				switch strings.TrimSpace(opt) {
				case "secret":
					f.Secret = true
				case "optional":
					f.Required = false
				case "required":
					f.Required = true
				case "":
				default:
					return nil, fmt.Errorf("field %s: unknown kloud tag option %q", sf.Name, opt)
				}
			}
		}
		if sf.Type.Implements(enumerType) {
			f.Type = "enum"
			f.Enum = reflect.Zero(sf.Type).Interface().(Enumer).Values()
		}
		fields = append(fields, f)
	}
	return fields, nil
}

func jsonName(sf reflect.StructField) (name string, omitempty, skip bool) {
	tag := sf.Tag.Get("json")
	if tag == "-" {
		return "", false, true
	}
	parts := strings.Split(tag, ",")
	name = parts[0]
	if name == "" {
		name = sf.Name
	}
	return name, slices.Contains(parts[1:], "omitempty") || slices.Contains(parts[1:], "omitzero"), false
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "list"
	default:
		return "object"
	}
}

// ErrInvalidField is the sentinel of every FieldError.
var ErrInvalidField = errors.New("invalid field")

// FieldError names the field of a schema value that was wrong.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %q: %s", e.Field, e.Message) }

// Unwrap lets errors.Is match ErrInvalidField.
func (e *FieldError) Unwrap() error { return ErrInvalidField }

// Decode reads data into the value newValue returns, strictly: an unknown
// field, a missing required field, a value of the wrong type or outside an
// enum is a *FieldError naming the field. A value implementing Validator is
// then checked with Valid, whose error is returned as is when it is already a
// *FieldError and wrapped otherwise.
func Decode(newValue func() any, data []byte) (any, error) {
	v := newValue()
	fields, err := DescribeStruct(v)
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}")
	}
	if err := json.Unmarshal(data, &raw); err != nil || raw == nil {
		return nil, &FieldError{Field: "data", Message: "must be a JSON object"}
	}
	known := make(map[string]Field, len(fields))
	for _, f := range fields {
		known[f.Name] = f
	}
	for key := range raw {
		if _, ok := known[key]; !ok {
			names := make([]string, 0, len(fields))
			for _, f := range fields {
				names = append(names, f.Name)
			}
			return nil, &FieldError{Field: key, Message: "unknown field; known: " + strings.Join(names, ", ")}
		}
	}
	rv := reflect.ValueOf(v).Elem()
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		sf := rt.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, skip := jsonName(sf)
		if skip {
			continue
		}
		f := known[name]
		msg, present := raw[name]
		if !present || string(bytes.TrimSpace(msg)) == "null" {
			if f.Required {
				return nil, &FieldError{Field: name, Message: "is required"}
			}
			continue
		}
		if err := json.Unmarshal(msg, rv.Field(i).Addr().Interface()); err != nil {
			return nil, &FieldError{Field: name, Message: "must be " + article(f.Type)}
		}
		if f.Required && rv.Field(i).IsZero() {
			return nil, &FieldError{Field: name, Message: "is required"}
		}
		if f.Enum != nil && !rv.Field(i).IsZero() {
			s := fmt.Sprint(rv.Field(i).Interface())
			if !slices.Contains(f.Enum, s) {
				return nil, &FieldError{Field: name, Message: fmt.Sprintf("%q is not one of %s", s, strings.Join(f.Enum, ", "))}
			}
		}
	}
	if val, ok := v.(Validator); ok {
		if err := val.Valid(); err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				return nil, err
			}
			return nil, &FieldError{Field: "data", Message: err.Error()}
		}
	}
	return v, nil
}

func article(typ string) string {
	switch typ {
	case "integer", "enum", "object":
		return "an " + typ
	case "list":
		return "a list"
	}
	return "a " + typ
}
