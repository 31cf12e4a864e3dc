package main

import (
	"strconv"

	"github.com/spf13/cobra"

	"github.com/kloud/kloud/client"
)

func reportCommand(a *app) *cobra.Command {
	list := &cobra.Command{
		Use:   "list",
		Short: "List billing reports",
		Long: `List the report files the writer pipeline made (CSV, AWS detailed-billing
style, and JSON), one per scope and month. Members see only their own.`,
		Example: `  kloud report list
  kloud report list -o json`,
		Args: need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			rs, err := a.c.Reports(cmd.Context())
			if err != nil {
				return err
			}
			return a.printReports(rs)
		},
	}
	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Print a billing report file",
		Long: `Copy one report file, as the server stores it, to standard output: the file is
the output, so -o does not change it.`,
		Example: `  kloud report get u-1-2026-12.csv > bill.csv`,
		Args:    need("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.c.Report(cmd.Context(), args[0], a.out)
		},
	}
	return group("report", "List and download billing reports",
		`Reports are the files the rating bridge's writers keep up to date.`,
		`  kloud report list
  kloud report get u-1-2026-12.csv`, list, get)
}

func (a *app) printReports(rs []client.Report) error {
	return a.print(rs, []string{"NAME", "SCOPE", "MONTH", "FORMAT", "SIZE", "MODIFIED"}, func() [][]string {
		var rows [][]string
		for _, r := range rs {
			rows = append(rows, []string{r.Name, r.Scope, r.Month, r.Format, strconv.FormatInt(r.Size, 10), ago(r.ModifiedAt)})
		}
		return rows
	})
}
