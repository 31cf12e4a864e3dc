package digitalocean

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
)

// TestRegistered checks the registration Kloud finds at init.
func TestRegistered(t *testing.T) {
	p, err := provider.Get(Name)
	if err != nil {
		t.Fatal(err)
	}
	if p.TerraformType() != "digitalocean_droplet" || p.Source != "digitalocean/digitalocean" || p.Userdata != "user_data" || p.NoCloudInit {
		t.Errorf("provider = %+v", p)
	}
}

// TestDescribe checks what GET /api/v1/providers shows: the token and the
// bootstrap's private key secret, the region an enum of DO regions, the
// endpoint optional.
func TestDescribe(t *testing.T) {
	d, err := Provider().Describe()
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "digitalocean" || d.ResourceType != "digitalocean_droplet" {
		t.Errorf("description = %+v", d)
	}
	byName := func(fs []provider.Field) map[string]provider.Field {
		m := map[string]provider.Field{}
		for _, f := range fs {
			m[f.Name] = f
		}
		return m
	}
	cred := byName(d.Credential)
	if len(d.Credential) != 3 {
		t.Errorf("credential fields = %+v", d.Credential)
	}
	if f := cred["token"]; !f.Secret || !f.Required || f.Type != "string" {
		t.Errorf("token = %+v", f)
	}
	if f := cred["region"]; f.Secret || !f.Required || f.Type != "enum" {
		t.Errorf("region = %+v", f)
	}
	for _, r := range []string{"nyc1", "nyc3", "sfo3", "ams3", "sgp1", "lon1", "fra1", "tor1", "blr1", "syd1"} {
		if !slices.Contains(cred["region"].Enum, r) {
			t.Errorf("region enum %v lacks %s", cred["region"].Enum, r)
		}
	}
	if f := cred["endpoint"]; f.Secret || f.Required {
		t.Errorf("endpoint = %+v", f)
	}
	boot := byName(d.Bootstrap)
	for _, n := range []string{"key_id", "key_fingerprint", "vpc_uuid", "public_key"} {
		if f, ok := boot[n]; !ok || f.Secret {
			t.Errorf("bootstrap %s = %+v, %v", n, f, ok)
		}
	}
	if f := boot["private_key"]; !f.Secret {
		t.Errorf("private_key = %+v, want secret", f)
	}
}

// TestCredentialFields checks that a missing or malformed field is a
// *provider.FieldError naming it (the API answers it with 422).
func TestCredentialFields(t *testing.T) {
	tok := `"token":"` + testToken + `"`
	tests := []struct {
		name, data, field string
	}{
		{"valid", `{` + tok + `,"region":"nyc3"}`, ""},
		{"valid with endpoint", `{` + tok + `,"region":"ams3","endpoint":"http://127.0.0.1:8080"}`, ""},
		{"valid with path endpoint", `{` + tok + `,"region":"ams3","endpoint":"https://proxy.example.com/do/"}`, ""},
		{"legacy token", `{"token":"` + strings.Repeat("ab", 32) + `","region":"fra1"}`, ""},
		{"missing token", `{"region":"nyc3"}`, "token"},
		{"empty token", `{"token":"","region":"nyc3"}`, "token"},
		{"token with a space", `{"token":"dop_v1_abc def0123456789","region":"nyc3"}`, "token"},
		{"token too short", `{"token":"abc","region":"nyc3"}`, "token"},
		{"truncated personal token", `{"token":"dop_v1_0123456789abcdef","region":"nyc3"}`, "token"},
		{"token not a string", `{"token":42,"region":"nyc3"}`, "token"},
		{"missing region", `{` + tok + `}`, "region"},
		{"unknown region", `{` + tok + `,"region":"mars1"}`, "region"},
		{"endpoint not http", `{` + tok + `,"region":"nyc3","endpoint":"ftp://example.com"}`, "endpoint"},
		{"endpoint without host", `{` + tok + `,"region":"nyc3","endpoint":"http://"}`, "endpoint"},
		{"endpoint with credentials", `{` + tok + `,"region":"nyc3","endpoint":"https://user:pw@example.com"}`, "endpoint"},
		{"endpoint with v2", `{` + tok + `,"region":"nyc3","endpoint":"https://api.digitalocean.com/v2"}`, "endpoint"},
		{"endpoint with query", `{` + tok + `,"region":"nyc3","endpoint":"https://example.com/?a=b"}`, "endpoint"},
		{"unknown field", `{` + tok + `,"region":"nyc3","secret":"x"}`, "secret"},
		{"not an object", `[1]`, "data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := provider.Decode(Schema.NewCredential, []byte(tt.data))
			if tt.field == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if c := v.(*Credential); c.Token.Reveal() == "" || c.Region == "" {
					t.Errorf("decoded %+v", c)
				}
				return
			}
			var fe *provider.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("err = %v, want a FieldError on %q", err, tt.field)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error shows the token: %v", err)
			}
		})
	}
}

// TestEndpointURLs checks the base URL godo gets and the api_endpoint
// Terraform gets.
func TestEndpointURLs(t *testing.T) {
	tests := []struct{ in, api, tf string }{
		{"", "https://api.digitalocean.com/", "https://api.digitalocean.com"},
		{"http://127.0.0.1:4321", "http://127.0.0.1:4321/", "http://127.0.0.1:4321"},
		{"http://127.0.0.1:4321/", "http://127.0.0.1:4321/", "http://127.0.0.1:4321"},
		{"https://proxy.example.com/do", "https://proxy.example.com/do/", "https://proxy.example.com/do/"},
	}
	for _, tt := range tests {
		api, tf, err := endpointURLs(tt.in)
		if err != nil || api != tt.api || tf != tt.tf {
			t.Errorf("endpointURLs(%q) = %q, %q, %v; want %q, %q", tt.in, api, tf, err, tt.api, tt.tf)
		}
	}
}

// TestBootstrapValid checks the bootstrap outputs' checks: the key pair
// and fingerprint must agree.
func TestBootstrapValid(t *testing.T) {
	good := fixedBootstrap(t)
	clear, err := MarshalPrivateKey(fixedKey(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		edit  func(b *Bootstrap)
		field string
	}{
		{"valid", func(*Bootstrap) {}, ""},
		{"key id not a number", func(b *Bootstrap) { b.KeyID = "abc" }, "key_id"},
		{"fingerprint malformed", func(b *Bootstrap) { b.KeyFingerprint = "SHA256:abc" }, "key_fingerprint"},
		{"fingerprint of another key", func(b *Bootstrap) { b.KeyFingerprint = strings.Repeat("00:", 15) + "00" }, "key_fingerprint"},
		{"vpc not a uuid", func(b *Bootstrap) { b.VPCUUID = "vpc-1" }, "vpc_uuid"},
		{"public key malformed", func(b *Bootstrap) { b.PublicKey = "ssh-rsa AAAA" }, "public_key"},
		{"private key not sealed", func(b *Bootstrap) { b.PrivateKey = PrivateKey(clear) }, "private_key"},
		{"private key garbage", func(b *Bootstrap) { b.PrivateKey = sealedPrefix + "!!" }, "private_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := *good
			tt.edit(&b)
			data, err := json.Marshal(&b)
			if err != nil {
				t.Fatal(err)
			}
			_, err = provider.Decode(Schema.NewBootstrap, data)
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe *provider.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("err = %v, want a FieldError on %q", err, tt.field)
			}
		})
	}
}

// TestSealedKey checks the bootstrap's private key: it opens only with the
// credential's token and ID, and only as the private half of the
// bootstrap's public key.
func TestSealedKey(t *testing.T) {
	b := fixedBootstrap(t)
	cred := &Credential{Token: stack.Secret(testToken), Region: "nyc3"}
	key, text, err := b.SSHKey(cred, "cred-1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key, fixedKey()) || !strings.HasPrefix(text, "-----BEGIN OPENSSH PRIVATE KEY-----") {
		t.Error("opened another key")
	}
	if strings.Contains(string(b.PrivateKey), "OPENSSH") || strings.Contains(string(b.PrivateKey), strings.Split(text, "\n")[1]) {
		t.Error("the stored key is not sealed")
	}
	other, _ := GenerateKey(nil)
	otherText, _ := MarshalPrivateKey(other, "", nil)
	otherSealed, _ := SealPrivateKey(otherText, testToken, "cred-1", nil)
	tests := []struct {
		name   string
		cred   *Credential
		id     string
		sealed PrivateKey
	}{
		{"another token", &Credential{Token: stack.Secret("dop_v1_" + strings.Repeat("e", 64))}, "cred-1", b.PrivateKey},
		{"another credential", cred, "cred-2", b.PrivateKey},
		{"another key pair", cred, "cred-1", PrivateKey(otherSealed)},
		{"truncated", cred, "cred-1", b.PrivateKey[:len(b.PrivateKey)-10]},
		{"no credential", nil, "cred-1", b.PrivateKey},
	}
	for _, tt := range tests {
		bb := *b
		bb.PrivateKey = tt.sealed
		if _, _, err := bb.SSHKey(tt.cred, tt.id); !errors.Is(err, ErrSealedKey) {
			t.Errorf("%s: err = %v, want ErrSealedKey", tt.name, err)
		}
	}
}

// TestSecretsMasked checks that printing the credential or the bootstrap
// shows neither the token nor the private key, that the bootstrap's JSON
// (what the store encrypts) keeps the key, and that the maskers know both.
func TestSecretsMasked(t *testing.T) {
	cred := &Credential{Token: stack.Secret(testToken), Region: "nyc3"}
	boot := fixedBootstrap(t)
	priv := string(boot.PrivateKey)
	keyLine := priv[len(priv)-40:]
	for _, s := range []string{fmt.Sprint(cred), fmt.Sprintf("%+v", cred), fmt.Sprintf("%#v", *cred), fmt.Sprintf("%+v", boot), fmt.Sprintf("%#v", *boot)} {
		if strings.Contains(s, testToken) || strings.Contains(s, keyLine) {
			t.Errorf("printed secret: %s", s)
		}
	}
	b, _ := json.Marshal(cred)
	if strings.Contains(string(b), testToken) {
		t.Errorf("credential JSON shows the token: %s", b)
	}
	b, _ = json.Marshal(boot)
	var back Bootstrap
	if err := json.Unmarshal(b, &back); err != nil || string(back.PrivateKey) != priv {
		t.Errorf("the bootstrap's JSON lost the private key: %v", err)
	}
	secrets := append(provider.SecretValues(cred), provider.SecretValues(boot)...)
	if !slices.Contains(secrets, testToken) || !slices.Contains(secrets, priv) {
		t.Errorf("SecretValues misses a secret (%d values)", len(secrets))
	}
	m := provider.NewMasker(secrets...)
	if got := m.Mask("token " + testToken); strings.Contains(got, testToken) {
		t.Errorf("masked = %q", got)
	}
}
