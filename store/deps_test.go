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
	pkgs := []string{
		"github.com/kloud/kloud/store",
		"github.com/kloud/kloud/store/sqlite",
		"github.com/kloud/kloud/store/mongo",
		"github.com/kloud/kloud/store/storetest",
		"github.com/kloud/kloud/stack",
	}
	deps := listDeps(t, pkgs...)
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

// TestDomainTypesLinkNoStore checks that the packages owning Kloud's domain
// types (jobs and their events, users, hashmap rules, the sentinel errors)
// do not import persistence: the store speaks their types, not the reverse.
func TestDomainTypesLinkNoStore(t *testing.T) {
	owners := []string{
		"github.com/kloud/kloud/kloud/jobs",
		"github.com/kloud/kloud/user",
		"github.com/kloud/kloud/ratingbridge/hashmap",
		"github.com/kloud/kloud/errdefs",
		"github.com/kloud/kloud/kloud/audit",
	}
	for _, p := range owners {
		t.Run(p, func(t *testing.T) {
			for _, d := range listDeps(t, p) {
				if d == "github.com/kloud/kloud/store" || strings.HasPrefix(d, "github.com/kloud/kloud/store/") {
					t.Errorf("%s links %s", p, d)
				}
			}
		})
	}
}

// listDeps answers `go list -deps pkgs...`, checking each package is listed.
func listDeps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go tool not found: %v", err)
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
	return deps
}
