package templates

import (
	"errors"
	"slices"
	"testing"

	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
)

// TestEmbedded checks that every provider's example and bootstrap
// templates parse and pass Kloud's policy.
func TestEmbedded(t *testing.T) {
	providers := Providers()
	if !slices.Contains(providers, "sandbox") {
		t.Fatalf("providers = %v", providers)
	}
	for _, p := range providers {
		if b, err := Example(p); err == nil {
			if _, _, err := terraform.ValidateTemplate(p+"/main.tf", b, stack.FormatHCL); err != nil {
				t.Errorf("%s example: %v", p, err)
			}
		} else if p == "sandbox" {
			t.Errorf("sandbox example: %v", err)
		}
		if b, format, err := Bootstrap(p); err == nil {
			if _, _, err := terraform.ValidateTemplate(p+"/bootstrap", b, format); err != nil {
				t.Errorf("%s bootstrap: %v", p, err)
			}
		} else if p == "sandbox" {
			t.Errorf("sandbox bootstrap: %v", err)
		}
	}
	b, err := Example("sandbox")
	if err != nil {
		t.Fatal(err)
	}
	parsed, _, _ := terraform.ValidateTemplate("main.tf", b, stack.FormatHCL)
	machines := terraform.MachineResources(parsed, "sandbox_machine")
	if len(machines) != 2 || machines[0].Name != "web" || machines[0].Repetition != terraform.Count || machines[1].Name != "db" {
		t.Errorf("sandbox example machines = %+v", machines)
	}
	if v, ok := parsed.Variable("web_count"); !ok || !v.HasDefault {
		t.Errorf("web_count = %+v, %v", v, ok)
	}
	if _, format, _ := Bootstrap("sandbox"); format != stack.FormatJSON {
		t.Errorf("sandbox bootstrap format = %s", format)
	}
}

func TestNotFound(t *testing.T) {
	for _, p := range []string{"", "nope", "../templates", "sandbox/..", ".", "sandbox/main.tf"} {
		if _, err := Example(p); !errors.Is(err, ErrNotFound) {
			t.Errorf("Example(%q): err = %v", p, err)
		}
		if _, _, err := Bootstrap(p); !errors.Is(err, ErrNotFound) {
			t.Errorf("Bootstrap(%q): err = %v", p, err)
		}
	}
}
