package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/kloudtest"
)

// serverRoutes reads every "METHOD /path" pattern the server registers
// with HandleFunc in package kloud, string constants resolved.
func serverRoutes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../kloud/*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var parsed []*ast.File
	consts := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, af)
		ast.Inspect(af, func(n ast.Node) bool {
			if vs, ok := n.(*ast.ValueSpec); ok {
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							consts[name.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
			return true
		})
	}
	var eval func(ast.Expr) (string, bool)
	eval = func(e ast.Expr) (string, bool) {
		switch x := e.(type) {
		case *ast.BasicLit:
			s, err := strconv.Unquote(x.Value)
			return s, err == nil
		case *ast.Ident:
			s, ok := consts[x.Name]
			return s, ok
		case *ast.BinaryExpr:
			l, ok1 := eval(x.X)
			r, ok2 := eval(x.Y)
			return l + r, ok1 && ok2
		}
		return "", false
	}
	var routes []string
	for _, af := range parsed {
		ast.Inspect(af, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "HandleFunc" {
				return true
			}
			p, ok := eval(call.Args[0])
			if !ok {
				t.Errorf("%s: a route pattern this test cannot read", fset.Position(call.Pos()))
				return true
			}
			routes = append(routes, p)
			return true
		})
	}
	if len(routes) < 40 {
		t.Fatalf("found only %d routes in ../kloud: %v", len(routes), routes)
	}
	return routes
}

// recorder remembers every request a client sends, and the JSON bodies
// of the successful answers.
type recorder struct {
	mu      sync.Mutex
	reqs    []*http.Request
	answers []answer
}

type answer struct {
	req  *http.Request
	body []byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	clone := req.Clone(context.Background())
	r.mu.Lock()
	r.reqs = append(r.reqs, clone)
	r.mu.Unlock()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || resp.StatusCode >= 300 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.mu.Lock()
	r.answers = append(r.answers, answer{clone, body})
	r.mu.Unlock()
	return resp, nil
}

// answerTypes is the SDK type of each route's JSON answer.
var answerTypes = map[string]any{
	"POST /api/v1/machines/{id}/shares":         client.Share{},
	"GET /api/v1/machines/{id}/shares":          []client.Share{},
	"GET /api/v1/machines/{id}/sessions":        []client.TerminalSession{},
	"GET /healthz":                              client.Health{},
	"GET /api/v1/providers":                     []client.Provider{},
	"POST /api/v1/users":                        client.User{},
	"GET /api/v1/users":                         []client.User{},
	"POST /api/v1/credentials":                  client.Credential{},
	"GET /api/v1/credentials":                   []client.Credential{},
	"GET /api/v1/credentials/{id}":              client.Credential{},
	"POST /api/v1/credentials/{id}/verify":      client.VerifyResult{},
	"POST /api/v1/credentials/{id}/bootstrap":   client.JobRef{},
	"DELETE /api/v1/credentials/{id}/bootstrap": client.JobRef{},
	"POST /api/v1/templates":                    client.Template{},
	"GET /api/v1/templates":                     []client.Template{},
	"GET /api/v1/templates/{id}":                client.Template{},
	"POST /api/v1/templates/{id}/plan":          client.PlanResult{},
	"POST /api/v1/stacks":                       client.Stack{},
	"GET /api/v1/stacks":                        []client.Stack{},
	"GET /api/v1/stacks/{id}":                   client.Stack{},
	"POST /api/v1/stacks/{id}/apply":            client.JobRef{},
	"POST /api/v1/stacks/{id}/destroy":          client.JobRef{},
	"PATCH /api/v1/stacks/{id}":                 client.Stack{},
	"POST /api/v1/stacks/{id}/plan":             client.JobRef{},
	"POST /api/v1/stacks/{id}/drift":            client.JobRef{},
	"GET /api/v1/stacks/{id}/jobs":              []client.Job{},
	"PATCH /api/v1/templates/{id}":              client.Template{},
	"POST /api/v1/templates/{id}/versions":      client.TemplateVersion{},
	"GET /api/v1/templates/{id}/versions":       []client.TemplateVersion{},
	"GET /api/v1/templates/{id}/versions/{n}":   client.TemplateVersion{},
	"GET /api/v1/jobs/{id}":                     client.Job{},
	"GET /api/v1/jobs/{id}/events":              []client.Event{},
	"GET /api/v1/machines":                      []client.Machine{},
	"GET /api/v1/machines/{id}":                 client.Machine{},
	"POST /api/v1/machines/{id}/start":          client.JobRef{},
	"POST /api/v1/machines/{id}/stop":           client.JobRef{},
	"GET /api/v1/rating/modules":                []client.RatingModule{},
	"GET /api/v1/rating/modules/{name}":         client.RatingModule{},
	"PUT /api/v1/rating/modules/{name}":         client.RatingModule{},
	"POST /api/v1/rating/quote":                 client.Quote{},
	"POST /api/v1/rating/process":               client.RatingPass{},
	"POST /api/v1/rating/reprocess":             client.Reprocessed{},
	"PUT /api/v1/budgets/{scope}":               client.Budget{},
	"GET /api/v1/budgets/{scope}":               client.Budget{},
	"GET /api/v1/budgets":                       []client.Budget{},
	"PUT /api/v1/machines/{id}/schedule":        client.Schedule{},
	"GET /api/v1/machines/{id}/schedule":        client.Schedule{},
	"PUT /api/v1/stacks/{id}/schedule":          client.Schedule{},
	"GET /api/v1/stacks/{id}/schedule":          client.Schedule{},
	"POST /api/v1/webhooks":                     client.Webhook{},
	"GET /api/v1/webhooks":                      []client.Webhook{},
	"GET /api/v1/webhooks/{id}":                 client.Webhook{},
	"GET /api/v1/webhooks/{id}/deliveries":      []client.Delivery{},
	"GET /api/v1/rating/summary":                client.Summary{},
	"GET /api/v1/rating/dataframes":             []client.DataFrame{},
	"GET /api/v1/reports":                       []client.Report{},
	"GET /api/v1/audit":                         []client.AuditEntry{},
	"GET " + hashmap + "services":               []client.HashmapService{},
	"POST " + hashmap + "services":              client.HashmapService{},
	"GET " + hashmap + "services/{id}":          client.HashmapService{},
	"GET " + hashmap + "fields":                 []client.HashmapField{},
	"POST " + hashmap + "fields":                client.HashmapField{},
	"GET " + hashmap + "fields/{id}":            client.HashmapField{},
	"GET " + hashmap + "groups":                 []client.HashmapGroup{},
	"POST " + hashmap + "groups":                client.HashmapGroup{},
	"GET " + hashmap + "groups/{id}":            client.HashmapGroup{},
	"GET " + hashmap + "mappings":               []client.HashmapMapping{},
	"POST " + hashmap + "mappings":              client.HashmapMapping{},
	"GET " + hashmap + "mappings/{id}":          client.HashmapMapping{},
	"PUT " + hashmap + "mappings/{id}":          client.HashmapMapping{},
	"GET " + hashmap + "thresholds":             []client.HashmapThreshold{},
	"POST " + hashmap + "thresholds":            client.HashmapThreshold{},
	"GET " + hashmap + "thresholds/{id}":        client.HashmapThreshold{},
	"PUT " + hashmap + "thresholds/{id}":        client.HashmapThreshold{},
}

const hashmap = "/api/v1/rating/modules/hashmap/"

const oneMachine = `
resource "sandbox_machine" "web" {
  name = "web"
  size = "small"
}
`

// TestSDKSpeaksEveryRoute calls every SDK method against a whole server
// and checks that, together, they reach every route the server registers:
// a new endpoint without an SDK method fails here.
func TestSDKSpeaksEveryRoute(t *testing.T) {
	routes := serverRoutes(t)
	h := kloudtest.New(t)
	rec := &recorder{}
	c := client.New(h.URL, h.AdminToken)
	c.HTTP = &http.Client{Transport: rec}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// refused checks the server routed the call and refused it with status.
	refused := func(what string, err error, status int) {
		t.Helper()
		var e *client.Error
		if !errors.As(err, &e) || e.Status != status || strings.HasPrefix(e.Message, "no such endpoint") {
			t.Fatalf("%s: %v, want the handler's %d", what, err, status)
		}
	}
	wait := func(ref *client.JobRef, err error) {
		t.Helper()
		must("start job", err)
		j, err := c.FollowJob(ctx, ref.JobID, nil)
		must("follow job", err)
		if j.Status != "succeeded" {
			t.Fatalf("job %s %s: %s", j.ID, j.Status, j.Error)
		}
	}

	hl, err := c.Health(ctx)
	must("health", err)
	if hl.Version == "" || hl.Status != "ok" {
		t.Errorf("health = %+v", hl)
	}
	ps, err := c.Providers(ctx)
	must("providers", err)
	if !slices.ContainsFunc(ps, func(p client.Provider) bool { return p.Name == "sandbox" && p.ResourceType == "sandbox_machine" }) {
		t.Errorf("providers = %+v, want sandbox", ps)
	}
	u, err := c.CreateUser(ctx, client.CreateUserRequest{Name: "ann", Role: "member"})
	must("create user", err)
	us, err := c.Users(ctx)
	must("users", err)
	if !slices.ContainsFunc(us, func(x client.User) bool { return x.ID == u.ID && x.Token == "" }) {
		t.Errorf("users = %+v, want ann without a token", us)
	}

	cred, err := c.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Title: "local", Data: json.RawMessage(`{}`)})
	must("create credential", err)
	_, err = c.Credentials(ctx)
	must("credentials", err)
	_, err = c.Credential(ctx, cred.ID)
	must("credential", err)
	v, err := c.VerifyCredential(ctx, cred.ID)
	must("verify", err)
	if !v.Verified {
		t.Errorf("verify = %+v", v)
	}
	spare, err := c.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Title: "spare", Data: json.RawMessage(`{}`)})
	must("create credential", err)
	wait(c.BootstrapCredential(ctx, spare.ID, false))
	wait(c.BootstrapCredential(ctx, spare.ID, true))
	must("delete credential", c.DeleteCredential(ctx, spare.ID))

	tpl, err := c.CreateTemplate(ctx, client.CreateTemplateRequest{Title: "one", Provider: "sandbox", Content: oneMachine, Format: "hcl"})
	must("create template", err)
	_, err = c.Templates(ctx)
	must("templates", err)
	_, err = c.Template(ctx, tpl.ID)
	must("template", err)
	plan, err := c.PlanTemplate(ctx, tpl.ID, client.PlanRequest{CredentialID: cred.ID})
	must("plan", err)
	if len(plan.Machines) != 1 {
		t.Errorf("plan = %+v, want one machine", plan)
	}

	st, err := c.CreateStack(ctx, client.CreateStackRequest{Title: "s", TemplateID: tpl.ID, CredentialID: cred.ID})
	must("create stack", err)
	_, err = c.Stacks(ctx)
	must("stacks", err)
	ref, err := c.ApplyStack(ctx, st.ID)
	wait(ref, err)
	_, err = c.Job(ctx, ref.JobID)
	must("job", err)
	evs, err := c.JobEvents(ctx, ref.JobID)
	must("job events", err)
	if len(evs) == 0 {
		t.Error("an applied stack's job has no events")
	}
	_, err = c.Cancel(ctx, ref.JobID)
	refused("cancel an ended job", err, http.StatusConflict)
	full, err := c.Stack(ctx, st.ID)
	must("stack", err)
	if len(full.Machines) != 1 {
		t.Fatalf("stack = %+v, want one machine", full)
	}
	m := full.Machines[0]
	_, err = c.Machines(ctx)
	must("machines", err)
	_, err = c.Machine(ctx, m.ID)
	must("machine", err)
	wait(c.StopMachine(ctx, m.ID))
	wait(c.StartMachine(ctx, m.ID))
	costRoutes(t, c, u.ID, st.ID, m.ID)
	for deadline := time.Now().Add(30 * time.Second); ; {
		term, err := c.Terminal(ctx, m.ID, client.TerminalOptions{Command: []string{"true"}})
		var ae *client.Error
		if errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		must("terminal", err)
		_, _ = io.Copy(io.Discard, term)
		term.Close()
		break
	}
	sessions, err := c.MachineSessions(ctx, m.ID, false)
	must("machine sessions", err)
	if len(sessions) == 0 || sessions[0].ExitCode == nil {
		t.Errorf("sessions = %+v, want the ended one with its exit code", sessions)
	}
	friend, err := c.CreateUser(ctx, client.CreateUserRequest{Name: "friend", Role: "member"})
	must("create friend", err)
	_, err = c.ShareMachine(ctx, m.ID, client.ShareRequest{UserID: friend.ID, Permission: "use"})
	must("share machine", err)
	_, err = c.MachineShares(ctx, m.ID)
	must("machine shares", err)
	must("unshare machine", c.UnshareMachine(ctx, m.ID, friend.ID))
	_, err = c.AgentConnect(ctx)
	refused("a tunnel with the admin's token", err, http.StatusUnauthorized)
	_, err = c.AgentRegister(ctx, client.AgentReport{MachineID: m.ID})
	refused("register with the admin's token", err, http.StatusUnauthorized)
	_, err = c.AgentHeartbeat(ctx, client.AgentReport{MachineID: m.ID})
	refused("heartbeat with the admin's token", err, http.StatusUnauthorized)
	must("klient binary", c.KlientBinary(ctx, "", "", io.Discard))
	planRef, err := c.PlanStack(ctx, st.ID)
	wait(planRef, err)
	wait(c.ApplyPlan(ctx, st.ID, planRef.JobID))
	wait(c.CheckDrift(ctx, st.ID))
	jobs, err := c.StackJobs(ctx, st.ID)
	must("stack jobs", err)
	if len(jobs) == 0 || jobs[0].Timings == nil {
		t.Errorf("stack jobs = %+v, want the drift check first, with timings", jobs)
	}
	title := "renamed"
	_, err = c.UpdateStack(ctx, st.ID, client.UpdateStackRequest{Title: &title})
	must("update stack", err)
	wait(c.DestroyStack(ctx, st.ID))
	must("delete stack", c.DeleteStack(ctx, st.ID))
	_, err = c.CreateTemplateVersion(ctx, tpl.ID, client.CreateTemplateVersionRequest{Content: oneMachine, Message: "again"})
	must("create template version", err)
	_, err = c.TemplateVersions(ctx, tpl.ID)
	must("template versions", err)
	_, err = c.TemplateVersion(ctx, tpl.ID, 2)
	must("template version", err)
	active := 2
	_, err = c.UpdateTemplate(ctx, tpl.ID, client.UpdateTemplateRequest{ActiveVersion: &active})
	must("update template", err)
	must("delete template", c.DeleteTemplate(ctx, tpl.ID))

	mods, err := c.RatingModules(ctx)
	must("rating modules", err)
	hm, err := c.RatingModule(ctx, "hashmap")
	must("rating module", err)
	if len(mods) == 0 {
		t.Error("no rating modules")
	}
	off := false
	got, err := c.UpdateRatingModule(ctx, "hashmap", client.ModuleUpdate{Enabled: &off})
	must("update rating module", err)
	if got.Enabled || got.Priority != hm.Priority {
		t.Errorf("update enabled only = %+v, want disabled with priority %d", got, hm.Priority)
	}
	on := true
	_, err = c.UpdateRatingModule(ctx, "hashmap", client.ModuleUpdate{Enabled: &on})
	must("update rating module", err)

	svc, err := c.CreateHashmapService(ctx, client.NameRequest{Name: "instance"})
	must("create service", err)
	_, err = c.HashmapServices(ctx)
	must("services", err)
	_, err = c.HashmapService(ctx, svc.ID)
	must("service", err)
	fld, err := c.CreateHashmapField(ctx, client.FieldRequest{ServiceID: svc.ID, Name: "size"})
	must("create field", err)
	_, err = c.HashmapFields(ctx, svc.ID)
	must("fields", err)
	_, err = c.HashmapField(ctx, fld.ID)
	must("field", err)
	grp, err := c.CreateHashmapGroup(ctx, client.NameRequest{Name: "g"})
	must("create group", err)
	_, err = c.HashmapGroups(ctx)
	must("groups", err)
	_, err = c.HashmapGroup(ctx, grp.ID)
	must("group", err)
	mp, err := c.CreateHashmapMapping(ctx, client.MappingRequest{FieldID: fld.ID, Value: "small", Cost: decimal.RequireFromString("0.05")})
	must("create mapping", err)
	_, err = c.UpdateHashmapMapping(ctx, mp.ID, client.MappingRequest{FieldID: fld.ID, Value: "small", Type: client.CostFlat, Cost: decimal.RequireFromString("0.05"), GroupID: grp.ID})
	must("update mapping", err)
	mps, err := c.HashmapMappings(ctx, client.RuleFilter{FieldID: fld.ID})
	must("mappings", err)
	if len(mps) != 1 || mps[0].GroupID != grp.ID || !mps[0].Cost.Equal(decimal.RequireFromString("0.05")) {
		t.Errorf("mappings = %+v", mps)
	}
	_, err = c.HashmapMapping(ctx, mp.ID)
	must("mapping", err)
	th, err := c.CreateHashmapThreshold(ctx, client.ThresholdRequest{ServiceID: svc.ID, Level: decimal.NewFromInt(100), Type: client.CostRate, Cost: decimal.RequireFromString("0.9")})
	must("create threshold", err)
	_, err = c.UpdateHashmapThreshold(ctx, th.ID, client.ThresholdRequest{ServiceID: svc.ID, Level: decimal.NewFromInt(50), Type: client.CostRate, Cost: decimal.RequireFromString("0.9")})
	must("update threshold", err)
	_, err = c.HashmapThresholds(ctx, client.RuleFilter{ServiceID: svc.ID})
	must("thresholds", err)
	_, err = c.HashmapThreshold(ctx, th.ID)
	must("threshold", err)

	q, err := c.Quote(ctx, client.QuoteRequest{Points: []client.QuotePoint{
		{Service: "instance", Qty: decimal.NewFromInt(2), Unit: "hour", Desc: map[string]string{"size": "small"}},
	}})
	must("quote", err)
	if want := decimal.RequireFromString("0.1"); len(q.Points) != 1 || !q.Total.Equal(want) || !q.Points[0].Price.Equal(want) {
		t.Errorf("quote = %+v, want 2 small hours at 0.05 = 0.1", q)
	}
	_, err = c.ProcessRating(ctx)
	must("process", err)
	_, err = c.Reprocess(ctx, client.ReprocessRequest{Begin: time.Now().Add(-time.Hour), End: time.Now(), DryRun: true})
	must("reprocess", err)
	sum, err := c.Summary(ctx, client.SummaryQuery{GroupBy: []string{"machine_id"}, Limit: 10, Filters: map[string]string{"provider": "sandbox"}})
	must("summary", err)
	if len(sum.Columns) != 5 || sum.Columns[4] != "machine_id" {
		t.Errorf("summary columns = %v", sum.Columns)
	}
	_, err = c.DataFrames(ctx, client.SummaryQuery{Begin: time.Now().Add(-time.Hour)})
	must("dataframes", err)
	_, err = c.Reports(ctx)
	must("reports", err)
	refused("a report that does not exist", c.Report(ctx, "usr-nobody-2026-01.csv", io.Discard), http.StatusNotFound)

	must("delete threshold", c.DeleteHashmapThreshold(ctx, th.ID))
	must("delete mapping", c.DeleteHashmapMapping(ctx, mp.ID))
	must("delete group", c.DeleteHashmapGroup(ctx, grp.ID))
	must("delete field", c.DeleteHashmapField(ctx, fld.ID))
	must("delete service", c.DeleteHashmapService(ctx, svc.ID))

	stops, err := c.Audit(ctx, client.AuditQuery{Target: "machine/" + m.ID, Limit: 10})
	must("audit", err)
	if !slices.ContainsFunc(stops, func(e client.AuditEntry) bool {
		return e.Action == "machine.stop" && e.Outcome == "ok" && e.Actor != "" && e.RequestID != ""
	}) {
		t.Errorf("audit of machine %s = %+v, want its stop by the admin with a request id", m.ID, stops)
	}

	// Every route registered must have been reached by some SDK call.
	mux := http.NewServeMux()
	for _, r := range routes {
		mux.HandleFunc(r, func(http.ResponseWriter, *http.Request) {})
	}
	reached := map[string]bool{}
	for _, req := range rec.reqs {
		if _, pattern := mux.Handler(req); pattern != "" {
			reached[pattern] = true
		}
	}
	for _, r := range routes {
		if !reached[r] {
			t.Errorf("no SDK call reached %s", r)
		}
	}

	// Every JSON answer decodes strictly into its SDK type: a field the
	// server sends and the SDK lacks fails here.
	checked := map[string]bool{}
	for _, a := range rec.answers {
		_, pattern := mux.Handler(a.req)
		typ, ok := answerTypes[pattern]
		if !ok {
			t.Errorf("%s answers JSON, but this test knows no SDK type for it", pattern)
			continue
		}
		v := reflect.New(reflect.TypeOf(typ)).Interface()
		dec := json.NewDecoder(bytes.NewReader(a.body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Errorf("%s answer does not decode into %T: %v\n%.500s", pattern, typ, err, a.body)
		}
		checked[pattern] = true
	}
	for pattern := range answerTypes {
		if !checked[pattern] {
			t.Errorf("no JSON answer of %s was checked", pattern)
		}
	}
}
