package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kloud/kloud/client"
)

// print writes v as indented JSON with -o json, otherwise as a table: the
// header (none when nil) and the rows.
func (a *app) print(v any, header []string, rows func() [][]string) error {
	if a.output == "json" {
		enc := json.NewEncoder(a.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(a.out, 2, 4, 2, ' ', 0)
	if header != nil {
		fmt.Fprintln(tw, strings.Join(header, "\t"))
	}
	for _, r := range rows() {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// follow streams a job's events with a progress bar until it ends. Each
// line is printed once: an error event repeats Terraform's error, already
// printed as output, so only its lines not seen yet are printed, and a
// failed job's error is not printed again at the end.
func (a *app) follow(cmd *cobra.Command, jobID string) error {
	w := a.out
	printed := map[string]bool{}
	job, err := a.c.FollowJob(cmd.Context(), jobID, func(e client.Event) {
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

// startedJob prints the job a request started, or follows it.
func (a *app) startedJob(cmd *cobra.Command, ref *client.JobRef, err error) error {
	if err != nil {
		return err
	}
	if follow, _ := cmd.Flags().GetBool("follow"); follow {
		return a.follow(cmd, ref.JobID)
	}
	return a.print(ref, []string{"JOB"}, func() [][]string { return [][]string{{ref.JobID}} })
}

func followFlag(cmd *cobra.Command) *cobra.Command {
	cmd.Flags().Bool("follow", false, "stream the job's events with a progress bar until it ends")
	return cmd
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// readArg returns s, or the file's content when s is @file.
func readArg(s string) ([]byte, error) {
	if name, ok := strings.CutPrefix(s, "@"); ok {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		return b, nil
	}
	return []byte(s), nil
}

// decodeFlag reads a flag's JSON (or @file) into v strictly: unknown
// fields and trailing data are usage errors naming the flag.
func decodeFlag(name, s string, v any) error {
	b, err := readArg(s)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return usagef("--%s: %v", name, err)
	}
	if dec.More() {
		return usagef("--%s: data after the JSON value", name)
	}
	return nil
}

// vars turns repeated --var name=value into a map.
func vars(list []string) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(list))
	for _, s := range list {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, usagef("--var %q: want name=value", clip(s))
		}
		out[k] = v
	}
	return out, nil
}

func varFlag(cmd *cobra.Command) {
	cmd.Flags().StringArray("var", nil, "variable `name=value` (repeatable)")
}

// boolText is a true/false flag that takes its value as the next word
// (--enabled false), unlike pflag's booleans, which take only --x=false.
type boolText struct{ v bool }

func (b *boolText) String() string { return strconv.FormatBool(b.v) }
func (b *boolText) Type() string   { return "true|false" }
func (b *boolText) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("%q is not true or false", clip(s))
	}
	b.v = v
	return nil
}

func str(cmd *cobra.Command, name string) string {
	v, _ := cmd.Flags().GetString(name)
	return v
}
