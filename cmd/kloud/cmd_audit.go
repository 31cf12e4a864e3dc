package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/kloud/kloud/client"
)

func auditCommand(a *app) *cobra.Command {
	list := &cobra.Command{
		Use:   "list",
		Short: "List the audit log, newest first",
		Long: `List who did what: every state-changing API call (its actor, action, target,
outcome and request id) and every automatic action (the machine checker's
stops, by the actor "system"). Admins see every entry; members the actions
they took and those taken on what they own. --since takes an RFC 3339 time or a
duration back from now (90m, 24h); --before continues after the last entry of a
previous page.`,
		Example: `  kloud audit list
  kloud audit list --target machine/m-0123456789abcdef --since 24h
  kloud audit list --actor system -o json`,
		Args: need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := client.AuditQuery{Actor: str(cmd, "actor"), Target: str(cmd, "target"), Before: str(cmd, "before")}
			q.Limit, _ = cmd.Flags().GetInt("limit")
			if v := str(cmd, "since"); v != "" {
				if d, err := time.ParseDuration(v); err == nil && d >= 0 {
					q.Since = time.Now().Add(-d)
				} else if t, err := time.Parse(time.RFC3339, v); err == nil {
					q.Since = t
				} else {
					return usagef("--since %q is neither an RFC 3339 time nor a duration", clip(v))
				}
			}
			es, err := a.c.Audit(cmd.Context(), q)
			if err != nil {
				return err
			}
			return a.print(es, []string{"AT", "ACTOR", "ACTION", "TARGET", "OUTCOME", "REQUEST", "DETAIL"}, func() [][]string {
				var rows [][]string
				for _, e := range es {
					rows = append(rows, []string{e.At.Format(time.RFC3339), e.Actor, e.Action, e.Target, e.Outcome, e.RequestID, e.Detail})
				}
				return rows
			})
		},
	}
	f := list.Flags()
	f.String("actor", "", "only this actor's entries (a user id, or system)")
	f.String("target", "", "only entries on this target (stack/ID, machine/ID, ...)")
	f.String("since", "", "only entries since this RFC 3339 time or duration ago")
	f.String("before", "", "the page after this entry id")
	f.Int("limit", 100, "entries at most (1 to 1000)")
	return group("audit", "Read the audit log",
		`The audit log records who changed what, and what Kloud did by itself.`,
		`  kloud audit list --since 24h`, list)
}
