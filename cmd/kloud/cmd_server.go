package main

import (
	"errors"
	"strconv"

	"github.com/spf13/cobra"
)

// serverCommand is `kloud server`: how the server itself is doing
// (readiness, metrics) and the description of its API.
func serverCommand(a *app) *cobra.Command {
	ready := &cobra.Command{
		Use:   "ready",
		Short: "Show whether the server can serve, and why not",
		Long: `Call GET /readyz: the store reachable with its migrations current, the job
workers and the singleton loops (machine checker, rating processor) running.
Exits 1 when the server is not ready, after printing each failing check's
reason.`,
		Example: `  kloud server ready
  kloud server ready -o json`,
		Args: need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.c.Ready(cmd.Context())
			if err != nil {
				return err
			}
			err = a.print(r, []string{"CHECK", "OK", "REASON"}, func() [][]string {
				var rows [][]string
				for _, c := range r.Checks {
					rows = append(rows, []string{c.Name, strconv.FormatBool(c.OK), c.Reason})
				}
				return rows
			})
			if err == nil && !r.Ready {
				err = errors.New("the server is not ready")
			}
			return err
		},
	}
	metrics := &cobra.Command{
		Use:   "metrics",
		Short: "Print the server's Prometheus metrics",
		Long: `Copy GET /metrics (Prometheus text format) to standard output: jobs, HTTP
requests, machines by state, agents, rating, store calls. Admins only; a
server started with --metrics-listen serves them on that address instead.`,
		Example: `  kloud server metrics | grep kloud_jobs_total`,
		Args:    need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.c.Metrics(cmd.Context(), a.out)
		},
	}
	openapi := &cobra.Command{
		Use:     "openapi",
		Short:   "Print the API's OpenAPI 3.1 description",
		Long:    `Copy GET /api/v1/openapi.json, the OpenAPI 3.1 description of the whole API, to standard output.`,
		Example: `  kloud server openapi > kloud-openapi.json`,
		Args:    need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.c.OpenAPI(cmd.Context(), a.out)
		},
	}
	return group("server", "Readiness, metrics and the API description of the server",
		`What a running server says of itself: whether it can serve, its metrics, and
the OpenAPI description of its API.`,
		`  kloud server ready
  kloud server metrics
  kloud server openapi`, ready, metrics, openapi)
}
