package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"

	"github.com/kloud/kloud/client"
)

// templateVersionCommands are template push and versions.
func templateVersionCommands(a *app) []*cobra.Command {
	push := &cobra.Command{
		Use:   "push FILE --template ID",
		Short: "Push a new version of a template",
		Long: `Store FILE as the template's next version after the same parse and policy
check as at creation (problems are printed with file:line:col). Stacks keep
the version they pin; with --activate the new version becomes the one new
stacks use.`,
		Example: `  kloud template push main.tf --template t-1 --message "scale web to 5"
  kloud template push main.tf --template t-1 --activate -o json`,
		Args: need("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			content, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("read template: %w", err)
			}
			id := str(cmd, "template")
			if id == "" {
				return usagef("--template is required")
			}
			format := str(cmd, "format")
			if format == "" && strings.HasSuffix(args[0], ".json") {
				format = "json"
			}
			v, err := a.c.CreateTemplateVersion(cmd.Context(), id, client.CreateTemplateVersionRequest{Content: string(content), Format: format, Message: str(cmd, "message")})
			if err != nil {
				return err
			}
			if activate, _ := cmd.Flags().GetBool("activate"); activate {
				if _, err := a.c.UpdateTemplate(cmd.Context(), id, client.UpdateTemplateRequest{ActiveVersion: &v.Version}); err != nil {
					return err
				}
				v.Active = true
			}
			return a.printVersions([]client.TemplateVersion{*v})
		},
	}
	push.Flags().String("template", "", "template id")
	push.Flags().String("message", "", "what changed")
	push.Flags().String("format", "", "hcl or json (default: from the file name)")
	push.Flags().Bool("activate", false, "make the new version the one new stacks use")
	versions := &cobra.Command{
		Use:   "versions ID",
		Short: "List a template's versions and the variables each declares",
		Long: `List a template's versions, oldest first: which one is active (new stacks use
it), when each was pushed and with what message, and the variables it
declares (name:type, * when required, ! when sensitive).`,
		Example: `  kloud template versions t-1
  kloud template versions t-1 -o json`,
		Args: need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			vs, err := a.c.TemplateVersions(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printVersions(vs)
		},
	}
	return []*cobra.Command{push, versions}
}

func (a *app) printVersions(vs []client.TemplateVersion) error {
	return a.print(vs, []string{"VERSION", "ACTIVE", "CREATED", "VARIABLES", "MESSAGE"}, func() [][]string {
		var rows [][]string
		for _, v := range vs {
			var vars []string
			for _, x := range v.Variables {
				s := x.Name
				if x.Type != "" {
					s += ":" + x.Type
				}
				if x.Required {
					s += "*"
				}
				if x.Sensitive {
					s += "!"
				}
				vars = append(vars, s)
			}
			active := ""
			if v.Active {
				active = "*"
			}
			rows = append(rows, []string{strconv.Itoa(v.Version), active, ago(v.CreatedAt), orDash(strings.Join(vars, " ")), orDash(v.Message)})
		}
		return rows
	})
}

// stackUpdateCommands are stack plan, update, delete and jobs.
func stackUpdateCommands(a *app) []*cobra.Command {
	plan := followFlag(&cobra.Command{
		Use:   "plan ID",
		Short: "Plan what applying a stack would change, with the cost delta",
		Long: `Run a plan job for the stack (terraform plan of the version and variables it
pins, on its current state), wait for it, and print the change as Terraform
users know it: + create, ~ update in place, -/+ replace, - destroy, with the
attributes that change, then the hourly cost before and after. With
--version or --var the stack is updated first (as kloud stack update).
Apply exactly this plan with kloud stack apply ID --plan PLAN.`,
		Example: `  kloud stack plan s-1
  kloud stack plan s-1 --version 2 --var web_count=5
  kloud stack plan s-1 -o json`,
		Args: need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			req, changed, err := updateRequest(cmd)
			if err != nil {
				return err
			}
			if changed {
				if _, err := a.c.UpdateStack(ctx, args[0], req); err != nil {
					return err
				}
			}
			ref, err := a.c.PlanStack(ctx, args[0])
			if err != nil {
				return err
			}
			if follow, _ := cmd.Flags().GetBool("follow"); follow && a.output != "json" {
				if err := a.follow(cmd, ref.JobID); err != nil {
					return err
				}
			}
			j, err := a.c.WaitJob(ctx, ref.JobID)
			if err != nil {
				return err
			}
			if j.Status != "succeeded" || j.Plan == nil {
				return fmt.Errorf("plan job %s %s: %s", j.ID, j.Status, j.Error)
			}
			if a.output == "json" {
				return a.print(j.Plan, nil, nil)
			}
			printPlan(a.out, args[0], j.Plan)
			return nil
		},
	})
	plan.Flags().Int("version", 0, "template version to pin first")
	varFlag(plan)
	update := &cobra.Command{
		Use:   "update ID",
		Short: "Change a stack's title, template version or variables",
		Long: `Change what the stack's next plan or apply uses: its title, the template
version it pins (--version) and its variables (--var name=value, merged into
the stack's; --unset name removes one). Values are checked against the
version's declared variables (type, required) before anything is stored.`,
		Example: `  kloud stack update s-1 --version 2
  kloud stack update s-1 --var web_count=5 --unset debug`,
		Args: need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, changed, err := updateRequest(cmd)
			if err != nil {
				return err
			}
			if !changed {
				return usagef("nothing to change: give --title, --version, --var or --unset")
			}
			s, err := a.c.UpdateStack(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return a.printStacks([]client.Stack{*s})
		},
	}
	update.Flags().Int("version", 0, "template version to pin")
	update.Flags().String("title", "", "new title")
	update.Flags().StringArray("unset", nil, "variable `name` to remove (repeatable)")
	varFlag(update)
	del := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a destroyed or never-applied stack",
		Long: `Delete a stack that was destroyed or never applied. Any other stack is
refused (409) naming its status: destroy it first. Its machines' history
stays for billing.`,
		Example: `  kloud stack destroy s-1 --follow && kloud stack delete s-1`,
		Args:    need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.c.DeleteStack(cmd.Context(), args[0])
		},
	}
	jobs := &cobra.Command{
		Use:   "jobs ID",
		Short: "List a stack's jobs with their phase timings",
		Long: `List a stack's jobs, newest first, with how long each phase took in
milliseconds: compose, init, plan, apply, record.`,
		Example: `  kloud stack jobs s-1
  kloud stack jobs s-1 -o json`,
		Args: need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			js, err := a.c.StackJobs(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			phases := []string{"compose", "init", "plan", "apply", "record"}
			return a.print(js, append([]string{"ID", "KIND", "STATUS", "CREATED"}, "COMPOSE", "INIT", "PLAN", "APPLY", "RECORD"), func() [][]string {
				var rows [][]string
				for _, j := range js {
					row := []string{j.ID, j.Kind, j.Status, ago(j.CreatedAt)}
					for _, p := range phases {
						if ms, ok := j.Timings[p]; ok {
							row = append(row, strconv.FormatInt(ms, 10))
						} else {
							row = append(row, "-")
						}
					}
					rows = append(rows, row)
				}
				return rows
			})
		},
	}
	return []*cobra.Command{plan, update, del, jobs}
}

// updateRequest reads the flags of stack update and stack plan; changed is
// false when none was given.
func updateRequest(cmd *cobra.Command) (client.UpdateStackRequest, bool, error) {
	var req client.UpdateStackRequest
	changed := false
	if f := cmd.Flags().Lookup("title"); f != nil && f.Changed {
		t := f.Value.String()
		req.Title, changed = &t, true
	}
	if cmd.Flags().Changed("version") {
		v, _ := cmd.Flags().GetInt("version")
		if v < 1 {
			return req, false, usagef("--version %d: want a version number (1, 2, …)", v)
		}
		req.TemplateVersion, changed = &v, true
	}
	list, _ := cmd.Flags().GetStringArray("var")
	vs, err := vars(list)
	if err != nil {
		return req, false, err
	}
	var unset []string
	if cmd.Flags().Lookup("unset") != nil {
		unset, _ = cmd.Flags().GetStringArray("unset")
	}
	if len(vs) > 0 || len(unset) > 0 {
		req.Variables, changed = map[string]*string{}, true
		for k, v := range vs {
			req.Variables[k] = &v
		}
		for _, k := range unset {
			req.Variables[k] = nil
		}
	}
	return req, changed, nil
}

// printPlan prints a stack plan as Terraform users read one.
func printPlan(w io.Writer, stackID string, p *client.StackPlan) {
	marks := map[string]string{"create": "  +", "update": "  ~", "replace": "-/+", "destroy": "  -"}
	if len(p.Resources) == 0 {
		fmt.Fprintln(w, "No changes. The stack matches its template version and variables.")
	}
	for _, r := range p.Resources {
		fmt.Fprintf(w, "%s %s\n", marks[r.Action], r.Address)
		if r.Action == "create" {
			continue
		}
		for _, c := range r.Changes {
			fmt.Fprintf(w, "      %s: %s -> %s\n", c.Name, planValue(c.Before), planValue(c.After))
		}
	}
	s := p.Summary
	fmt.Fprintf(w, "\nPlan: %d to add, %d to change, %d to destroy.\n", s.Create+s.Replace, s.Update, s.Destroy+s.Replace)
	before, errB := decimal.NewFromString(p.CostBefore.Hourly)
	after, errA := decimal.NewFromString(p.CostAfter.Hourly)
	if errB == nil && errA == nil {
		delta := after.Sub(before)
		sign := "+"
		if delta.IsNegative() {
			sign = ""
		}
		fmt.Fprintf(w, "Cost: %s -> %s %s/hour (%s%s)\n", p.CostBefore.Hourly, p.CostAfter.Hourly, p.CostAfter.Currency, sign, delta.String())
	}
	fmt.Fprintf(w, "Apply exactly this plan: kloud stack apply %s --plan %s\n", stackID, p.ID)
}

func planValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		if x == "(known after apply)" || x == "(sensitive value)" {
			return x
		}
		return strconv.Quote(x)
	}
	return fmt.Sprint(v)
}
