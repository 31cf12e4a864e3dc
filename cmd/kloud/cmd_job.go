package main

import (
	"strconv"

	"github.com/spf13/cobra"

	"github.com/kloud/kloud/client"
)

func jobCommand(a *app) *cobra.Command {
	show := &cobra.Command{
		Use:     "show ID",
		Short:   "Show a job's status",
		Long:    `Show a job: its kind, status (queued, running, succeeded, failed), progress and error.`,
		Example: `  kloud job show j-1`,
		Args:    need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			j, err := a.c.Job(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.print(j, []string{"ID", "KIND", "STATUS", "PERCENT", "ERROR"}, func() [][]string {
				return [][]string{{j.ID, j.Kind, j.Status, strconv.Itoa(j.Percentage), j.Error}}
			})
		},
	}
	events := followFlag(&cobra.Command{
		Use:   "events ID",
		Short: "List or follow a job's events",
		Long: `List a job's events so far (progress and Terraform's output, kept across
restarts); with --follow, stream them with a progress bar until the job ends.`,
		Example: `  kloud job events j-1
  kloud job events j-1 --follow`,
		Args: need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if follow, _ := cmd.Flags().GetBool("follow"); follow {
				return a.follow(cmd, args[0])
			}
			evs, err := a.c.JobEvents(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.print(evs, []string{"SEQ", "AT", "KIND", "PERCENT", "MESSAGE"}, func() [][]string {
				var rows [][]string
				for _, e := range evs {
					rows = append(rows, []string{strconv.FormatInt(e.Seq, 10), ago(e.At), e.Kind, strconv.Itoa(e.Percentage), e.Message})
				}
				return rows
			})
		},
	})
	cancel := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a queued or running job",
		Long: `Cancel a job: a queued one fails at once, a running one is stopped and then
fails with the reason. An ended job is refused (409) naming its status.`,
		Example: `  kloud job cancel j-1`,
		Args:    need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			j, err := a.c.Cancel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.print(j, []string{"ID", "KIND", "STATUS", "ERROR", "CANCEL"}, func() [][]string {
				return [][]string{{j.ID, j.Kind, j.Status, j.Error, j.CancelReason}}
			})
		},
	}
	return group("job", "Follow and cancel jobs",
		`Long operations (bootstrap, apply, destroy, start, stop) are jobs, with
events that survive restarts.`,
		`  kloud job events j-1 --follow
  kloud job cancel j-1`, show, events, cancel)
}

func machineCommand(a *app) *cobra.Command {
	list := &cobra.Command{
		Use:     "list",
		Short:   "List machines with their state, uptime and agent",
		Long:    `List the machines you may see (admins: all), with the uptime the server computed.`,
		Example: `  kloud machine list -o json`,
		Args:    need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ms, err := a.c.Machines(cmd.Context())
			if err != nil {
				return err
			}
			return a.printMachines(ms)
		},
	}
	info := &cobra.Command{
		Use:     "info ID",
		Short:   "Show a machine, its agent and its metadata",
		Long:    `Show one machine: its row, what Kloud knows of its agent, and its provider metadata.`,
		Example: `  kloud machine info m-1`,
		Args:    need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.c.Machine(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.print(m, nil, nil)
			}
			if err := a.printMachines([]client.Machine{*m}); err != nil {
				return err
			}
			agentSeen := "-"
			if m.Agent.LastSeenAt != nil {
				agentSeen = ago(*m.Agent.LastSeenAt)
			}
			_, err = a.out.Write([]byte("agent:\n  status:       " + m.Agent.Status + "\n  last seen at: " + agentSeen +
				"\n  version:      " + orDash(m.Agent.Version) + "\nmetadata: " + string(m.Metadata) + "\n"))
			return err
		},
	}
	start := followFlag(&cobra.Command{
		Use:   "start ID",
		Short: "Start a stopped machine",
		Long: `Start the job that starts a Stopped machine; any other state is refused (409)
with what it allows.`,
		Example: `  kloud machine start m-1 --follow`,
		Args:    need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			start := a.c.StartMachine
			if o, _ := cmd.Flags().GetBool("override"); o {
				start = a.c.StartMachineAnyway
			}
			ref, err := start(cmd.Context(), args[0])
			return a.startedJob(cmd, ref, err)
		},
	})
	start.Flags().Bool("override", false, "start even though the budget is exhausted (admins; recorded in the audit log)")
	stop := followFlag(&cobra.Command{
		Use:   "stop ID",
		Short: "Stop a running machine",
		Long: `Start the job that stops a Running machine; any other state is refused (409)
with what it allows.`,
		Example: `  kloud machine stop m-1 --follow`,
		Args:    need("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := a.c.StopMachine(cmd.Context(), args[0])
			return a.startedJob(cmd, ref, err)
		},
	})
	return group("machine", "List, start and stop machines",
		`Machines are what stacks build; every change of state is recorded, and that
history is the uptime the rating bridge prices.`,
		`  kloud machine list
  kloud machine stop m-1 --follow`, append([]*cobra.Command{list, info, start, stop, machineScheduleCommand(a)}, machineAccessCommands(a)...)...)
}

// printMachines prints machines as the server computed them: the uptime
// is the server's uptime_seconds, the same in a list and in info.
func (a *app) printMachines(ms []client.Machine) error {
	return a.print(ms, []string{"ID", "LABEL", "PROVIDER", "STATE", "ALWAYS_ON", "UPTIME", "AGENT", "REASON"}, func() [][]string {
		var rows [][]string
		for _, m := range ms {
			rows = append(rows, []string{m.ID, m.Label, m.Provider, m.State.String(), strconv.FormatBool(m.AlwaysOn), strconv.FormatInt(m.UptimeSeconds, 10) + "s", orDash(m.Agent.Status), m.Reason})
		}
		return rows
	})
}
