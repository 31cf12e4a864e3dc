package aws

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kloud/kloud/provider/aws/awssim"
	"github.com/kloud/kloud/provider/providertest"
	"github.com/kloud/kloud/templates"
)

// TestConformance runs Kloud's provider conformance suite against awssim.
func TestConformance(t *testing.T) {
	e := newEnv(t, awssim.Options{})
	deadURL := providertest.ClosedURL(t)
	credential := func(access, secret, region, endpoint string) string {
		b, _ := json.Marshal(map[string]string{"access_key": access, "secret_key": secret, "region": region, "endpoint": endpoint})
		return string(b)
	}
	example, err := templates.Example(Name)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := json.Marshal(testBootstrap())
	if err != nil {
		t.Fatal(err)
	}
	providertest.Run(t, New(e.opts), providertest.Env{
		Credential:  credential(testAccessKey, testSecretKey, "us-east-1", e.sim.URL()),
		Refused:     credential("AKIAZZZZZZZZZZZZZZZZ", testSecretKey, "us-east-1", e.sim.URL()),
		Unreachable: credential(testAccessKey, testSecretKey, "us-east-1", deadURL),
		Malformed: []providertest.Malformed{
			{Data: credential("AKIA-short", testSecretKey, "us-east-1", ""), Field: "access_key"},
			{Data: credential(testAccessKey, "short", "us-east-1", ""), Field: "secret_key"},
			{Data: credential(testAccessKey, testSecretKey, "mars-1", ""), Field: "region"},
			{Data: credential(testAccessKey, testSecretKey, "us-east-1", "ftp://example.com"), Field: "endpoint"},
		},
		Bootstrap: string(boot),
		Template:  string(example),
		CarriesCredentials: `provider "aws" {
  region     = "us-east-1"
  access_key = "AKIAIOSFODNN7EXAMPLE"
  secret_key = "` + strings.Repeat("x", 40) + `"
}

resource "aws_instance" "web" {
  ami           = "ami-0a1b2c3d4e5f60718"
  instance_type = "t3.micro"
}
`,
		NewMachine: func(testing.TB) json.RawMessage {
			id := e.sim.AddInstance(awssim.Instance{State: awssim.Running})
			in, _ := e.sim.Instance(id)
			b, _ := json.Marshal(Metadata{ID: id, AvailabilityZone: in.AvailabilityZone, InstanceType: in.InstanceType, AMI: in.ImageID, InstanceState: in.State})
			return b
		},
		RemoveMachine: func(t testing.TB, md json.RawMessage) {
			var m Metadata
			if err := json.Unmarshal(md, &m); err != nil {
				t.Fatal(err)
			}
			e.sim.Forget(m.ID)
		},
	})
}
