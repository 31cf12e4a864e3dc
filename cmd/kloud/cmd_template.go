package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kloud/kloud/client"
)

func templateCommand(a *app) *cobra.Command {
	create := &cobra.Command{
		Use:   "create FILE",
		Short: "Store a Terraform template",
		Long: `Store a Terraform template (HCL or JSON) after its parse and policy check: no
local-exec provisioners, no external data sources, no backend blocks, no
files outside the template. Problems are printed with file:line:col.`,
		Example: `  kloud template create templates/sandbox/main.tf --title "web+db"
  kloud template create stack.tf.json --provider aws`,
		Args: need("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			content, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("read template: %w", err)
			}
			format := str(cmd, "format")
			if format == "" {
				format = "hcl"
				if strings.HasSuffix(file, ".json") {
					format = "json"
				}
			}
			title := str(cmd, "title")
			if title == "" {
				title = file
			}
			t, err := a.c.CreateTemplate(cmd.Context(), client.CreateTemplateRequest{Title: title, Provider: str(cmd, "provider"), Content: string(content), Format: format})
			if err != nil {
				return err
			}
			return a.printTemplates([]client.Template{*t})
		},
	}
	create.Flags().String("title", "", "title (default: the file name)")
	create.Flags().String("provider", "sandbox", "provider")
	create.Flags().String("format", "", "hcl or json (default: from the file name)")
	list := &cobra.Command{
		Use:     "list",
		Short:   "List templates",
		Long:    `List the templates you may use.`,
		Example: `  kloud template list`,
		Args:    need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ts, err := a.c.Templates(cmd.Context())
			if err != nil {
				return err
			}
			return a.printTemplates(ts)
		},
	}
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a template and its content",
		Long:  `Show one template: its row, then its content as stored.`,
		Example: `  kloud template show t-1
  kloud template show t-1 -o json`,
		Args: need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := a.c.Template(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.print(t, nil, nil)
			}
			if err := a.printTemplates([]client.Template{*t}); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "\n%s", t.Content)
			if !strings.HasSuffix(t.Content, "\n") {
				fmt.Fprintln(a.out)
			}
			return nil
		},
	}
	plan := &cobra.Command{
		Use:   "plan ID",
		Short: "Plan a template with a credential and estimate its cost",
		Long: `Run terraform plan of the template with a credential and variables, and
print the machines it would build with the rating pipeline's estimate of
their hourly and monthly cost.`,
		Example: `  kloud template plan t-1 --credential c-1
  kloud template plan t-1 --credential c-1 --var size=medium -o json`,
		Args: need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			list, _ := cmd.Flags().GetStringArray("var")
			vs, err := vars(list)
			if err != nil {
				return err
			}
			p, err := a.c.PlanTemplate(cmd.Context(), args[0], client.PlanRequest{CredentialID: str(cmd, "credential"), Variables: vs})
			if err != nil {
				return err
			}
			if err := a.print(p, []string{"MACHINE", "ACTION", "SIZE"}, func() [][]string {
				var rows [][]string
				for _, m := range p.Machines {
					rows = append(rows, []string{m.Label, m.Action, m.Size})
				}
				return rows
			}); err != nil || a.output == "json" {
				return err
			}
			fmt.Fprintf(a.out, "estimated cost: %s %s/hour, %s %s/month\n", p.CostEstimate.Hourly, p.CostEstimate.Currency, p.CostEstimate.Monthly, p.CostEstimate.Currency)
			return nil
		},
	}
	plan.Flags().String("credential", "", "credential id")
	varFlag(plan)
	return group("template", "Manage Terraform templates",
		`Templates are Terraform configurations that stacks are built from.`,
		`  kloud template create main.tf --title web
  kloud template plan t-1 --credential c-1
  kloud template push main.tf --template t-1 --activate`, append([]*cobra.Command{create, list, show, plan}, templateVersionCommands(a)...)...)
}

func (a *app) printTemplates(ts []client.Template) error {
	return a.print(ts, []string{"ID", "PROVIDER", "FORMAT", "VERSION", "TITLE"}, func() [][]string {
		var rows [][]string
		for _, t := range ts {
			rows = append(rows, []string{t.ID, t.Provider, t.Format, strconv.Itoa(t.ActiveVersion), t.Title})
		}
		return rows
	})
}
