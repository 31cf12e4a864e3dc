package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/kloud/kloud/stack"
)

// Region is an Enumer: its fields are described as enums and decoding
// refuses other values.
type Region string

func (Region) Values() []string { return []string{"eu-west-1", "us-east-1"} }

type testCredential struct {
	AccessKey string       `json:"access_key" kloud:"Access Key ID"`
	SecretKey stack.Secret `json:"secret_key" kloud:"Secret Access Key,secret"`
	Region    Region       `json:"region" kloud:"Region"`
	Port      int          `json:"port,omitempty"`
	Debug     bool         `json:"debug" kloud:",optional"`
	Zones     []string     `json:"zones,omitempty" kloud:"Zones"`
	Ratio     float64      `json:"ratio,omitempty" kloud:"Ratio,required"`
	Ignored   string       `json:"-"`
	internal  string
}

// Valid refuses a port outside 1..65535 (naming the field) and a debug
// credential in us-east-1 (a rule across fields).
func (c *testCredential) Valid() error {
	if c.Port < 0 || c.Port > 65535 {
		return &FieldError{Field: "port", Message: "must be between 1 and 65535"}
	}
	if c.Debug && c.Region == "us-east-1" {
		return errors.New("debug is not allowed in us-east-1")
	}
	return nil
}

type testBootstrap struct {
	Network string       `json:"network"`
	KeyID   stack.Secret `json:"key_id,omitempty"`
}

type testMetadata struct {
	Address string `json:"address"`
}

func TestDescribeStruct(t *testing.T) {
	got, err := DescribeStruct(&testCredential{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Field{
		{Name: "access_key", Label: "Access Key ID", Type: "string", Required: true},
		{Name: "secret_key", Label: "Secret Access Key", Type: "string", Secret: true, Required: true},
		{Name: "region", Label: "Region", Type: "enum", Required: true, Enum: []string{"eu-west-1", "us-east-1"}},
		{Name: "port", Label: "Port", Type: "integer"},
		{Name: "debug", Label: "Debug", Type: "boolean"},
		{Name: "zones", Label: "Zones", Type: "list"},
		{Name: "ratio", Label: "Ratio", Type: "number", Required: true},
	}
	if !reflect.DeepEqual(got, want) {
		gb, _ := json.MarshalIndent(got, "", " ")
		t.Errorf("DescribeStruct =\n%s", gb)
	}
	// A value works as well as a pointer.
	if byValue, _ := DescribeStruct(testCredential{}); !reflect.DeepEqual(byValue, want) {
		t.Error("DescribeStruct of a value differs from that of a pointer")
	}
}

func TestDescribeStructErrors(t *testing.T) {
	type badOption struct {
		A string `kloud:"A,secrett"`
	}
	for _, v := range []any{nil, 3, "s", &badOption{}} {
		if _, err := DescribeStruct(v); err == nil {
			t.Errorf("DescribeStruct(%T) succeeded", v)
		}
	}
}

func TestDecode(t *testing.T) {
	valid := `"access_key": "AK", "secret_key": "SK", "region": "eu-west-1", "ratio": 0.5`
	tests := []struct {
		name  string
		data  string
		field string // the field the *FieldError names; "" for success
		msg   string
	}{
		{"valid", `{` + valid + `}`, "", ""},
		{"valid with optional", `{` + valid + `, "port": 22, "debug": true, "zones": ["a"]}`, "", ""},
		{"unknown field", `{` + valid + `, "bogus": 1}`, "bogus", "unknown field; known: access_key, secret_key"},
		{"missing required", `{"secret_key": "SK", "region": "eu-west-1", "ratio": 1}`, "access_key", "is required"},
		{"required but empty", `{` + strings.Replace(valid, `"AK"`, `""`, 1) + `}`, "access_key", "is required"},
		{"required but null", `{` + strings.Replace(valid, `"AK"`, `null`, 1) + `}`, "access_key", "is required"},
		{"wrong type string", `{` + strings.Replace(valid, `"AK"`, `12`, 1) + `}`, "access_key", "must be a string"},
		{"wrong type integer", `{` + valid + `, "port": "22"}`, "port", "must be an integer"},
		{"wrong type boolean", `{` + valid + `, "debug": "yes"}`, "debug", "must be a boolean"},
		{"wrong type list", `{` + valid + `, "zones": "a"}`, "zones", "must be a list"},
		{"enum violation", `{` + strings.Replace(valid, `"eu-west-1"`, `"mars-1"`, 1) + `}`, "region", `"mars-1" is not one of eu-west-1, us-east-1`},
		{"Valid field error", `{` + valid + `, "port": 70000}`, "port", "between 1 and 65535"},
		{"Valid plain error", `{` + strings.Replace(valid, `"eu-west-1"`, `"us-east-1"`, 1) + `, "debug": true}`, "data", "debug is not allowed"},
		{"not an object", `[1, 2]`, "data", "must be a JSON object"},
		{"not JSON", `{`, "data", "must be a JSON object"},
		{"null", `null`, "data", "must be a JSON object"},
		{"empty is an empty object", ``, "access_key", "is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Decode(func() any { return &testCredential{} }, []byte(tt.data))
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				c := v.(*testCredential)
				if c.AccessKey != "AK" || c.SecretKey.Reveal() != "SK" || c.Region != "eu-west-1" {
					t.Errorf("decoded %+v", c)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v (%T), want a *FieldError", err, err)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Message, tt.msg) {
				t.Errorf("FieldError{%q, %q}; want field %q containing %q", fe.Field, fe.Message, tt.field, tt.msg)
			}
			if !errors.Is(err, ErrInvalidField) {
				t.Error("error does not match ErrInvalidField")
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.field)) {
				t.Errorf("message %q does not name the field", err)
			}
		})
	}
}

// TestSecretMasking checks that a secret inside a schema value never shows
// when the value is printed or encoded.
func TestSecretMasking(t *testing.T) {
	const raw = "wJalrXUtnFEMI-K7MDENG"
	c := &testCredential{AccessKey: "AKIA", SecretKey: stack.Secret(raw), Region: "eu-west-1"}
	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		outputs["struct "+verb] = fmt.Sprintf(verb, *c)
		outputs["pointer "+verb] = fmt.Sprintf(verb, c)
		outputs["field "+verb] = fmt.Sprintf(verb, c.SecretKey)
	}
	outputs["Sprint"] = fmt.Sprint(c.SecretKey, *c)
	outputs["Println"] = fmt.Sprintln(c.SecretKey)
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs["json"] = string(b)
	hexRaw := fmt.Sprintf("%x", raw)
	for name, out := range outputs {
		if strings.Contains(out, raw) || strings.Contains(out, hexRaw) {
			t.Errorf("%s leaks the secret: %s", name, out)
		}
	}
	if !strings.Contains(outputs["json"], `"secret_key":"********"`) {
		t.Errorf("json = %s", outputs["json"])
	}
	if !strings.Contains(outputs["struct %+v"], "SecretKey:********") {
		t.Errorf("%%+v = %s", outputs["struct %+v"])
	}
	// Decoding keeps the value.
	var back testCredential
	if err := json.Unmarshal([]byte(`{"secret_key":"`+raw+`"}`), &back); err != nil || back.SecretKey.Reveal() != raw {
		t.Errorf("decoded secret = %q, %v", back.SecretKey.Reveal(), err)
	}
	if stack.Secret("").String() != "" {
		t.Error("an empty secret prints a mask")
	}
}
