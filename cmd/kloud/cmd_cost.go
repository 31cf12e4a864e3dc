package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"

	"github.com/kloud/kloud/client"
)

// Cost control: budgets, schedules, webhooks and re-rating.

func budgetCommand(a *app) *cobra.Command {
	set := &cobra.Command{
		Use:   "set SCOPE AMOUNT",
		Short: "Set the budget of a member or a stack (admin)",
		Long: `Set the budget of SCOPE (user:<id> or stack:<id>): AMOUNT a decimal, per
--period (day, week or month, calendar UTC). At each --warn-at fraction a
budget.warned event goes to the webhooks once per period; at 100 % a
budget.exhausted one, and with --action stop every running machine of the
scope that is not always_on is stopped. While exhausted, starts and applies
in the scope are refused (409) unless an admin overrides.`,
		Example: `  kloud budget set user:usr-1 25.00 --warn-at 0.8 --action stop
  kloud budget set stack:stk-1 5 --period day`,
		Args: need("SCOPE", "AMOUNT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			amount, err := decimal.NewFromString(args[1])
			if err != nil {
				return usagef("AMOUNT %q is not a decimal number", clip(args[1]))
			}
			req := client.BudgetRequest{Amount: amount, Period: str(cmd, "period"), Action: str(cmd, "action")}
			warn, _ := cmd.Flags().GetStringSlice("warn-at")
			for _, w := range warn {
				f, err := decimal.NewFromString(strings.TrimSpace(w))
				if err != nil {
					return usagef("--warn-at %q is not a decimal fraction", clip(w))
				}
				req.WarnAt = append(req.WarnAt, f)
			}
			b, err := a.c.PutBudget(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return a.printBudgets(b, []client.Budget{*b})
		},
	}
	set.Flags().String("period", "month", "day, week or month")
	set.Flags().StringSlice("warn-at", nil, "fractions that warn, e.g. 0.5,0.8")
	set.Flags().String("action", "notify", "at 100 %: stop or notify")
	show := &cobra.Command{
		Use:     "show SCOPE",
		Short:   "Show a budget with what it has spent and its forecast",
		Long:    `Show a budget: spent (the rated cost of the period plus the running time not rated yet, priced now), the forecast to the period's end and its state (ok, warned, exhausted).`,
		Example: `  kloud budget show user:usr-1 -o json`,
		Args:    need("SCOPE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := a.c.Budget(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printBudgets(b, []client.Budget{*b})
		},
	}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the budgets you may see",
		Long:    `List budgets (admins: all; members: their own and their stacks') with what each has spent.`,
		Example: `  kloud budget list`,
		Args:    need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			bs, err := a.c.Budgets(cmd.Context())
			if err != nil {
				return err
			}
			return a.printBudgets(bs, bs)
		},
	}
	del := &cobra.Command{
		Use:     "delete SCOPE",
		Short:   "Remove a budget (admin)",
		Long:    `Remove the budget of SCOPE; its machines are no longer limited.`,
		Example: `  kloud budget delete stack:stk-1`,
		Args:    need("SCOPE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.c.DeleteBudget(cmd.Context(), args[0])
		},
	}
	return group("budget", "Limit what a member's or a stack's machines cost",
		`Budgets limit metered cost per calendar period and act at their thresholds.`,
		`  kloud budget set user:usr-1 25 --warn-at 0.8 --action stop
  kloud budget show user:usr-1`, set, show, list, del)
}

// printBudgets prints v as JSON, or bs as a table.
func (a *app) printBudgets(v any, bs []client.Budget) error {
	return a.print(v, []string{"SCOPE", "AMOUNT", "PERIOD", "SPENT", "FORECAST", "STATE", "ACTION"}, func() [][]string {
		rows := make([][]string, 0, len(bs))
		for _, b := range bs {
			rows = append(rows, []string{b.Scope, b.Amount.String() + " " + b.Currency, b.Period, b.Spent.StringFixed(2), b.Forecast.StringFixed(2), b.State, b.Action})
		}
		return rows
	})
}

func machineScheduleCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule ID",
		Short: "Start and stop a machine (or a stack's machines) on a schedule",
		Long: `Set, show or remove the schedule of machine ID (with --stack, of every machine
of stack ID that has none of its own): cron expressions (minute hour day month
weekday) in --timezone. Each firing is an ordinary start or stop job with the
reason "schedule". Without --autostart, --autostop or --delete, show it.`,
		Example: `  kloud machine schedule m-1 --autostart "0 8 * * 1-5" --autostop "0 19 * * 1-5" --timezone Europe/Berlin
  kloud machine schedule stk-1 --stack --autostop "0 20 * * *"
  kloud machine schedule m-1 --delete`,
		Args: need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, id := cmd.Context(), args[0]
			stack, _ := cmd.Flags().GetBool("stack")
			del, _ := cmd.Flags().GetBool("delete")
			put, get, remove := a.c.PutMachineSchedule, a.c.MachineSchedule, a.c.DeleteMachineSchedule
			if stack {
				put, get, remove = a.c.PutStackSchedule, a.c.StackSchedule, a.c.DeleteStackSchedule
			}
			var (
				s   *client.Schedule
				err error
			)
			switch req := (client.ScheduleRequest{Autostart: str(cmd, "autostart"), Autostop: str(cmd, "autostop"), Timezone: str(cmd, "timezone")}); {
			case del:
				return remove(ctx, id)
			case req.Autostart == "" && req.Autostop == "":
				s, err = get(ctx, id)
			default:
				s, err = put(ctx, id, req)
			}
			if err != nil {
				return err
			}
			return a.print(s, []string{"TARGET", "AUTOSTART", "AUTOSTOP", "TIMEZONE", "NEXT START", "NEXT STOP"}, func() [][]string {
				return [][]string{{s.Target, orDash(s.Autostart), orDash(s.Autostop), s.Timezone, timeOrDash(s.NextAutostart), timeOrDash(s.NextAutostop)}}
			})
		},
	}
	cmd.Flags().String("autostart", "", `cron expression that starts it, e.g. "0 8 * * 1-5"`)
	cmd.Flags().String("autostop", "", `cron expression that stops it, e.g. "0 19 * * 1-5"`)
	cmd.Flags().String("timezone", "", "IANA time zone of the expressions (default UTC)")
	cmd.Flags().Bool("stack", false, "ID is a stack: schedule every machine of it")
	cmd.Flags().Bool("delete", false, "remove the schedule")
	return cmd
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func webhookCommand(a *app) *cobra.Command {
	add := &cobra.Command{
		Use:   "add URL",
		Short: "Send events to a URL",
		Long: fmt.Sprintf(`Send the --events named (%s) to URL as signed JSON:
X-Kloud-Signature: sha256=<hex HMAC-SHA256 of the body with --secret>. A
failed delivery is retried with backoff for an hour. Admins get every
owner's events; members their own. The secret is never shown again.`, strings.Join([]string{client.EventJobSucceeded, client.EventJobFailed,
			client.EventBudgetWarned, client.EventBudgetExhausted, client.EventMachineStopped, client.EventStackDrifted}, ", ")),
		Example: `  kloud webhook add https://hooks.example.com/kloud --events budget.warned,budget.exhausted --secret "$SECRET"`,
		Args:    need("URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			events, _ := cmd.Flags().GetStringSlice("events")
			h, err := a.c.CreateWebhook(cmd.Context(), client.WebhookRequest{URL: args[0], Events: events, Secret: str(cmd, "secret")})
			if err != nil {
				return err
			}
			return a.printWebhooks(h, []client.Webhook{*h})
		},
	}
	add.Flags().StringSlice("events", nil, "events to send")
	add.Flags().String("secret", "", "secret the deliveries are signed with")
	list := &cobra.Command{
		Use:     "list",
		Short:   "List webhooks",
		Long:    `List your webhooks (admins: every one), without their secrets.`,
		Example: `  kloud webhook list -o json`,
		Args:    need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			hs, err := a.c.Webhooks(cmd.Context())
			if err != nil {
				return err
			}
			return a.printWebhooks(hs, hs)
		},
	}
	deliveries := &cobra.Command{
		Use:     "deliveries ID",
		Short:   "Show a webhook's delivery log",
		Long:    `Show a webhook's latest deliveries, newest first, with every attempt's status.`,
		Example: `  kloud webhook deliveries wh-1`,
		Args:    need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ds, err := a.c.Deliveries(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.print(ds, []string{"ID", "EVENT", "STATUS", "ATTEMPTS", "LAST", "CREATED"}, func() [][]string {
				rows := make([][]string, 0, len(ds))
				for _, d := range ds {
					last := "-"
					if n := len(d.Attempts); n > 0 {
						la := d.Attempts[n-1]
						last = fmt.Sprint(la.StatusCode)
						if la.Error != "" {
							last += " " + clip(la.Error)
						}
					}
					rows = append(rows, []string{d.ID, d.Event, d.Status, fmt.Sprint(len(d.Attempts)), last, ago(d.CreatedAt)})
				}
				return rows
			})
		},
	}
	del := &cobra.Command{
		Use:     "delete ID",
		Short:   "Delete a webhook and its delivery log",
		Long:    `Delete a webhook; deliveries still pending are dropped.`,
		Example: `  kloud webhook delete wh-1`,
		Args:    need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.c.DeleteWebhook(cmd.Context(), args[0])
		},
	}
	return group("webhook", "Send Kloud's events to URLs",
		`Webhooks receive job, budget, machine and drift events as signed JSON.`,
		`  kloud webhook add https://example.com/hook --events job.failed --secret s3cret
  kloud webhook deliveries wh-1`, add, list, deliveries, del)
}

// printWebhooks prints v as JSON, or hs as a table.
func (a *app) printWebhooks(v any, hs []client.Webhook) error {
	return a.print(v, []string{"ID", "URL", "EVENTS", "OWNER", "CREATED"}, func() [][]string {
		rows := make([][]string, 0, len(hs))
		for _, h := range hs {
			rows = append(rows, []string{h.ID, h.URL, strings.Join(h.Events, ","), h.OwnerID, ago(h.CreatedAt)})
		}
		return rows
	})
}

func reprocessCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reprocess",
		Short: "Re-rate closed periods with today's rules (admin)",
		Long: `Price the rated periods that begin in [--begin, --end) again with the rules
valid in each (validity dates included) and rewrite the affected reports.
With --dry-run, only say how much money would move, per scope and period.`,
		Example: `  kloud rating reprocess --begin 2026-11-01T00:00:00Z --end 2026-12-01T00:00:00Z --dry-run
  kloud rating reprocess --scope usr-1 --begin 2026-11-01T00:00:00Z --end 2026-12-01T00:00:00Z`,
		Args: need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := client.ReprocessRequest{Scope: str(cmd, "scope")}
			for _, f := range []struct {
				name string
				dst  *time.Time
			}{{"begin", &req.Begin}, {"end", &req.End}} {
				t, err := time.Parse(time.RFC3339, str(cmd, f.name))
				if err != nil {
					return usagef("--%s %q is not an RFC 3339 time", f.name, clip(str(cmd, f.name)))
				}
				*f.dst = t
			}
			req.DryRun, _ = cmd.Flags().GetBool("dry-run")
			out, err := a.c.Reprocess(cmd.Context(), req)
			if err != nil {
				return err
			}
			if err := a.print(out, []string{"SCOPE", "BEGIN", "END", "OLD", "NEW", "DELTA"}, func() [][]string {
				rows := make([][]string, 0, len(out.Periods))
				for _, p := range out.Periods {
					rows = append(rows, []string{p.Scope, p.Begin.Format(time.RFC3339), p.End.Format(time.RFC3339), p.Old.String(), p.New.String(), p.Delta.String()})
				}
				return rows
			}); err != nil || a.output == "json" {
				return err
			}
			verb := "moved"
			if out.DryRun {
				verb = "would move"
			}
			fmt.Fprintf(a.out, "%d periods read; %d change; total %s %s\n", out.Scanned, len(out.Periods), verb, out.Delta)
			return nil
		},
	}
	cmd.Flags().String("scope", "", "one scope (an owner id); default every scope")
	cmd.Flags().String("begin", "", "RFC 3339 begin (required)")
	cmd.Flags().String("end", "", "RFC 3339 end (required)")
	cmd.Flags().Bool("dry-run", false, "only report the money that would move")
	return cmd
}
