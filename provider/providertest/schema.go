package providertest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
)

var (
	localNameRe    = regexp.MustCompile(`^[a-z][a-z0-9]*$`)
	resourceNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// ruleRegistered: the provider is in the registry under its name (the
// binary registers it at init), and a second registration under the same
// name is refused.
func ruleRegistered(c *check) {
	got, err := provider.Get(c.p.Name)
	if err != nil {
		c.stop("provider.Get(%q): %v; the provider package must call provider.MustRegister in its init", c.p.Name, err)
	}
	if got.TerraformType() != c.p.TerraformType() || got.Source != c.p.Source {
		c.failf("the registered %q has resource type %q and source %q; the provider under test has %q and %q", c.p.Name, got.TerraformType(), got.Source, c.p.TerraformType(), c.p.Source)
	}
	dup := *c.p
	if err := provider.Register(&dup); !errors.Is(err, provider.ErrDuplicate) {
		c.failf("registering %q a second time: err = %v, want provider.ErrDuplicate", c.p.Name, err)
	}
}

// ruleResourceType: the provider names a Terraform provider (local name
// and source) and a machine resource type that no other provider claims,
// and has every constructor and schema function Kloud calls.
func ruleResourceType(c *check) {
	p := c.p
	if !localNameRe.MatchString(p.Name) {
		c.failf("Name %q is not a Terraform local name (lower-case letters and digits, starting with a letter)", p.Name)
	}
	if !resourceNameRe.MatchString(p.ResourceName) {
		c.failf("ResourceName %q is not a resource type suffix (lower-case letters, digits and _, e.g. \"instance\" for aws_instance)", p.ResourceName)
	}
	if p.Source == "" {
		c.failf("Source is empty; it is the Terraform provider's source address (e.g. \"hashicorp/aws\"), the only provider its templates may use")
	}
	for _, other := range provider.All() {
		if other.Name != p.Name && other.TerraformType() == p.TerraformType() {
			c.failf("resource type %s is also provider %q's", p.TerraformType(), other.Name)
		}
	}
	switch {
	case p.Machine == nil:
		c.failf("Machine constructor is nil")
	case p.Stack == nil:
		c.failf("Stack constructor is nil")
	case p.Schema == nil:
		c.failf("Schema is nil")
	case p.Schema.NewCredential == nil:
		c.failf("Schema.NewCredential is nil")
	case p.Schema.NewMetadata == nil:
		c.failf("Schema.NewMetadata is nil; Kloud stores each machine's metadata in that type")
	}
}

// schemaValues are the schema's credential and bootstrap values, by kind.
func (c *check) schemaValues() map[string]any {
	out := map[string]any{}
	if c.p.Schema == nil || c.p.Schema.NewCredential == nil {
		c.stop("the provider has no Schema.NewCredential")
	}
	out["credential"] = c.p.Schema.NewCredential()
	if c.p.Schema.NewBootstrap != nil {
		out["bootstrap"] = c.p.Schema.NewBootstrap()
	}
	return out
}

// ruleLabels: every credential and bootstrap field has a human label in
// its kloud tag, and the structs describe themselves.
func ruleLabels(c *check) {
	for _, kind := range []string{"credential", "bootstrap"} {
		v, ok := c.schemaValues()[kind]
		if !ok {
			continue
		}
		fields, err := provider.DescribeStruct(v)
		if err != nil {
			c.failf("describe the %s struct %T: %v", kind, v, err)
			continue
		}
		if kind == "credential" && len(fields) == 0 {
			c.failf("the credential struct %T has no exported fields to describe", v)
		}
		t := reflect.Indirect(reflect.ValueOf(v)).Type()
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if !sf.IsExported() || sf.Tag.Get("json") == "-" {
				continue
			}
			label, _, _ := strings.Cut(sf.Tag.Get("kloud"), ",")
			if strings.TrimSpace(label) == "" {
				c.failf("%s field %s.%s has no label: give it a kloud:\"Label\" tag (what a user reads in the form)", kind, t.Name(), sf.Name)
			}
		}
	}
}

// secretName is a field name that holds a secret whatever its type.
var secretName = regexp.MustCompile(`(?i)secret|token|password|passwd|private`)

// ruleSecrets: fields named like secrets are described as secret, and a
// secret field's value shows neither when the struct is printed nor, for
// a credential, when it is encoded.
func ruleSecrets(c *check) {
	const probe = "conformance-probe-secret-value-7f3a"
	for kind, v := range c.schemaValues() {
		fields, err := provider.DescribeStruct(v)
		if err != nil {
			c.failf("describe the %s struct %T: %v", kind, v, err)
			continue
		}
		rv := reflect.ValueOf(v).Elem()
		for _, f := range fields {
			if secretName.MatchString(f.Name) && !f.Secret && !strings.Contains(f.Name, "_id") {
				c.failf("%s field %q looks like a secret but is not described as one: tag it kloud:\"%s,secret\" or make it a stack.Secret", kind, f.Name, f.Label)
			}
			if !f.Secret {
				continue
			}
			fv, ok := fieldByJSON(rv, f.Name)
			if !ok || fv.Kind() != reflect.String {
				c.failf("%s field %q is secret but not a string type; Kloud masks secrets as strings", kind, f.Name)
				continue
			}
			fresh := reflect.New(rv.Type())
			ff, _ := fieldByJSON(fresh.Elem(), f.Name)
			ff.SetString(probe)
			for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
				if strings.Contains(fmt.Sprintf(verb, fresh.Interface()), probe) {
					c.failf("%s field %q prints its value with %s; make it a stack.Secret (or a type whose String and GoString mask it)", kind, f.Name, verb)
				}
			}
			if kind == "credential" {
				b, _ := json.Marshal(fresh.Interface())
				if strings.Contains(string(b), probe) {
					c.failf("credential field %q is encoded in clear by json.Marshal; make it a stack.Secret", f.Name)
				}
			}
		}
	}
}

// fieldByJSON returns the field of struct value rv with JSON name name.
func fieldByJSON(rv reflect.Value, name string) (reflect.Value, bool) {
	t := rv.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		n, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if n == "" {
			n = sf.Name
		}
		if n == name {
			return rv.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// ruleEnums: an enum field lists its values, the working credential's value
// is one of them, and a value outside them is refused naming the field.
func ruleEnums(c *check) {
	for kind, v := range c.schemaValues() {
		fields, err := provider.DescribeStruct(v)
		if err != nil {
			c.failf("describe the %s struct %T: %v", kind, v, err)
			continue
		}
		for _, f := range fields {
			if f.Type != "enum" {
				continue
			}
			if len(f.Enum) == 0 {
				c.failf("%s field %q is an enum with no values (its type's Values returns none)", kind, f.Name)
				continue
			}
			if kind != "credential" || c.env.Credential == "" {
				continue
			}
			var data map[string]any
			if err := json.Unmarshal([]byte(c.env.Credential), &data); err != nil {
				c.stop("Env.Credential is not a JSON object: %v", err)
			}
			data[f.Name] = "not-one-of-the-values"
			b, _ := json.Marshal(data)
			_, err := provider.Decode(c.p.Schema.NewCredential, b)
			if !namesField(err, f.Name) {
				c.failf("a credential with %s %q outside the enum: err = %v, want a *provider.FieldError naming %q", f.Name, "not-one-of-the-values", err, f.Name)
			}
		}
	}
}

// namesField reports whether err is a *provider.FieldError naming field.
func namesField(err error, field string) bool {
	var fe *provider.FieldError
	return errors.As(err, &fe) && fe.Field == field
}

// ruleRoundTrip: the working credential and the bootstrap decode, encode
// under their described names and decode again to the same value; a
// machine's metadata encodes and decodes to the same value.
func ruleRoundTrip(c *check) {
	c.need(c.env.Credential != "", "Credential", "the data of a credential the provider accepts")
	type value struct {
		kind, data string
		newValue   func() any
	}
	values := []value{{"credential", c.env.Credential, c.p.Schema.NewCredential}}
	if c.p.Schema.NewBootstrap != nil {
		c.need(c.env.Bootstrap != "", "Bootstrap", "the stored outputs of the working credential's bootstrap")
		values = append(values, value{"bootstrap", c.env.Bootstrap, c.p.Schema.NewBootstrap})
	}
	for _, v := range values {
		first, err := provider.Decode(v.newValue, []byte(v.data))
		if err != nil {
			c.failf("decode the %s: %s", v.kind, callErr("Valid", err))
			continue
		}
		again, err := reencode(first)
		if err != nil {
			c.failf("encode the %s under its described names: %v", v.kind, err)
			continue
		}
		second, err := provider.Decode(v.newValue, again)
		if err != nil {
			c.failf("decode the %s encoded under its described names: %v", v.kind, err)
			continue
		}
		if !reflect.DeepEqual(first, second) {
			c.failf("the %s changes when encoded under its described names and decoded again:\nfirst  %+v\nsecond %+v", v.kind, first, second)
		}
	}
	if c.p.Schema.NewMetadata != nil {
		md := c.p.Schema.NewMetadata(&stack.Machine{ID: MachineID, Provider: c.p.Name})
		c.metadataRoundTrips("a new machine's metadata", md)
	}
}

// reencode encodes v's described fields by name, secrets revealed, as a
// user (or Terraform's outputs) would give them.
func reencode(v any) ([]byte, error) {
	fields, err := provider.DescribeStruct(v)
	if err != nil {
		return nil, err
	}
	rv := reflect.Indirect(reflect.ValueOf(v))
	out := map[string]any{}
	for _, f := range fields {
		fv, ok := fieldByJSON(rv, f.Name)
		if !ok {
			return nil, fmt.Errorf("described field %q has no struct field", f.Name)
		}
		if fv.IsZero() && !f.Required {
			continue
		}
		if fv.Kind() == reflect.String {
			out[f.Name] = fv.String() // a stack.Secret revealed, an enum as its string
			continue
		}
		out[f.Name] = fv.Interface()
	}
	return json.Marshal(out)
}

// metadataRoundTrips checks that md, as Kloud stores it (JSON), decodes
// to the same value through the provider's DecodeMetadata.
func (c *check) metadataRoundTrips(what string, md any) {
	c.t.Helper()
	if md == nil {
		c.failf("%s is nil; return the provider's metadata type (Schema.NewMetadata)", what)
		return
	}
	want := reflect.TypeOf(c.p.Schema.NewMetadata(&stack.Machine{}))
	if reflect.TypeOf(md) != want {
		c.failf("%s is a %T, want %v (Schema.NewMetadata's type)", what, md, want)
		return
	}
	b, err := json.Marshal(md)
	if err != nil {
		c.failf("encode %s: %v", what, err)
		return
	}
	back, err := c.p.DecodeMetadata(&stack.Machine{ID: MachineID, Provider: c.p.Name, Metadata: b})
	if err != nil {
		c.failf("decode %s (%s): %v", what, b, err)
		return
	}
	if !reflect.DeepEqual(md, back) {
		c.failf("%s changes when stored and read back:\nstored %s\nread   %+v", what, b, back)
	}
}

// ruleAcceptsWorking: the working, refused and unreachable credentials are
// all well-formed.
func ruleAcceptsWorking(c *check) {
	c.need(c.env.Credential != "", "Credential", "the data of a credential the provider accepts")
	for _, tc := range []struct{ name, data string }{{"Credential", c.env.Credential}, {"Refused", c.env.Refused}, {"Unreachable", c.env.Unreachable}} {
		if tc.data == "" {
			continue
		}
		if _, err := provider.Decode(c.p.Schema.NewCredential, []byte(tc.data)); err != nil {
			c.failf("Env.%s does not decode: %s", tc.name, callErr("Valid", err))
		}
	}
}

// ruleRefusesEmpty: an empty credential is refused naming a required
// field (unless every field is optional, when it must be accepted).
func ruleRefusesEmpty(c *check) {
	fields, err := provider.DescribeStruct(c.p.Schema.NewCredential())
	if err != nil {
		c.stop("describe the credential: %v", err)
	}
	var required []string
	for _, f := range fields {
		if f.Required {
			required = append(required, f.Name)
		}
	}
	_, err = provider.Decode(c.p.Schema.NewCredential, []byte(`{}`))
	if len(required) == 0 {
		if err != nil {
			c.failf("every credential field is optional, yet an empty credential is refused: %s", callErr("Valid", err))
		}
		return
	}
	var fe *provider.FieldError
	if !errors.As(err, &fe) || !slices.Contains(required, fe.Field) {
		c.failf("an empty credential: err = %v, want a *provider.FieldError naming one of the required fields %s", err, strings.Join(required, ", "))
	}
	if val, ok := c.p.Schema.NewCredential().(provider.Validator); ok {
		err := val.Valid()
		if !errors.As(err, &fe) || !slices.Contains(required, fe.Field) {
			c.failf("Valid() of a zero credential: err = %v, want a *provider.FieldError naming one of the required fields %s", err, strings.Join(required, ", "))
		}
	}
}

// ruleRefusesMalformed: each malformed credential the test gives is
// refused naming its field, and so is a value of the wrong JSON type for
// every field.
func ruleRefusesMalformed(c *check) {
	c.need(len(c.env.Malformed) > 0, "Malformed", "credential data Valid must refuse, each with the field it must name")
	for _, m := range c.env.Malformed {
		_, err := provider.Decode(c.p.Schema.NewCredential, []byte(m.Data))
		if !namesField(err, m.Field) {
			c.failf("credential %s: err = %v, want a *provider.FieldError naming %q", m.Data, err, m.Field)
		}
	}
	fields, err := provider.DescribeStruct(c.p.Schema.NewCredential())
	if err != nil {
		c.stop("describe the credential: %v", err)
	}
	for _, f := range fields {
		wrong := `{"` + f.Name + `": {"not": "a value"}}`
		if f.Type == "object" {
			continue
		}
		_, err := provider.Decode(c.p.Schema.NewCredential, []byte(wrong))
		var fe *provider.FieldError
		if !errors.As(err, &fe) {
			c.failf("credential %s: err = %v, want a *provider.FieldError", wrong, err)
		}
	}
}
