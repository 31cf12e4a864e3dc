package main

import (
	"github.com/spf13/cobra"

	"github.com/kloud/kloud/client"
)

func userCommand(a *app) *cobra.Command {
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a user and print its token",
		Long: `Create a user (admin only). Its token is printed once, now: Kloud keeps only
its hash. Members see and act on their own credentials, stacks and machines;
admins on all.`,
		Example: `  kloud user create alice
  kloud user create bob --role admin -o json`,
		Args: need("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			u, err := a.c.CreateUser(cmd.Context(), client.CreateUserRequest{Name: args[0], Role: str(cmd, "role")})
			if err != nil {
				return err
			}
			return a.print(u, []string{"ID", "NAME", "ROLE", "TOKEN"}, func() [][]string { return [][]string{{u.ID, u.Name, u.Role, u.Token}} })
		},
	}
	create.Flags().String("role", "member", "admin or member")
	_ = create.RegisterFlagCompletionFunc("role", cobra.FixedCompletions([]string{"member", "admin"}, cobra.ShellCompDirectiveNoFileComp))
	list := &cobra.Command{
		Use:     "list",
		Short:   "List users",
		Long:    `List the users (admin only), without their tokens.`,
		Example: `  kloud user list`,
		Args:    need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			us, err := a.c.Users(cmd.Context())
			if err != nil {
				return err
			}
			return a.print(us, []string{"ID", "NAME", "ROLE", "CREATED"}, func() [][]string {
				var rows [][]string
				for _, u := range us {
					rows = append(rows, []string{u.ID, u.Name, u.Role, ago(u.CreatedAt)})
				}
				return rows
			})
		},
	}
	return group("user", "Manage users and their tokens",
		`Users are admins or members; each acts with its own bearer token.`,
		`  kloud user create alice
  kloud user list`, create, list)
}

func providerCommand(a *app) *cobra.Command {
	list := &cobra.Command{
		Use:   "list",
		Short: "List providers and their credential fields",
		Long: `List the cloud providers this server knows, with the fields their credentials
take (secret fields are marked; the API never returns their values).`,
		Example: `  kloud provider list
  kloud provider list -o json`,
		Args: need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps, err := a.c.Providers(cmd.Context())
			if err != nil {
				return err
			}
			return a.print(ps, []string{"NAME", "RESOURCE", "CREDENTIAL FIELDS"}, func() [][]string {
				var rows [][]string
				for _, p := range ps {
					rows = append(rows, []string{p.Name, p.ResourceType, fieldNames(p.Credential)})
				}
				return rows
			})
		},
	}
	return group("provider", "Show the cloud providers",
		`Providers (sandbox, aws, digitalocean) build and control machines.`,
		`  kloud provider list
  kloud provider scaffold acme --resource server`, list, providerScaffoldCommand(a))
}

func fieldNames(fs []client.ProviderField) string {
	if len(fs) == 0 {
		return "-"
	}
	s := ""
	for i, f := range fs {
		if i > 0 {
			s += ", "
		}
		s += f.Name
		if f.Secret {
			s += " (secret)"
		}
	}
	return s
}
