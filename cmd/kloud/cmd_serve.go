package main

import (
	"errors"
	"flag"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// serveCommand hands its arguments, unparsed, to parseServeFlags: serve's
// flags and their KLOUD_* variables are described there (kloud serve -h).
func serveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "serve [flags]",
		Short: "Run the Kloud server",
		Long: `Run the Kloud server: the HTTP API, the job workers, the machine checker and
the rating bridge, on the SQLite store of --data-dir (or --store mongodb://...).

On first start it makes the admin and prints its token once, writing it to
<data-dir>/admin.token (mode 0600), unless KLOUD_ADMIN_TOKEN is set. Members'
Terraform runs and sandbox machines run confined; --unconfined turns that off
and says so loudly. Every flag also reads a KLOUD_* variable: kloud serve -h
lists them.`,
		Example: `  kloud serve --data-dir ./data --listen 127.0.0.1:8080
  KLOUD_ADMIN_TOKEN=secret kloud serve --store mongodb://db:27017/kloud`,
		GroupID:            "server",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Flags or KLOUD_* values that do not parse are usage errors
			// (exit 2); serve parses them again and prints -h's usage.
			if _, err := parseServeFlags(args, os.LookupEnv, io.Discard); err != nil && !errors.Is(err, flag.ErrHelp) {
				return &usageError{err: err, command: cmd.CommandPath()}
			}
			return serve(args)
		},
	}
}
