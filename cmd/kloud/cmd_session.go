package main

import (
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kloud/kloud/client"
)

// sessionCommand is "kloud session": who the token belongs to, and the web
// dashboard's sign-in link. (Signing a browser in and out, POST and DELETE
// /api/v1/sessions, is the dashboard's own business: a cookie is of no use
// to the CLI.)
func sessionCommand(a *app) *cobra.Command {
	show := &cobra.Command{
		Use:     "show",
		Short:   "Show who the token belongs to",
		Long:    `Show the user the token authenticates as (GET /api/v1/sessions): id, name and role.`,
		Example: `  kloud session show -o json`,
		Args:    need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.c.Session(cmd.Context())
			if err != nil {
				return err
			}
			return a.print(s, []string{"ID", "NAME", "ROLE", "VIA"}, func() [][]string {
				return [][]string{{s.User.ID, s.User.Name, s.User.Role, s.Method}}
			})
		},
	}
	link := &cobra.Command{
		Use:   "link",
		Short: "Print the web dashboard's sign-in link for the token",
		Long: `Print the address that signs a browser in to the web dashboard with the
token: <server>/login#token=TOKEN. The token travels in the URL's fragment,
which the browser never sends to the server; the page trades it for a
session cookie and forgets it. Treat the link like the token itself.`,
		Example: `  kloud session link
  KLOUD_TOKEN=klu_… kloud session link --server https://kloud.example.com`,
		Args: need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := a.c.Session(cmd.Context()); err != nil {
				return err
			}
			link := client.SignInLink(a.server, a.token)
			return a.print(map[string]string{"url": link}, []string{"URL"}, func() [][]string {
				return [][]string{{link}}
			})
		},
	}
	return group("session", "Who you are, and the web dashboard's sign-in link",
		`The web dashboard (the server's / in a browser) signs in with a token and keeps
a session cookie; the CLI sends the token itself.`,
		`  kloud session show
  kloud session link`, show, link)
}

// jobListCommand is "kloud job list".
func jobListCommand(a *app) *cobra.Command {
	var statuses []string
	var stackID, machineID string
	var limit int
	c := &cobra.Command{
		Use:   "list",
		Short: "List jobs: running and queued ones unless --status says",
		Long: `List jobs, newest first: yours (admins: everyone's), by default those queued
or running. --status takes any of queued, running, succeeded, failed.`,
		Example: `  kloud job list
  kloud job list --status succeeded,failed --stack stk-1 --limit 10`,
		Args: need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			js, err := a.c.Jobs(cmd.Context(), client.JobQuery{Statuses: statuses, StackID: stackID, MachineID: machineID, Limit: limit})
			if err != nil {
				return err
			}
			return a.print(js, []string{"ID", "KIND", "STATUS", "PERCENT", "TARGET", "CREATED", "ERROR"}, func() [][]string {
				var rows [][]string
				for _, j := range js {
					target := strings.TrimSpace(strings.Join([]string{j.StackID, j.MachineID, j.CredentialID}, " "))
					rows = append(rows, []string{j.ID, j.Kind, j.Status, strconv.Itoa(j.Percentage), orDash(target), ago(j.CreatedAt), j.Error})
				}
				return rows
			})
		},
	}
	c.Flags().StringSliceVar(&statuses, "status", nil, "statuses to list (queued, running, succeeded, failed; default queued,running)")
	c.Flags().StringVar(&stackID, "stack", "", "only this stack's jobs")
	c.Flags().StringVar(&machineID, "machine", "", "only this machine's jobs")
	c.Flags().IntVar(&limit, "limit", 0, "at most this many (default 100, max 1000)")
	return c
}
