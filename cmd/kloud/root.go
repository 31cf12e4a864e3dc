package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/version"
)

// Exit codes: a usage error (unknown command or flag, missing argument,
// bad flag value) is 2; anything else that failed, a server's refusal
// included, is 1.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError is a command line that does not parse; the command names
// the command whose help explains it.
type usageError struct {
	err     error
	command string
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// exitCode prints err as the user should read it and returns the process
// exit code.
func exitCode(err error, stderr io.Writer) int {
	var (
		apiErr *client.Error
		usage  *usageError
		status exitStatus
	)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &status):
		return int(status)
	case errors.As(err, &usage):
		fmt.Fprintln(stderr, "error:", usage.err)
		if usage.command != "" {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", usage.command)
		}
		return exitUsage
	case errors.As(err, &apiErr):
		fmt.Fprintf(stderr, "error (%d): %s\n", apiErr.Status, apiErr.Message)
		for _, d := range apiErr.Diagnostics {
			fmt.Fprintf(stderr, "  %s:%d:%d: %s\n", d.File, d.Line, d.Column, d.Message)
		}
		if len(apiErr.Allowed) > 0 {
			fmt.Fprintf(stderr, "  state %s allows: %v\n", apiErr.State, apiErr.Allowed)
		}
		return exitError
	default:
		fmt.Fprintln(stderr, "error:", err)
		return exitError
	}
}

// runIO runs one command line with the given output streams.
func runIO(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	var usage *usageError
	if errors.As(err, &usage) && usage.command == "" && cmd != nil {
		usage.command = cmd.CommandPath()
	}
	return err
}

// app is one CLI invocation: its output streams, its persistent flags and
// the client they make.
type app struct {
	out, errOut io.Writer
	server      string
	token       string
	output      string
	c           *client.Client
}

const defaultServer = "http://127.0.0.1:8080"

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	a := &app{out: stdout, errOut: stderr}
	root := &cobra.Command{
		Use:   "kloud",
		Short: "Terraform-backed stack orchestration",
		Long: `kloud runs the Kloud server (kloud serve) and is its command-line client.

Developers provision stacks (groups of machines) from Terraform templates
through cloud providers; admins start and stop machines; the rating bridge
turns machine uptime into priced usage and billing reports. Every client
command is "kloud <noun> <verb>" and mirrors one endpoint of the HTTP API.

The client finds its server in --server (or KLOUD_URL) and authenticates with
--token (or KLOUD_TOKEN, or the admin.token of the local data dir). Every
command that prints takes -o table (the default) or -o json.`,
		Example: `  kloud serve --data-dir ./data
  export KLOUD_URL=http://127.0.0.1:8080 KLOUD_TOKEN=$(cat ./data/admin.token)
  kloud credential add sandbox --title local
  kloud stack apply STACK_ID --follow
  kloud rating summary --groupby machine_id -o json`,
		Version:                    version.Version,
		SilenceErrors:              true,
		SilenceUsage:               true,
		Args:                       cobra.ArbitraryArgs,
		RunE:                       groupRun,
		SuggestionsMinimumDistance: 2,
		PersistentPreRunE:          a.setup,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("kloud {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err: err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.server, "server", envOr("KLOUD_URL", defaultServer), "server URL (env KLOUD_URL)")
	// The token's default is read in setup, so that help never prints it.
	pf.StringVar(&a.token, "token", "", "bearer token (env KLOUD_TOKEN; default the admin.token of the local data dir)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))

	root.AddGroup(&cobra.Group{ID: "server", Title: "Server:"}, &cobra.Group{ID: "api", Title: "Resources:"})
	root.AddCommand(serveCommand())
	for _, c := range []*cobra.Command{
		userCommand(a), providerCommand(a), credentialCommand(a), templateCommand(a), stackCommand(a),
		jobCommand(a), machineCommand(a), ratingCommand(a), reportCommand(a), auditCommand(a), budgetCommand(a), webhookCommand(a),
	} {
		c.GroupID = "api"
		root.AddCommand(c)
	}
	root.AddCommand(versionCommand(a))
	exampleBuiltins(root)
	return root
}

// setup checks the persistent flags and makes the client.
func (a *app) setup(*cobra.Command, []string) error {
	if a.output != "table" && a.output != "json" {
		return usagef("-o %q: want table or json", clip(a.output))
	}
	if a.token == "" {
		a.token = os.Getenv("KLOUD_TOKEN")
	}
	if a.token == "" {
		if b, err := os.ReadFile(filepath.Join(defaultDataDir(), "admin.token")); err == nil {
			a.token = strings.TrimSpace(string(b))
		}
	}
	a.c = client.New(a.server, a.token)
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// group makes a noun: a command whose verbs are its subcommands.
func group(use, short, long, example string, verbs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Long: long, Example: example, Args: cobra.ArbitraryArgs, RunE: groupRun, SuggestionsMinimumDistance: 2}
	c.AddCommand(verbs...)
	return c
}

// groupRun is a noun run without a verb: its help, or a usage error
// naming the unknown verb.
func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", clip(args[0]), cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return &usageError{err: errors.New(msg), command: cmd.CommandPath()}
}

// need checks a verb's positional arguments: exactly the named ones, and
// optional ones after them.
func need(names ...string) cobra.PositionalArgs {
	var required, optional []string
	for _, n := range names {
		if strings.HasPrefix(n, "[") {
			optional = append(optional, n)
		} else {
			required = append(required, n)
		}
	}
	return func(_ *cobra.Command, args []string) error {
		if len(args) < len(required) {
			return usagef("missing argument %s", strings.Join(required[len(args):], " "))
		}
		if len(args) > len(required)+len(optional) {
			return usagef("unexpected argument %q", clip(args[len(required)+len(optional)]))
		}
		return nil
	}
}

func versionCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kloud's version",
		Long: `Print the version of this kloud binary, set when it was built (build.sh
stamps the git description). The server shows its own in GET /healthz.`,
		Example: `  kloud version
  kloud version -o json`,
		Args: need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := struct {
				Version string `json:"version"`
			}{version.Version}
			return a.print(v, nil, func() [][]string { return [][]string{{"kloud " + v.Version}} })
		},
	}
}

// exampleBuiltins gives cobra's own help and completion commands an
// example, as every other command has.
func exampleBuiltins(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		switch c.Name() {
		case "help":
			c.Example = "  kloud help stack apply"
		case "completion":
			c.Example = "  source <(kloud completion bash)\n  kloud completion zsh > \"${fpath[1]}/_kloud\""
			for _, sh := range c.Commands() {
				sh.Example = "  kloud completion " + sh.Name()
			}
		}
	}
}
