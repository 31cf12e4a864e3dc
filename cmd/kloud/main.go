// Command kloud is Kloud's server (kloud serve) and its command-line client,
// which mirrors the HTTP API: kloud credential add, kloud stack apply
// --follow, kloud machine stop, kloud rating summary, …
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/kloud/kloud/client"
)

const usage = `kloud: Terraform-backed stack orchestration.

Usage:
  kloud serve [flags]                       run the server
  kloud user create NAME [--role admin|member]
  kloud credential add|list|show|delete|verify|bootstrap ...
  kloud template create|list|show|plan ...
  kloud stack create|list|show|apply|destroy ... [--follow]
  kloud job show|events ID [--follow]
  kloud job cancel ID
  kloud machine list|info|start|stop ...
  kloud rating modules|module|hashmap|quote|summary|process ...
  kloud report list|get ...

Client flags (anywhere after the subcommand):
  --server URL    server URL (KLOUD_URL, default http://127.0.0.1:8080)
  --token TOKEN   bearer token (KLOUD_TOKEN, default the admin.token of the data dir)
  -o table|json   output format
`

func main() {
	if err := run(os.Args[1:]); err != nil {
		var apiErr *client.Error
		switch {
		case errors.Is(err, flag.ErrHelp):
			os.Exit(0)
		case errors.As(err, &apiErr):
			fmt.Fprintf(os.Stderr, "error (%d): %s\n", apiErr.Status, apiErr.Message)
			for _, d := range apiErr.Diagnostics {
				fmt.Fprintf(os.Stderr, "  %s:%d:%d: %s\n", d.File, d.Line, d.Column, d.Message)
			}
			if len(apiErr.Allowed) > 0 {
				fmt.Fprintf(os.Stderr, "  state %s allows: %v\n", apiErr.State, apiErr.Allowed)
			}
		default:
			fmt.Fprintln(os.Stderr, "error:", err)
		}
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Print(usage)
		return nil
	}
	if args[0] == "serve" {
		return serve(args[1:])
	}
	if args[0] == "version" {
		fmt.Println("kloud", versionString)
		return nil
	}
	return cli(args)
}

const versionString = "0.1.0"
