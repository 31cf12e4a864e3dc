package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kloud/kloud/provider/scaffold"
)

// providerScaffoldCommand is `kloud provider scaffold NAME`: a new
// provider's files in a checkout, built into kloud by one import line. It
// needs no server.
func providerScaffoldCommand(a *app) *cobra.Command {
	var resource, dir string
	cmd := &cobra.Command{
		Use:   "scaffold NAME",
		Short: "Write a new provider's files into a Kloud checkout",
		Long: `Write a new cloud provider into provider/NAME of the Kloud checkout in --dir
(the directory holding go.mod; default the current one): the four files of a
Kloud provider, NAME.go (registers the *provider.Provider), machine.go (the
Machine), schema.go (the Credential, Bootstrap and Metadata structs) and
stack.go (the Stack), plus NAME_test.go, which runs the conformance suite
(provider/providertest), and a README.md. One import line in
cmd/kloud/providers.go builds it into kloud.

The provider compiles at once; every method answers "not implemented", and
go test ./provider/NAME/ lists, rule by rule, what is left to write.
docs/providers.md is the guide.

NAME must be a lower-case Go identifier (letters and digits), which is also
the Terraform provider's local name; a name that is not, or that names a
provider or a directory that exists, is refused (exit 2).`,
		Example: `  kloud provider scaffold acme --resource server
  go build ./... && go test ./provider/acme/`,
		Args: need("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, err := filepath.Abs(dir)
			if err != nil {
				return usagef("--dir %q: %v", clip(dir), err)
			}
			if _, err := scaffold.ModulePath(root); err != nil {
				return usagef("--dir %q: %v", clip(dir), err)
			}
			res, err := scaffold.Write(scaffold.Options{Name: args[0], Resource: resource, Root: root})
			if errors.Is(err, scaffold.ErrBadName) || errors.Is(err, scaffold.ErrExists) {
				return usagef("%v", err)
			}
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.print(res, nil, nil)
			}
			fmt.Fprintf(a.out, "wrote provider %s in %s:\n", args[0], res.Dir)
			for _, f := range res.Files {
				fmt.Fprintf(a.out, "  %s\n", filepath.Base(f))
			}
			if res.Registered != "" {
				fmt.Fprintf(a.out, "registered in %s:\n  %s\n", res.Registered, res.Line)
			} else {
				fmt.Fprintf(a.out, "to build it into kloud, add to the imports of %s:\n  %s\n", scaffold.RegistrationFile, res.Line)
			}
			fmt.Fprintf(a.out, "next: go build ./... && go test ./provider/%s/  (docs/providers.md is the guide)\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&resource, "resource", scaffold.DefaultResource, "the machine resource type without the provider prefix (server for NAME_server)")
	cmd.Flags().StringVar(&dir, "dir", ".", "the Kloud checkout (the directory holding go.mod)")
	return cmd
}
