package kloud_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/kloudtest"
)

func TestProvidersDescribed(t *testing.T) {
	h := kloudtest.New(t)
	var descs []struct {
		Name       string `json:"name"`
		Credential []struct {
			Name     string   `json:"name"`
			Secret   bool     `json:"secret"`
			Required bool     `json:"required"`
			Enum     []string `json:"enum"`
		} `json:"credential"`
	}
	if err := h.Admin.Do(context.Background(), http.MethodGet, "/api/v1/providers", nil, &descs); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ secret, enum string }{
		"aws":          {secret: "secret_key", enum: "region"},
		"digitalocean": {secret: "token", enum: "region"},
		"sandbox":      {},
	}
	seen := map[string]bool{}
	for _, d := range descs {
		w, ok := want[d.Name]
		if !ok {
			continue
		}
		seen[d.Name] = true
		for _, f := range d.Credential {
			if f.Name == w.secret && !f.Secret {
				t.Errorf("%s.%s is not marked secret", d.Name, f.Name)
			}
			if f.Name == w.enum && len(f.Enum) == 0 {
				t.Errorf("%s.%s has no enum", d.Name, f.Name)
			}
		}
	}
	if len(seen) != len(want) {
		t.Errorf("providers = %+v, want %v", descs, want)
	}
}

// TestCredentialSecretsStayInside creates cloud credentials: a missing or
// malformed field is a 422 naming it, and the secret never comes back in
// an answer nor lies in clear anywhere under the data dir.
func TestCredentialSecretsStayInside(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	const awsSecret = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEYzz"
	const doToken = "dop_v1_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	bad := []struct {
		provider, data, field string
	}{
		{"aws", `{"secret_key":"` + awsSecret + `","region":"us-east-1"}`, "access_key"},
		{"aws", `{"access_key":"nope","secret_key":"` + awsSecret + `","region":"us-east-1"}`, "access_key"},
		{"aws", `{"access_key":"AKIAIOSFODNN7EXAMPLE","secret_key":"` + awsSecret + `","region":"mars-1"}`, "region"},
		{"digitalocean", `{"region":"nyc3"}`, "token"},
		{"digitalocean", `{"token":"` + doToken + `","region":"nyc3","colour":"blue"}`, "colour"},
	}
	for _, b := range bad {
		_, err := h.Admin.CreateCredential(ctx, client.CreateCredentialRequest{Provider: b.provider, Data: json.RawMessage(b.data)})
		var e *client.Error
		if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity || e.Field != b.field {
			t.Errorf("%s %s: %v (%+v), want 422 naming %s", b.provider, b.data, err, e, b.field)
		}
		if err != nil && (strings.Contains(err.Error(), awsSecret) || strings.Contains(err.Error(), doToken)) {
			t.Errorf("error shows the secret: %v", err)
		}
	}
	for _, c := range []client.CreateCredentialRequest{
		{Provider: "aws", Title: "aws", Data: json.RawMessage(`{"access_key":"AKIAIOSFODNN7EXAMPLE","secret_key":"` + awsSecret + `","region":"us-east-1"}`)},
		{Provider: "digitalocean", Title: "do", Data: json.RawMessage(`{"token":"` + doToken + `","region":"nyc3"}`)},
	} {
		cred, err := h.Admin.CreateCredential(ctx, c)
		if err != nil {
			t.Fatalf("create %s credential: %v", c.Provider, err)
		}
		for _, path := range []string{"/api/v1/credentials", "/api/v1/credentials/" + cred.ID} {
			var buf bytes.Buffer
			if err := h.Admin.Do(ctx, http.MethodGet, path, nil, &buf); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(buf.String(), awsSecret) || strings.Contains(buf.String(), doToken) {
				t.Errorf("GET %s shows a secret: %s", path, buf.String())
			}
		}
	}
	err := filepath.Walk(h.DataDir, func(path string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil {
			return err
		}
		for _, secret := range []string{awsSecret, doToken} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds a secret in clear", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestKlientDownload(t *testing.T) {
	h := kloudtest.New(t)
	resp, err := http.Get(h.URL + "/api/v1/agent/klient?os=linux")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 4)
	_, _ = io.ReadFull(resp.Body, head)
	if resp.StatusCode != http.StatusOK || string(head) != "\x7fELF" {
		t.Errorf("klient download: %d %q", resp.StatusCode, head)
	}
	resp2, err := http.Get(h.URL + "/api/v1/agent/klient?os=windows")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusNotFound {
		t.Errorf("klient for windows: %d, want 404", resp2.StatusCode)
	}
}

// TestProviderTemplateCheck: a provider's own template check answers at
// creation, with the line.
func TestProviderTemplateCheck(t *testing.T) {
	h := kloudtest.New(t)
	content := "provider \"aws\" {\n  region     = \"us-east-1\"\n  access_key = \"AKIAIOSFODNN7EXAMPLE\"\n}\n\nresource \"aws_instance\" \"web\" {\n  instance_type = \"t3.micro\"\n}\n"
	_, err := h.Admin.CreateTemplate(context.Background(), client.CreateTemplateRequest{Title: "leaky", Provider: "aws", Content: content})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity || len(e.Diagnostics) == 0 || e.Diagnostics[0].Line != 3 {
		t.Fatalf("template with a literal key: %v (%+v), want 422 at line 3", err, e)
	}
}
