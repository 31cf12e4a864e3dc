package aws

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
)

// Keys in AWS's documentation's example shapes; the simulator accepts them.
const (
	testAccessKey = "AKIAIOSFODNN7EXAMPLE"
	testSecretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

func TestRegistered(t *testing.T) {
	p, err := provider.Get(Name)
	if err != nil {
		t.Fatal(err)
	}
	if p.TerraformType() != "aws_instance" || p.Source != "hashicorp/aws" || p.Userdata != "user_data" || p.NoCloudInit {
		t.Errorf("registration = %+v", p)
	}
	d, err := p.Describe()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]provider.Field{}
	for _, f := range d.Credential {
		byName[f.Name] = f
	}
	want := []struct {
		name             string
		secret, required bool
		typ              string
	}{
		{"access_key", false, true, "string"},
		{"secret_key", true, true, "string"},
		{"session_token", true, false, "string"},
		{"region", false, true, "enum"},
		{"endpoint", false, false, "string"},
	}
	if len(d.Credential) != len(want) {
		t.Errorf("credential fields = %+v", d.Credential)
	}
	for _, w := range want {
		f, ok := byName[w.name]
		if !ok || f.Secret != w.secret || f.Required != w.required || f.Type != w.typ {
			t.Errorf("field %s = %+v, want secret=%v required=%v type=%s", w.name, f, w.secret, w.required, w.typ)
		}
	}
	region := byName["region"]
	for _, r := range []string{"us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1"} {
		if !slices.Contains(region.Enum, r) {
			t.Errorf("region enum lacks %s: %v", r, region.Enum)
		}
	}
	var bootNames []string
	for _, f := range d.Bootstrap {
		bootNames = append(bootNames, f.Name)
	}
	for _, n := range []string{"vpc", "subnet", "sg", "key_pair", "ami"} {
		if !slices.Contains(bootNames, n) {
			t.Errorf("bootstrap fields %v lack %s", bootNames, n)
		}
	}
}

func credJSON(overrides map[string]any) string {
	m := map[string]any{"access_key": testAccessKey, "secret_key": testSecretKey, "region": "eu-west-1"}
	for k, v := range overrides {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// TestCredentialDecode: a missing or malformed field is a
// *provider.FieldError naming it, and no message repeats the secret.
func TestCredentialDecode(t *testing.T) {
	tests := []struct {
		name  string
		data  string
		field string // "" when valid
	}{
		{"valid", credJSON(nil), ""},
		{"valid with endpoint", credJSON(map[string]any{"endpoint": "http://127.0.0.1:4566"}), ""},
		{"valid temporary keys", credJSON(map[string]any{"access_key": "ASIAIOSFODNN7EXAMPLE", "session_token": "FwoGZXIvYXdzEBYaDH"}), ""},
		{"missing access key", credJSON(map[string]any{"access_key": nil}), "access_key"},
		{"missing secret key", credJSON(map[string]any{"secret_key": nil}), "secret_key"},
		{"missing region", credJSON(map[string]any{"region": nil}), "region"},
		{"access key too short", credJSON(map[string]any{"access_key": "AKIAIOSFODNN7EXAMPL"}), "access_key"},
		{"access key lower case", credJSON(map[string]any{"access_key": "AKIAiosfodnn7example"}), "access_key"},
		{"access key wrong prefix", credJSON(map[string]any{"access_key": "AIDAIOSFODNN7EXAMPLE"}), "access_key"},
		{"secret key 39 characters", credJSON(map[string]any{"secret_key": testSecretKey[:39]}), "secret_key"},
		{"secret key bad character", credJSON(map[string]any{"secret_key": "wJalrXUtnFEMI-K7MDENG/bPxRfiCYEXAMPLEKEY"}), "secret_key"},
		{"unknown region", credJSON(map[string]any{"region": "mars-north-1"}), "region"},
		{"region not a string", credJSON(map[string]any{"region": 1}), "region"},
		{"temporary keys without token", credJSON(map[string]any{"access_key": "ASIAIOSFODNN7EXAMPLE"}), "session_token"},
		{"token with long-term keys", credJSON(map[string]any{"session_token": "x"}), "session_token"},
		{"endpoint not a URL", credJSON(map[string]any{"endpoint": "127.0.0.1:4566"}), "endpoint"},
		{"endpoint with user", credJSON(map[string]any{"endpoint": "https://u:p@example.com"}), "endpoint"},
		{"endpoint with template", credJSON(map[string]any{"endpoint": "https://${var.x}.example.com"}), "endpoint"},
		{"unknown field", credJSON(map[string]any{"token": "x"}), "token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := provider.Decode(Schema.NewCredential, []byte(tt.data))
			var fe *provider.FieldError
			switch {
			case tt.field == "" && err != nil:
				t.Fatal(err)
			case tt.field == "":
				if c := v.(*Credential); c.SecretKey.Reveal() != testSecretKey {
					t.Errorf("decoded %+v", c)
				}
			case !errors.As(err, &fe) || fe.Field != tt.field:
				t.Errorf("err = %v, want a FieldError naming %s", err, tt.field)
			case strings.Contains(err.Error(), testSecretKey[:20]):
				t.Errorf("the error repeats the secret key: %v", err)
			}
		})
	}
}

func TestBootstrapValid(t *testing.T) {
	good := Bootstrap{VPC: "vpc-0a1b2c3d4e5f60718", Subnet: "subnet-0a1b2c3d4e5f60718", SecurityGroup: "sg-0a1b2c3d4e5f60718",
		KeyPair: "kloud-cr-1", AMI: "ami-0a1b2c3d4e5f60718", InternetGateway: "igw-0a1b2c3d4e5f60718",
		RouteTable: "rtb-0a1b2c3d4e5f60718", AvailabilityZone: "eu-west-1a", CIDRBlock: "10.73.0.0/16"}
	if err := good.Valid(); err != nil {
		t.Fatal(err)
	}
	for field, mutate := range map[string]func(*Bootstrap){
		"vpc":      func(b *Bootstrap) { b.VPC = "subnet-0a1b2c3d4e5f60718" },
		"sg":       func(b *Bootstrap) { b.SecurityGroup = "" },
		"ami":      func(b *Bootstrap) { b.AMI = "ami-XYZ" },
		"key_pair": func(b *Bootstrap) { b.KeyPair = "" },
	} {
		b := good
		mutate(&b)
		var fe *provider.FieldError
		if err := b.Valid(); !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: err = %v", field, err)
		}
	}
}

// TestMetadataFromState decodes an aws_instance's state values as Kloud
// does after an apply: aws_instance's names, plus size and image for the
// rating bridge and region from the zone.
func TestMetadataFromState(t *testing.T) {
	state := `{"ami":"ami-0abcdef1234567890","arn":"arn:aws:ec2:eu-west-1:123456789012:instance/i-0abc","associate_public_ip_address":true,
		"availability_zone":"eu-west-1b","id":"i-0abc000000000001","instance_state":"running","instance_type":"t3.micro",
		"private_ip":"10.73.0.12","public_ip":"203.0.113.7","tags":{"Name":"web-0"},"root_block_device":[{"volume_size":8}],"user_data":"0a1b2c"}`
	p, _ := provider.Get(Name)
	md := p.Schema.NewMetadata(&stack.Machine{}).(*Metadata)
	if err := json.Unmarshal([]byte(state), md); err != nil {
		t.Fatal(err)
	}
	want := Metadata{ID: "i-0abc000000000001", Region: "eu-west-1", AvailabilityZone: "eu-west-1b", InstanceType: "t3.micro", Size: "t3.micro",
		AMI: "ami-0abcdef1234567890", Image: "ami-0abcdef1234567890", PublicIP: "203.0.113.7", PrivateIP: "10.73.0.12", InstanceState: "running"}
	if *md != want {
		t.Errorf("metadata\n got %+v\nwant %+v", *md, want)
	}
	// The rating bridge reads size, region and image from the stored JSON.
	b, _ := json.Marshal(md)
	var stored map[string]any
	_ = json.Unmarshal(b, &stored)
	if stored["size"] != "t3.micro" || stored["region"] != "eu-west-1" || stored["image"] != "ami-0abcdef1234567890" {
		t.Errorf("stored metadata %s", b)
	}
	// Provider 6.x puts the region in the state; it wins over the zone.
	gov := &Metadata{}
	_ = json.Unmarshal([]byte(`{"region":"us-gov-west-1","availability_zone":"us-gov-west-1a"}`), gov)
	local := &Metadata{}
	_ = json.Unmarshal([]byte(`{"availability_zone":"us-west-2-lax-1a"}`), local)
	if gov.Region != "us-gov-west-1" || local.Region != "" {
		t.Errorf("gov %+v, local zone %+v", gov, local)
	}
}

// TestKeyPair: the key is derived again identically, differs per
// credential, and its public and private encodings are OpenSSH's.
func TestKeyPair(t *testing.T) {
	c := &Credential{AccessKey: testAccessKey, SecretKey: testSecretKey, Region: "eu-west-1"}
	k1, err := KeyPair(c, "cr-1")
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := KeyPair(c, "cr-1")
	k3, _ := KeyPair(c, "cr-2")
	other := *c
	other.SecretKey = stack.Secret(strings.Repeat("A", 40))
	k4, _ := KeyPair(&other, "cr-1")
	if !k1.Equal(k2) || k1.Equal(k3) || k1.Equal(k4) {
		t.Error("the key pair is not derived from the credential and its id")
	}
	if _, err := KeyPair(&Credential{}, "cr-1"); err == nil {
		t.Error("a key pair without a secret key")
	}
	pub := k1.Public().(ed25519.PublicKey)
	line := AuthorizedKey(pub, "kloud-cr-1")
	fields := strings.Fields(line)
	if len(fields) != 3 || fields[0] != "ssh-ed25519" || fields[2] != "kloud-cr-1" {
		t.Fatalf("authorized key %q", line)
	}
	blob, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil || len(blob) != 4+11+4+32 || string(blob[4:15]) != "ssh-ed25519" || !bytes.Equal(blob[19:], pub) {
		t.Errorf("public key blob %x: %v", blob, err)
	}

	block, rest := pem.Decode(PrivateKeyPEM(k1, "kloud-cr-1"))
	if block == nil || block.Type != "OPENSSH PRIVATE KEY" || len(rest) != 0 {
		t.Fatalf("private key PEM: %v", block)
	}
	b := block.Bytes
	if !bytes.HasPrefix(b, []byte("openssh-key-v1\x00")) {
		t.Fatal("no openssh-key-v1 magic")
	}
	b = b[len("openssh-key-v1\x00"):]
	read := func() []byte {
		n := binary.BigEndian.Uint32(b)
		s := b[4 : 4+n]
		b = b[4+n:]
		return s
	}
	if string(read()) != "none" || string(read()) != "none" || len(read()) != 0 {
		t.Fatal("cipher, kdf or kdf options")
	}
	if n := binary.BigEndian.Uint32(b); n != 1 {
		t.Fatalf("%d keys", n)
	}
	b = b[4:]
	if !bytes.Equal(read(), blob) {
		t.Error("the PEM's public key differs")
	}
	priv := read()
	if len(priv)%8 != 0 || !bytes.Equal(priv[0:4], priv[4:8]) {
		t.Errorf("private section: len %d, check words %x %x", len(priv), priv[0:4], priv[4:8])
	}
	if !bytes.Contains(priv, k1) || !bytes.Contains(priv, []byte("kloud-cr-1")) {
		t.Error("the private section lacks the key or the comment")
	}
	if s := fmt.Sprint(c); strings.Contains(s, testSecretKey) {
		t.Errorf("a printed credential shows its secret: %s", s)
	}
}
