package main

import (
	"encoding/json"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/kloud/kloud/client"
)

func credentialCommand(a *app) *cobra.Command {
	add := &cobra.Command{
		Use:   "add PROVIDER",
		Short: "Add a credential for a provider",
		Long: `Add a credential: the provider's account data, encrypted at rest. The fields
each provider takes are listed by kloud provider list; secrets are never
shown again.`,
		Example: `  kloud credential add sandbox --title "local sandbox"
  kloud credential add aws --title prod --data @aws.json`,
		Args: need("PROVIDER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readArg(str(cmd, "data"))
			if err != nil {
				return err
			}
			if !json.Valid(data) {
				return usagef("--data is not valid JSON")
			}
			c, err := a.c.CreateCredential(cmd.Context(), client.CreateCredentialRequest{Provider: args[0], Title: str(cmd, "title"), Data: data})
			if err != nil {
				return err
			}
			return a.printCredentials([]client.Credential{*c})
		},
	}
	add.Flags().String("title", "", "title")
	add.Flags().String("data", "{}", "credential data as a JSON object (or @file)")
	list := &cobra.Command{
		Use:     "list",
		Short:   "List credentials",
		Long:    `List the credentials you may use (admins: all), without their secrets.`,
		Example: `  kloud credential list -o json`,
		Args:    need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cs, err := a.c.Credentials(cmd.Context())
			if err != nil {
				return err
			}
			return a.printCredentials(cs)
		},
	}
	show := &cobra.Command{
		Use:     "show ID",
		Short:   "Show a credential",
		Long:    `Show one credential, without its secrets.`,
		Example: `  kloud credential show c-1`,
		Args:    need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.c.Credential(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printCredentials([]client.Credential{*c})
		},
	}
	del := &cobra.Command{
		Use:     "delete ID",
		Short:   "Delete a credential",
		Long:    `Delete a credential. Nothing is printed when it is gone.`,
		Example: `  kloud credential delete c-1`,
		Args:    need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.c.DeleteCredential(cmd.Context(), args[0])
		},
	}
	verify := &cobra.Command{
		Use:   "verify ID",
		Short: "Check a credential with its provider",
		Long: `Ask the provider whether the credential works (AWS: STS GetCallerIdentity;
DigitalOcean: the account; sandbox: its data dir) and record the answer.`,
		Example: `  kloud credential verify c-1`,
		Args:    need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := a.c.VerifyCredential(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.print(r, []string{"VERIFIED", "MESSAGE"}, func() [][]string { return [][]string{{strconv.FormatBool(r.Verified), r.Message}} })
		},
	}
	boot := followFlag(&cobra.Command{
		Use:   "bootstrap ID",
		Short: "Build (or destroy) a credential's shared resources",
		Long: `Start the job that builds the provider's persistent resources for this
credential (AWS: VPC, subnet, gateway, security group, key pair), or with
--destroy the job that removes them. --follow streams its progress.`,
		Example: `  kloud credential bootstrap c-1 --follow
  kloud credential bootstrap c-1 --destroy`,
		Args: need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			destroy, _ := cmd.Flags().GetBool("destroy")
			ref, err := a.c.BootstrapCredential(cmd.Context(), args[0], destroy)
			return a.startedJob(cmd, ref, err)
		},
	})
	boot.Flags().Bool("destroy", false, "destroy the bootstrap resources instead")
	return group("credential", "Manage provider credentials",
		`Credentials hold a provider account's data; stacks are built with one.`,
		`  kloud credential add sandbox --title local
  kloud credential verify c-1`, add, list, show, del, verify, boot)
}

func (a *app) printCredentials(cs []client.Credential) error {
	return a.print(cs, []string{"ID", "PROVIDER", "TITLE", "VERIFIED", "BOOTSTRAPPED"}, func() [][]string {
		var rows [][]string
		for _, c := range cs {
			rows = append(rows, []string{c.ID, c.Provider, c.Title, strconv.FormatBool(c.Verified), strconv.FormatBool(c.Bootstrapped)})
		}
		return rows
	})
}
