package digitalocean

import (
	"crypto/ed25519"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/kloud/kloud/provider/digitalocean/dosim"
	"github.com/kloud/kloud/provider/providertest"
	"github.com/kloud/kloud/templates"
)

// TestConformance runs Kloud's provider conformance suite against dosim.
func TestConformance(t *testing.T) {
	e := newEnv(t, dosim.Options{})
	deadURL := providertest.ClosedURL(t)
	credential := func(token, region, endpoint string) string {
		b, _ := json.Marshal(map[string]string{"token": token, "region": region, "endpoint": endpoint})
		return string(b)
	}
	example, err := templates.Example(Name)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := json.Marshal(conformanceBootstrap(t))
	if err != nil {
		t.Fatal(err)
	}
	providertest.Run(t, e.p, providertest.Env{
		Credential:  credential(testToken, "nyc3", e.sim.URL()),
		Refused:     credential("dop_v1_"+strings.Repeat("f", 64), "nyc3", e.sim.URL()),
		Unreachable: credential(testToken, "nyc3", deadURL),
		Malformed: []providertest.Malformed{
			{Data: credential("too-short", "nyc3", ""), Field: "token"},
			{Data: credential(testToken, "mars1", ""), Field: "region"},
			{Data: credential(testToken, "nyc3", "ftp://example.com"), Field: "endpoint"},
		},
		Bootstrap: string(boot),
		Template:  string(example),
		CarriesCredentials: `provider "digitalocean" {
  token = "dop_v1_` + strings.Repeat("a", 64) + `"
}

resource "digitalocean_droplet" "web" {
  name  = "web"
  size  = "s-1vcpu-1gb"
  image = "ubuntu-24-04-x64"
}
`,
		NewMachine: func(testing.TB) json.RawMessage {
			d := e.sim.AddDroplet(dosim.Droplet{})
			b, _ := json.Marshal(Metadata{ID: strconv.Itoa(d.ID), Name: d.Name, Region: d.Region, Size: d.Size, Image: d.Image})
			return b
		},
		RemoveMachine: func(t testing.TB, md json.RawMessage) {
			var m Metadata
			if err := json.Unmarshal(md, &m); err != nil {
				t.Fatal(err)
			}
			id, _ := strconv.Atoi(m.ID)
			e.sim.DeleteDroplet(id)
		},
	})
}

// conformanceBootstrap is the bootstrap of the suite's credential
// (providertest.CredentialID, token testToken), its key sealed for it.
func conformanceBootstrap(t *testing.T) *Bootstrap {
	t.Helper()
	key := fixedKey()
	name := resourceName(providertest.CredentialID)
	text, err := MarshalPrivateKey(key, name, strings.NewReader("\x01\x02\x03\x04"))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := SealPrivateKey(text, testToken, providertest.CredentialID, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := fixedBootstrap(t)
	b.PublicKey = MarshalAuthorizedKey(key.Public().(ed25519.PublicKey), name)
	b.PrivateKey = PrivateKey(sealed)
	return b
}
