package store_test

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestStoreLinksNoTerraformEngine checks that the store packages speak the
// domain types of package stack without linking the Terraform engine
// (stack/terraform) or the libraries it is built on.
func TestStoreLinksNoTerraformEngine(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go tool not found: %v", err)
	}
	pkgs := []string{
		"github.com/kloud/kloud/store",
		"github.com/kloud/kloud/store/sqlite",
		"github.com/kloud/kloud/store/mongo",
		"github.com/kloud/kloud/store/storetest",
		"github.com/kloud/kloud/stack",
	}
	out, err := exec.Command(goBin, append([]string{"list", "-deps"}, pkgs...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list -deps: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, p := range pkgs {
		if !slices.Contains(deps, p) {
			t.Fatalf("go list -deps does not list %s itself: %v", p, deps)
		}
	}
	for _, forbidden := range []string{
		"github.com/kloud/kloud/stack/terraform",
		"github.com/hashicorp/terraform-exec",
		"github.com/hashicorp/terraform-json",
		"github.com/hashicorp/hcl",
		"github.com/zclconf/go-cty",
	} {
		t.Run(forbidden, func(t *testing.T) {
			for _, d := range deps {
				if d == forbidden || strings.HasPrefix(d, forbidden+"/") {
					t.Errorf("the store links %s", d)
				}
			}
		})
	}
}
