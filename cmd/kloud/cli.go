package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kloud/kloud/client"
)

// cmdContext is one CLI invocation: its client, output format and the
// arguments left after its flags.
type cmdContext struct {
	ctx    context.Context
	c      *client.Client
	output string
	args   []string
	fs     *flag.FlagSet
	out    io.Writer
}

// newFlags makes a flag set with the client flags every subcommand takes.
func newFlags(name string) (*flag.FlagSet, *string, *string, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	server := fs.String("server", envOr("KLOUD_URL", "http://127.0.0.1:8080"), "server URL (KLOUD_URL)")
	token := fs.String("token", os.Getenv("KLOUD_TOKEN"), "bearer token (KLOUD_TOKEN)")
	output := fs.String("o", "table", "output: table or json")
	return fs, server, token, output
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// parse parses flags that may come before or after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

type command struct {
	flags func(fs *flag.FlagSet) // extra flags
	run   func(cc *cmdContext) error
}

func cli(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("%q needs a verb; see kloud help", args[0])
	}
	noun, verb := args[0], args[1]
	cmd, ok := commands()[noun+" "+verb]
	if !ok {
		return fmt.Errorf("unknown command %q; see kloud help", noun+" "+verb)
	}
	fs, server, token, output := newFlags(noun + " " + verb)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	pos, err := parse(fs, args[2:])
	if err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("-o %q: want table or json", *output)
	}
	if *token == "" {
		if b, err := os.ReadFile(filepath.Join(defaultDataDir(), "admin.token")); err == nil {
			*token = strings.TrimSpace(string(b))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return cmd.run(&cmdContext{ctx: ctx, c: client.New(*server, *token), output: *output, args: pos, fs: fs, out: os.Stdout})
}

// arg returns the i-th positional argument or an error naming it.
func (cc *cmdContext) arg(i int, name string) (string, error) {
	if i >= len(cc.args) {
		return "", fmt.Errorf("missing argument %s", name)
	}
	return cc.args[i], nil
}

func (cc *cmdContext) str(name string) string { return cc.fs.Lookup(name).Value.String() }

func (cc *cmdContext) flag(name string) bool { return cc.fs.Lookup(name).Value.String() == "true" }

// print writes v as JSON, or as a table of the given columns.
func (cc *cmdContext) print(v any, header []string, rows func() [][]string) error {
	if cc.output == "json" || rows == nil {
		enc := json.NewEncoder(cc.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(cc.out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows() {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// varsFlag collects repeated --var k=v.
type varsFlag map[string]string

func (v varsFlag) String() string { return "" }

func (v varsFlag) Set(s string) error {
	k, val, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("--var %q: want name=value", s)
	}
	v[k] = val
	return nil
}

// follow streams a job's events with a progress bar until it ends. Each
// line is printed once: an error event repeats Terraform's error, already
// printed as output, so only its lines not seen yet are printed, and a
// failed job's error is not printed again at the end.
func (cc *cmdContext) follow(jobID string) error {
	w := cc.out
	printed := map[string]bool{}
	job, err := cc.c.FollowJob(cc.ctx, jobID, func(e client.Event) {
		switch e.Kind {
		case "output":
			printed[strings.TrimSpace(e.Message)] = true
			fmt.Fprintf(w, "  | %s\n", e.Message)
		case "error":
			var fresh []string
			for _, l := range strings.Split(e.Message, "\n") {
				if t := strings.TrimSpace(l); t != "" && !printed[t] {
					fresh = append(fresh, l)
				}
			}
			fmt.Fprintf(w, "%s %3d%% %s\n", bar(e.Percentage), e.Percentage, strings.Join(fresh, "\n"))
		default:
			fmt.Fprintf(w, "%s %3d%% %s\n", bar(e.Percentage), e.Percentage, e.Message)
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "job %s %s\n", job.ID, job.Status)
	if job.Status != "succeeded" {
		return fmt.Errorf("job %s %s (its error is above; kloud job show %s repeats it)", job.ID, job.Status, job.ID)
	}
	return nil
}

func bar(pct int) string {
	const width = 20
	n := max(0, min(width, pct*width/100))
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func (cc *cmdContext) startedJob(ref *client.JobRef, err error, follow bool) error {
	if err != nil {
		return err
	}
	if follow {
		return cc.follow(ref.JobID)
	}
	return cc.print(ref, []string{"JOB"}, func() [][]string { return [][]string{{ref.JobID}} })
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
