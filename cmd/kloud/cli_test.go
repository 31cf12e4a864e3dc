package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/version"
	"github.com/kloud/kloud/kloud/kloudtest"
	"github.com/kloud/kloud/store"
)

// kloudCmd runs one command line in process, as main would, and returns
// its standard output, standard error and exit code.
func kloudCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code = exitCode(runIO(ctx, args, &out, &errOut), &errOut)
	return out.String(), errOut.String(), code
}

// TestEveryCommandIsDocumented: every command has a short and a long
// description and an example.
func TestEveryCommandIsDocumented(t *testing.T) {
	root := newRoot(new(bytes.Buffer), new(bytes.Buffer))
	n := 0
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden {
			return
		}
		n++
		if c.Short == "" || c.Long == "" || c.Example == "" {
			t.Errorf("%q lacks a short or long description or an example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if n < 40 {
		t.Errorf("only %d commands", n)
	}
}

// TestHelpCompletionVersion: help prints descriptions and examples,
// completion prints scripts, version prints the build's version; none needs
// a server.
func TestHelpCompletionVersion(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"help"}, []string{"kloud runs the Kloud server", "Examples:", "stack", "rating", "completion"}},
		{[]string{}, []string{"Usage:", "Resources:"}},
		{[]string{"stack", "-h"}, []string{"A stack is a template applied", "Examples:", "apply", "destroy"}},
		{[]string{"stack", "apply", "-h"}, []string{"terraform init and apply", "Examples:", "kloud stack apply s-1 --follow", "--follow", "--server", "--token", "-o, --output"}},
		{[]string{"rating", "module", "--help"}, []string{"--enabled true|false", "--priority"}},
		{[]string{"completion", "bash"}, []string{"bash completion", "__start_kloud"}},
		{[]string{"completion", "zsh"}, []string{"#compdef kloud"}},
		{[]string{"completion", "fish"}, []string{"complete -c kloud"}},
		{[]string{"version"}, []string{"kloud " + version.Version}},
		{[]string{"version", "-o", "json"}, []string{`"version": "` + version.Version + `"`}},
		{[]string{"--version"}, []string{"kloud " + version.Version}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			out, errOut, code := kloudCmd(t, c.args...)
			if code != exitOK {
				t.Fatalf("exit %d, stderr:\n%s", code, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestUsageErrorsExitTwo: a command line that does not parse exits 2,
// says what was wrong and where the help is, and calls no server.
func TestUsageErrorsExitTwo(t *testing.T) {
	nowhere := []string{"--server", "http://127.0.0.1:1", "--token", "x"}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"stak", "list"}, `unknown command "stak" for "kloud"`},
		{[]string{"stack", "lst"}, `unknown command "lst" for "kloud stack"; did you mean list?`},
		{[]string{"stack", "apply"}, "missing argument ID"},
		{[]string{"stack", "apply", "a", "b"}, `unexpected argument "b"`},
		{[]string{"stack", "apply", "a", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"stack", "list", "-o", "yaml"}, `-o "yaml": want table or json`},
		{[]string{"rating", "module", "hashmap", "--enabled", "maybe"}, `"maybe" is not true or false`},
		{[]string{"rating", "module", "hashmap", "--priority", "high"}, "--priority"},
		{[]string{"stack", "create", "--var", "novalue"}, `--var "novalue": want name=value`},
		{[]string{"rating", "quote", "--points", "[{"}, "--points"},
		{[]string{"rating", "quote", "--points", `[{"service":"instance","qty":"1","colour":"red"}]`}, `unknown field "colour"`},
		{[]string{"rating", "summary", "--begin", "yesterday"}, `--begin "yesterday" is not an RFC 3339 time`},
		{[]string{"rating", "summary", "--filters", "provider"}, `--filters "provider": want key:value`},
		{[]string{"rating", "hashmap", "rules"}, `unknown rule kind "rules"`},
		{[]string{"rating", "hashmap", "services", "--delete"}, "--delete needs the ID"},
		{[]string{"rating", "hashmap", "services", "s-1", "--data", "{}"}, "services cannot be replaced"},
		{[]string{"credential", "add", "sandbox", "--data", "{"}, "--data is not valid JSON"},
		{[]string{"serve", "--workers", "0"}, "0 is less than 1"},
		{[]string{"serve", "--no-such-flag"}, "no-such-flag"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			args := c.args
			if args[0] != "serve" {
				args = append(args, nowhere...)
			}
			out, errOut, code := kloudCmd(t, args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, exitUsage, out, errOut)
			}
			if !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "--help' for usage") {
				t.Errorf("stderr lacks %q and the help hint:\n%s", c.want, errOut)
			}
		})
	}
}

// session runs commands against one server as its admin.
type session struct {
	t *testing.T
	h *kloudtest.Harness
}

// run runs a command that must succeed and returns its output.
func (s session) run(args ...string) string {
	s.t.Helper()
	out, errOut, code := kloudCmd(s.t, append(args, "--server", s.h.URL, "--token", s.h.AdminToken)...)
	if code != exitOK {
		s.t.Fatalf("kloud %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// json runs a command with -o json and decodes its output into v.
func (s session) json(v any, args ...string) {
	s.t.Helper()
	out := s.run(append(args, "-o", "json")...)
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.t.Fatalf("kloud %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// table runs a command with -o table and checks its output holds want.
func (s session) table(args []string, want ...string) string {
	s.t.Helper()
	out := s.run(append(args, "-o", "table")...)
	for _, w := range want {
		if !strings.Contains(out, w) {
			s.t.Errorf("kloud %s -o table lacks %q:\n%s", strings.Join(args, " "), w, out)
		}
	}
	return out
}

// both runs a read command with -o json into v, then with -o table.
func (s session) both(v any, args []string, want ...string) {
	s.t.Helper()
	s.json(v, args...)
	s.table(args, want...)
}

const oneMachine = `
resource "sandbox_machine" "web" {
  name = "web"
  size = "small"
}
`

// TestCLISession runs every noun and verb against an in-process server,
// each printing command with -o json (decoded into the SDK's types) and
// with -o table (its header and rows).
func TestCLISession(t *testing.T) {
	h := kloudtest.New(t)
	s := session{t, h}
	dir := t.TempDir()
	tplFile := filepath.Join(dir, "main.tf")
	if err := os.WriteFile(tplFile, []byte(oneMachine), 0o600); err != nil {
		t.Fatal(err)
	}

	// users and providers
	var u []client.User
	var one client.User
	s.json(&one, "user", "create", "ann")
	if one.Token == "" || one.Role != "member" {
		t.Errorf("user create = %+v", one)
	}
	s.table([]string{"user", "create", "bob", "--role", "admin"}, "ID", "TOKEN", "bob", "admin")
	s.both(&u, []string{"user", "list"}, "NAME", "ROLE", "ann", "bob")
	var ps []client.Provider
	s.both(&ps, []string{"provider", "list"}, "RESOURCE", "sandbox", "sandbox_machine")

	// the server itself
	var rd client.Readiness
	s.both(&rd, []string{"server", "ready"}, "CHECK", "store", "true")
	if out := s.run("server", "metrics"); !strings.Contains(out, "kloud_http_requests_total") {
		t.Errorf("server metrics printed no kloud_http_requests_total:\n%.300s", out)
	}
	if out := s.run("server", "openapi"); !strings.Contains(out, `"openapi": "3.1.0"`) {
		t.Errorf("server openapi printed:\n%.300s", out)
	}

	// credentials
	var creds []client.Credential
	s.json(&creds, "credential", "add", "sandbox", "--title", "local")
	cred := creds[0].ID
	s.table([]string{"credential", "add", "sandbox", "--title", "spare"}, "PROVIDER", "spare")
	s.both(&creds, []string{"credential", "list"}, "VERIFIED", "local", "spare")
	var spare string
	for _, c := range creds {
		if c.Title == "spare" {
			spare = c.ID
		}
	}
	s.both(&creds, []string{"credential", "show", cred}, "BOOTSTRAPPED", cred)
	var vr client.VerifyResult
	s.both(&vr, []string{"credential", "verify", cred}, "VERIFIED", "true")
	var ref client.JobRef
	s.json(&ref, "credential", "bootstrap", spare)
	kloudtest.WaitJob(t, h.Admin, ref.JobID)
	s.table([]string{"credential", "bootstrap", spare, "--destroy", "--follow"}, "100%", "succeeded")
	if out := s.run("credential", "delete", spare); out != "" {
		t.Errorf("credential delete printed %q", out)
	}

	// templates
	var tpls []client.Template
	s.json(&tpls, "template", "create", tplFile, "--title", "one")
	tpl := tpls[0].ID
	s.table([]string{"template", "create", tplFile}, "FORMAT", "hcl", tplFile)
	s.both(&tpls, []string{"template", "list"}, "PROVIDER", "one")
	var tplOne client.Template
	s.both(&tplOne, []string{"template", "show", tpl}, "TITLE", `resource "sandbox_machine" "web"`)
	var plan client.PlanResult
	s.both(&plan, []string{"template", "plan", tpl, "--credential", cred}, "MACHINE", "ACTION", "estimated cost:")

	// stacks, jobs, machines
	var stacks []client.Stack
	s.json(&stacks, "stack", "create", "--title", "demo", "--template", tpl, "--credential", cred)
	st := stacks[0].ID
	out := s.table([]string{"stack", "create", "--title", "other", "--template", tpl, "--credential", cred}, "STATUS", "other")
	other := strings.Fields(strings.Split(out, "\n")[1])[0]
	s.table([]string{"stack", "apply", st, "--follow"}, "[####################] 100%", "succeeded")
	s.both(&stacks, []string{"stack", "list"}, "MACHINES", "demo")
	var jobs []client.Job
	s.both(&jobs, []string{"job", "list", "--status", "succeeded", "--stack", st}, "TARGET", "apply", st)
	var who client.Session
	s.both(&who, []string{"session", "show"}, "ROLE", "admin", "token")
	s.table([]string{"session", "link"}, "URL", "/login#token=")
	var stack client.Stack
	s.both(&stack, []string{"stack", "show", st}, "REASON", "ALWAYS_ON", "web")
	if len(stack.Machines) != 1 {
		t.Fatalf("stack show = %+v, want one machine", stack)
	}
	m := stack.Machines[0].ID
	var ms []client.Machine
	s.both(&ms, []string{"machine", "list"}, "UPTIME", m)
	var mach client.Machine
	s.both(&mach, []string{"machine", "info", m}, "agent:", "metadata:")
	s.json(&ref, "machine", "stop", m)
	kloudtest.WaitJob(t, h.Admin, ref.JobID)
	var job client.Job
	s.both(&job, []string{"job", "show", ref.JobID}, "PERCENT", "succeeded")
	var evs []client.Event
	s.both(&evs, []string{"job", "events", ref.JobID}, "SEQ", "MESSAGE")
	s.table([]string{"job", "events", ref.JobID, "--follow"}, "100%", "succeeded")
	s.table([]string{"machine", "start", m, "--follow"}, "100%", "succeeded")
	_, errOut, code := kloudCmd(t, "job", "cancel", ref.JobID, "--server", h.URL, "--token", h.AdminToken)
	if code != exitError || !strings.Contains(errOut, "error (409)") {
		t.Errorf("cancel an ended job: exit %d, stderr:\n%s", code, errOut)
	}
	s.table([]string{"stack", "destroy", st, "--follow"}, "100%", "succeeded")
	out = s.table([]string{"stack", "apply", other}, "JOB")
	lines := strings.Fields(out)
	kloudtest.WaitJob(t, h.Admin, lines[len(lines)-1])
	s.json(&ref, "stack", "destroy", other)
	kloudtest.WaitJob(t, h.Admin, ref.JobID)

	// rating modules: only the flags given are sent
	var mods []client.RatingModule
	s.both(&mods, []string{"rating", "modules"}, "MODULE", "PRIORITY", "hashmap", "noop")
	var mod client.RatingModule
	s.json(&mod, "rating", "module", "hashmap", "--priority", "7")
	s.json(&mod, "rating", "module", "hashmap", "--enabled", "false")
	if mod.Enabled || mod.Priority != 7 {
		t.Errorf("--enabled false = %+v, want disabled with priority 7 kept", mod)
	}
	s.table([]string{"rating", "module", "hashmap", "--enabled", "true"}, "ENABLED", "true", "7")
	s.both(&mod, []string{"rating", "module", "hashmap"}, "hashmap", "7")
	if !mod.Enabled || mod.Priority != 7 {
		t.Errorf("hashmap = %+v, want enabled, priority 7", mod)
	}

	// hashmap rules, every kind and verb
	var svc client.HashmapService
	s.json(&svc, "rating", "hashmap", "services", "--data", `{"name":"instance"}`)
	s.table([]string{"rating", "hashmap", "services", "--data", `{"name":"volume"}`}, "ID", "NAME", "volume")
	var svcs []client.HashmapService
	s.both(&svcs, []string{"rating", "hashmap", "services"}, "instance", "volume")
	s.both(&svc, []string{"rating", "hashmap", "services", svc.ID}, "instance")
	var fld client.HashmapField
	s.json(&fld, "rating", "hashmap", "fields", "--data", `{"service_id":"`+svc.ID+`","name":"size"}`)
	var flds []client.HashmapField
	s.both(&flds, []string{"rating", "hashmap", "fields", "--service", svc.ID}, "SERVICE", "size")
	s.both(&fld, []string{"rating", "hashmap", "fields", fld.ID}, "size")
	var grp client.HashmapGroup
	s.json(&grp, "rating", "hashmap", "groups", "--data", `{"name":"compute"}`)
	var grps []client.HashmapGroup
	s.both(&grps, []string{"rating", "hashmap", "groups"}, "compute")
	s.both(&grp, []string{"rating", "hashmap", "groups", grp.ID}, "compute")
	var mp client.HashmapMapping
	s.json(&mp, "rating", "hashmap", "mappings", "--data", `{"field_id":"`+fld.ID+`","value":"small","type":"flat","cost":"0.05"}`)
	s.table([]string{"rating", "hashmap", "mappings", mp.ID, "--data", `{"field_id":"` + fld.ID + `","value":"small","cost":0.06,"group_id":"` + grp.ID + `"}`}, "COST", "0.06", grp.ID)
	var mps []client.HashmapMapping
	s.both(&mps, []string{"rating", "hashmap", "mappings", "--field", fld.ID}, "VALUE", "small", "0.06")
	s.both(&mp, []string{"rating", "hashmap", "mappings", mp.ID}, "flat")
	var th client.HashmapThreshold
	s.json(&th, "rating", "hashmap", "thresholds", "--data", `{"service_id":"`+svc.ID+`","level":"50","type":"rate","cost":"0.5"}`)
	var ths []client.HashmapThreshold
	s.both(&ths, []string{"rating", "hashmap", "thresholds", "--service", svc.ID}, "LEVEL", "50", "rate")
	s.table([]string{"rating", "hashmap", "thresholds", th.ID, "--data", `{"service_id":"` + svc.ID + `","group_id":"` + grp.ID + `","level":"100","type":"rate","cost":"0.5"}`}, "100")
	s.both(&th, []string{"rating", "hashmap", "thresholds", th.ID}, "0.5")

	var q client.Quote
	points := `[{"service":"instance","qty":"2","unit":"hour","desc":{"size":"small"}},{"service":"instance","qty":100,"unit":"hour","desc":{"size":"small"}}]`
	s.both(&q, []string{"rating", "quote", "--points", points}, "PRICE", "size=small", "0.12", "total: 3.12")
	if want := decimal.RequireFromString("3.12"); !q.Total.Equal(want) {
		t.Errorf("quote total = %s, want %s (0.06×2 + 0.06×100×0.5)", q.Total, want)
	}
	for _, kind := range []struct{ kind, id string }{{"thresholds", th.ID}, {"mappings", mp.ID}, {"groups", grp.ID}, {"fields", fld.ID}, {"services", svc.ID}} {
		if out := s.run("rating", "hashmap", kind.kind, kind.id, "--delete"); out != "" {
			t.Errorf("delete %s printed %q", kind.kind, out)
		}
	}

	// rated usage, summaries, reports
	seedRated(t, h)
	var pass client.RatingPass
	s.both(&pass, []string{"rating", "process"}, "SCOPES", "PERIODS", "POINTS")
	var sum client.Summary
	s.both(&sum, []string{"rating", "summary", "--groupby", "machine_id", "--begin", "2026-01-01T00:00:00Z", "--limit", "10"}, "BEGIN", "END", "QTY", "RATE", "MACHINE_ID", "m-seed", "0.25")
	if sum.Total != 1 || len(sum.Results) != 1 {
		t.Errorf("summary = %+v, want one row", sum)
	}
	s.table([]string{"rating", "summary"}, "BEGIN", "0.25")
	var frames []client.DataFrame
	s.both(&frames, []string{"rating", "dataframes", "--filters", "machine_id:m-seed"}, "SERVICE", "instance", "machine_id=m-seed")
	if len(frames) != 1 || len(frames[0].Usage["instance"]) != 1 {
		t.Errorf("dataframes = %+v, want one point", frames)
	}
	reportDir := filepath.Join(h.DataDir, "reports", "seed")
	if err := os.MkdirAll(reportDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(reportDir, "2026-01.csv"), []byte("Cost\n0.25\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var reports []client.Report
	s.both(&reports, []string{"report", "list"}, "MONTH", "seed-2026-01.csv")
	if got := s.run("report", "get", "seed-2026-01.csv"); got != "Cost\n0.25\n" {
		t.Errorf("report get = %q", got)
	}

	// the audit log: what this session changed
	var entries []client.AuditEntry
	s.both(&entries, []string{"audit", "list", "--target", "stack/" + st, "--since", "1h"}, "ACTION", "REQUEST", "stack.apply", "ok")
	if len(entries) == 0 || entries[0].Target != "stack/"+st {
		t.Errorf("audit list --target stack/%s = %+v", st, entries)
	}
}

// seedRated stores one rated period in the scope "seed".
func seedRated(t *testing.T, h *kloudtest.Harness) {
	t.Helper()
	begin := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	err := h.Store.CommitRatedPeriod(context.Background(), &store.RatedPeriod{
		Scope: "seed", Begin: begin, End: begin.Add(time.Hour),
		Points: []store.RatedPoint{{
			Scope: "seed", Begin: begin, End: begin.Add(time.Hour), Service: "instance", Unit: "hour",
			Qty: decimal.NewFromInt(5), Price: decimal.RequireFromString("0.25"),
			Groupby:  map[string]string{"machine_id": "m-seed", "provider": "sandbox"},
			Metadata: map[string]string{"size": "small"},
		}},
	})
	if err != nil {
		t.Fatalf("seed rated period: %v", err)
	}
}
