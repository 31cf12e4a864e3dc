package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/kloud/kloud/client"
)

func stackCommand(a *app) *cobra.Command {
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a stack from a template and a credential",
		Long: `Create a stack: a template, the credential that builds it and its variables.
Nothing is built until kloud stack apply.`,
		Example: `  kloud stack create --title demo --template t-1 --credential c-1
  kloud stack create --title big --template t-1 --credential c-1 --var size=medium`,
		Args: need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, _ := cmd.Flags().GetStringArray("var")
			vs, err := vars(list)
			if err != nil {
				return err
			}
			s, err := a.c.CreateStack(cmd.Context(), client.CreateStackRequest{Title: str(cmd, "title"), TemplateID: str(cmd, "template"), CredentialID: str(cmd, "credential"), Variables: vs})
			if err != nil {
				return err
			}
			return a.printStacks([]client.Stack{*s})
		},
	}
	create.Flags().String("title", "", "title")
	create.Flags().String("template", "", "template id")
	create.Flags().String("credential", "", "credential id")
	varFlag(create)
	list := &cobra.Command{
		Use:     "list",
		Short:   "List stacks",
		Long:    `List the stacks you may see (admins: all) with their status.`,
		Example: `  kloud stack list -o json`,
		Args:    need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ss, err := a.c.Stacks(cmd.Context())
			if err != nil {
				return err
			}
			return a.printStacks(ss)
		},
	}
	show := &cobra.Command{
		Use:     "show ID",
		Short:   "Show a stack and its machines",
		Long:    `Show one stack: its status (and the reason of a failure), then its machines.`,
		Example: `  kloud stack show s-1`,
		Args:    need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.c.Stack(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.print(s, nil, nil)
			}
			if err := a.printStacks([]client.Stack{*s}); err != nil {
				return err
			}
			fmt.Fprintln(a.out)
			return a.printMachines(s.Machines)
		},
	}
	apply := followFlag(&cobra.Command{
		Use:   "apply ID",
		Short: "Build or update a stack's machines (terraform apply)",
		Long: `Start the job that runs terraform init and apply for the stack, and print its
id; with --follow, stream its progress and Terraform's output until it ends.
A stack whose state allows no apply is refused (409) with the state and what
it allows. The exit status is 1 when the followed job fails.`,
		Example: `  kloud stack apply s-1 --follow
  kloud stack apply s-1 --plan job-1 --follow
  kloud stack apply s-1 -o json`,
		Args: need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			override, _ := cmd.Flags().GetBool("override")
			if planID := str(cmd, "plan"); planID != "" {
				if override {
					return usagef("--plan and --override do not go together: apply the plan, or override the budget with a fresh apply")
				}
				ref, err := a.c.ApplyPlan(cmd.Context(), args[0], planID)
				return a.startedJob(cmd, ref, err)
			}
			apply := a.c.ApplyStack
			if override {
				apply = a.c.ApplyStackAnyway
			}
			ref, err := apply(cmd.Context(), args[0])
			return a.startedJob(cmd, ref, err)
		},
	})
	apply.Flags().String("plan", "", "apply exactly this saved plan (a plan job's id, from kloud stack plan); refused (409) when the stack changed since")
	apply.Flags().Bool("override", false, "apply even though the budget is exhausted (admins; recorded in the audit log)")
	destroy := followFlag(&cobra.Command{
		Use:   "destroy ID",
		Short: "Destroy a stack's machines (terraform destroy)",
		Long: `Start the job that runs terraform destroy for the stack; with --follow, stream
its progress until it ends.`,
		Example: `  kloud stack destroy s-1 --follow`,
		Args:    need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := a.c.DestroyStack(cmd.Context(), args[0])
			return a.startedJob(cmd, ref, err)
		},
	})
	return group("stack", "Create, apply and destroy stacks",
		`A stack is a template applied with a credential: a group of machines that
Terraform builds, updates and destroys as jobs.`,
		`  kloud stack create --title demo --template t-1 --credential c-1
  kloud stack apply s-1 --follow
  kloud stack plan s-1 --version 2
  kloud stack destroy s-1 --follow`, append([]*cobra.Command{create, list, show, apply, destroy}, stackUpdateCommands(a)...)...)
}

func (a *app) printStacks(ss []client.Stack) error {
	return a.print(ss, []string{"ID", "TITLE", "STATUS", "VERSION", "MACHINES", "DRIFT", "REASON"}, func() [][]string {
		var rows [][]string
		for _, s := range ss {
			drift := "-"
			if s.Drift != nil {
				drift = "none"
				if s.Drifted {
					drift = strconv.Itoa(len(s.Drift.Resources)) + " drifted"
				}
			}
			rows = append(rows, []string{s.ID, s.Title, string(s.Status), strconv.Itoa(s.TemplateVersion), strconv.Itoa(len(s.Machines)), drift, s.Reason})
		}
		return rows
	})
}
