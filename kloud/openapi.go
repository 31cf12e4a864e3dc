package kloud

import (
	"encoding/json"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/version"
)

// The API's OpenAPI 3.1 description is generated from Go declarations,
// not written as a JSON file: the operations are the apiOps table below,
// and every body's schema is reflected from the client SDK type the
// handler encodes (the SDK's route test already checks that each answer
// decodes strictly into its type). A field added to a type is described
// at once; a route added to the server without a line here fails
// TestOpenAPIDescribesEveryRoute (package client), naming the line to add.

// Who may call an operation.
const (
	authPublic = "public" // no token
	authUser   = "user"   // any user's bearer token
	authAdmin  = "admin"  // an admin's bearer token
	authAgent  = "agent"  // a machine agent's token
)

// apiOp is one operation of the API as the description tells it.
type apiOp struct {
	Method, Path string
	Summary      string
	Auth         string
	// List: the answer is one page of a list (?limit, ?after, Link).
	List bool
	// Query names the operation's query parameters (filters) besides a
	// list's limit and after.
	Query []string
	// Request is the JSON body's type (nil: no body); OptionalBody says
	// the body may be left out.
	Request      any
	OptionalBody bool
	// OK is the success status (200 when 0); Also are other success
	// statuses (202 of a job still running).
	OK   int
	Also []int
	// Response is the JSON answer's type (nil: none, or Content).
	Response any
	// Content is the media type of an answer that is not JSON.
	Content string
}

const hashmapBase = "/api/v1/rating/modules/hashmap/"

// apiOps is every operation of the API. A new route gets its line here.
var apiOps = []apiOp{
	{Method: "GET", Path: "/healthz", Summary: "Liveness: the process answers", Auth: authPublic, Response: client.Health{}},
	{Method: "GET", Path: "/readyz", Summary: "Readiness: store reachable and migrated, workers and singletons running (503 with reasons when not)", Auth: authPublic, Response: client.Readiness{}, Also: []int{503}},
	{Method: "GET", Path: "/metrics", Summary: "Prometheus metrics (text format); on --metrics-listen when set", Auth: authAdmin, Content: "text/plain"},
	{Method: "GET", Path: "/api/v1/openapi.json", Summary: "This description", Auth: authPublic, Content: "application/json"},
	{Method: "GET", Path: "/api/v1/providers", Summary: "Providers and their credential descriptions", Auth: authUser, List: true, Response: []client.Provider{}},

	{Method: "POST", Path: "/api/v1/users", Summary: "Create a user; the answer carries its token, shown once", Auth: authAdmin, Request: client.CreateUserRequest{}, OK: 201, Response: client.User{}},
	{Method: "GET", Path: "/api/v1/users", Summary: "List users", Auth: authAdmin, List: true, Response: []client.User{}},

	{Method: "POST", Path: "/api/v1/sessions", Summary: "Sign a browser in with a token: a session cookie (HttpOnly, SameSite=Strict)", Auth: authPublic, Request: client.SessionRequest{}, OK: 204},
	{Method: "GET", Path: "/api/v1/sessions", Summary: "Who the cookie or token signs in as", Auth: authUser, Response: client.Session{}},
	{Method: "DELETE", Path: "/api/v1/sessions", Summary: "Sign a browser out: the cookie is cleared", Auth: authPublic, OK: 204},

	{Method: "POST", Path: "/api/v1/credentials", Summary: "Add a credential", Auth: authUser, Request: client.CreateCredentialRequest{}, OK: 201, Response: client.Credential{}},
	{Method: "GET", Path: "/api/v1/credentials", Summary: "List credentials (secrets never shown)", Auth: authUser, List: true, Response: []client.Credential{}},
	{Method: "GET", Path: "/api/v1/credentials/{id}", Summary: "Show a credential", Auth: authUser, Response: client.Credential{}},
	{Method: "DELETE", Path: "/api/v1/credentials/{id}", Summary: "Delete a credential (409 while a stack uses it)", Auth: authUser, OK: 204},
	{Method: "POST", Path: "/api/v1/credentials/{id}/verify", Summary: "Check a credential with its provider", Auth: authUser, Response: client.VerifyResult{}},
	{Method: "POST", Path: "/api/v1/credentials/{id}/bootstrap", Summary: "Start the bootstrap job", Auth: authUser, OK: 202, Response: client.JobRef{}},
	{Method: "DELETE", Path: "/api/v1/credentials/{id}/bootstrap", Summary: "Start the job that removes the bootstrap resources", Auth: authUser, OK: 202, Response: client.JobRef{}},

	{Method: "POST", Path: "/api/v1/templates", Summary: "Add a template (422 with diagnostics when refused)", Auth: authUser, Request: client.CreateTemplateRequest{}, OK: 201, Response: client.Template{}},
	{Method: "GET", Path: "/api/v1/templates", Summary: "List templates", Auth: authUser, List: true, Response: []client.Template{}},
	{Method: "GET", Path: "/api/v1/templates/{id}", Summary: "Show a template", Auth: authUser, Response: client.Template{}},
	{Method: "PATCH", Path: "/api/v1/templates/{id}", Summary: "Change a template's title or active version", Auth: authUser, Request: client.UpdateTemplateRequest{}, Response: client.Template{}},
	{Method: "DELETE", Path: "/api/v1/templates/{id}", Summary: "Delete a template (409 while a stack uses it)", Auth: authUser, OK: 204},
	{Method: "POST", Path: "/api/v1/templates/{id}/versions", Summary: "Add a version of a template", Auth: authUser, Request: client.CreateTemplateVersionRequest{}, OK: 201, Response: client.TemplateVersion{}},
	{Method: "GET", Path: "/api/v1/templates/{id}/versions", Summary: "A template's versions with their variables", Auth: authUser, List: true, Response: []client.TemplateVersion{}},
	{Method: "GET", Path: "/api/v1/templates/{id}/versions/{n}", Summary: "One version of a template", Auth: authUser, Response: client.TemplateVersion{}},
	{Method: "POST", Path: "/api/v1/templates/{id}/plan", Summary: "Plan a template with a credential: machines and cost", Auth: authUser, Request: client.PlanRequest{}, Response: client.PlanResult{}},

	{Method: "POST", Path: "/api/v1/stacks", Summary: "Create a stack", Auth: authUser, Request: client.CreateStackRequest{}, OK: 201, Response: client.Stack{}},
	{Method: "GET", Path: "/api/v1/stacks", Summary: "List stacks with their machines", Auth: authUser, List: true, Response: []client.Stack{}},
	{Method: "GET", Path: "/api/v1/stacks/{id}", Summary: "Show a stack", Auth: authUser, Response: client.Stack{}},
	{Method: "POST", Path: "/api/v1/stacks/{id}/apply", Summary: "Start an apply job (409 when one is active); with plan_id, apply exactly that saved plan (409 when stale)", Auth: authUser, Request: client.ApplyStackRequest{}, OptionalBody: true, OK: 202, Response: client.JobRef{}},
	{Method: "PATCH", Path: "/api/v1/stacks/{id}", Summary: "Change a stack's title, template version or variables", Auth: authUser, Request: client.UpdateStackRequest{}, Response: client.Stack{}},
	{Method: "DELETE", Path: "/api/v1/stacks/{id}", Summary: "Delete a destroyed stack", Auth: authUser, OK: 204},
	{Method: "GET", Path: "/api/v1/stacks/{id}/jobs", Summary: "A stack's jobs, newest first, with their phase timings", Auth: authUser, List: true, Response: []client.Job{}},
	{Method: "POST", Path: "/api/v1/stacks/{id}/plan", Summary: "Start a plan job; the job answers the saved plan", Auth: authUser, OK: 202, Response: client.JobRef{}},
	{Method: "POST", Path: "/api/v1/stacks/{id}/drift", Summary: "Start a drift check job", Auth: authUser, OK: 202, Response: client.JobRef{}},
	{Method: "POST", Path: "/api/v1/stacks/{id}/destroy", Summary: "Start a destroy job", Auth: authUser, OK: 202, Response: client.JobRef{}},

	{Method: "GET", Path: "/api/v1/jobs", Summary: "Jobs, newest first: ?status (queued,running when none), ?stack_id, ?machine_id", Auth: authUser, List: true, Query: []string{"status", "stack_id", "machine_id"}, Response: []client.Job{}},
	{Method: "GET", Path: "/api/v1/jobs/{id}", Summary: "Show a job", Auth: authUser, Response: client.Job{}},
	{Method: "GET", Path: "/api/v1/jobs/{id}/events", Summary: "A job's events; ?follow=1 streams them as text/event-stream until the job ends", Auth: authUser, List: true, Query: []string{"follow"}, Response: []client.Event{}},
	{Method: "POST", Path: "/api/v1/jobs/{id}/cancel", Summary: "Cancel a queued or running job (202 while it stops)", Auth: authUser, Also: []int{202}, Response: client.Job{}},

	{Method: "GET", Path: "/api/v1/machines", Summary: "List machines", Auth: authUser, List: true, Query: []string{"stack_id"}, Response: []client.Machine{}},
	{Method: "GET", Path: "/api/v1/machines/{id}", Summary: "Show a machine", Auth: authUser, Response: client.Machine{}},
	{Method: "POST", Path: "/api/v1/machines/{id}/start", Summary: "Start a machine (409 naming the allowed methods)", Auth: authUser, OK: 202, Response: client.JobRef{}},
	{Method: "POST", Path: "/api/v1/machines/{id}/stop", Summary: "Stop a machine", Auth: authUser, OK: 202, Response: client.JobRef{}},
	{Method: "GET", Path: "/api/v1/machines/{id}/terminal", Summary: "WebSocket terminal: binary messages are terminal bytes; text {\"type\":\"resize\",\"cols\",\"rows\"}", Auth: authUser, OK: 101},
	{Method: "GET", Path: "/api/v1/machines/{id}/sessions", Summary: "A machine's terminal sessions (?open=1: the open ones)", Auth: authUser, List: true, Query: []string{"open"}, Response: []client.TerminalSession{}},
	{Method: "POST", Path: "/api/v1/machines/{id}/shares", Summary: "Share a machine with a user: permission use or control", Auth: authUser, Request: client.ShareRequest{}, OK: 201, Response: client.Share{}},
	{Method: "GET", Path: "/api/v1/machines/{id}/shares", Summary: "A machine's shares", Auth: authUser, List: true, Response: []client.Share{}},
	{Method: "DELETE", Path: "/api/v1/machines/{id}/shares/{user_id}", Summary: "Stop sharing a machine with a user", Auth: authUser, OK: 204},

	{Method: "POST", Path: "/api/v1/agent/register", Summary: "An agent registers its machine", Auth: authAgent, Request: client.AgentReport{}, Response: client.AgentAck{}},
	{Method: "POST", Path: "/api/v1/agent/heartbeat", Summary: "An agent's heartbeat", Auth: authAgent, Request: client.AgentReport{}, Response: client.AgentAck{}},
	{Method: "GET", Path: "/api/v1/agent/connect", Summary: "WebSocket tunnel from a machine's agent", Auth: authAgent, OK: 101},
	{Method: "GET", Path: "/api/v1/agent/klient", Summary: "The agent binary for ?os and ?arch", Auth: authPublic, Query: []string{"os", "arch"}, Content: "application/octet-stream"},

	{Method: "GET", Path: "/api/v1/audit", Summary: "The audit log, newest first (admins: every entry; members: their actions and those on what they own)", Auth: authUser, List: true, Query: []string{"actor", "target", "since", "before"}, Response: []client.AuditEntry{}},

	{Method: "GET", Path: "/api/v1/budgets", Summary: "Budgets with their spend, forecast and state", Auth: authUser, List: true, Response: []client.Budget{}},
	{Method: "GET", Path: "/api/v1/budgets/{scope}", Summary: "A budget (user:ID or stack:ID) with its spend, forecast and state", Auth: authUser, Response: client.Budget{}},
	{Method: "PUT", Path: "/api/v1/budgets/{scope}", Summary: "Set a budget: amount, period, warn_at, action stop or notify", Auth: authAdmin, Request: client.BudgetRequest{}, Response: client.Budget{}},
	{Method: "DELETE", Path: "/api/v1/budgets/{scope}", Summary: "Remove a budget", Auth: authAdmin, OK: 204},
	{Method: "GET", Path: "/api/v1/machines/{id}/schedule", Summary: "A machine's autostart and autostop schedule", Auth: authUser, Response: client.Schedule{}},
	{Method: "PUT", Path: "/api/v1/machines/{id}/schedule", Summary: "Set a machine's schedule", Auth: authUser, Request: client.ScheduleRequest{}, Response: client.Schedule{}},
	{Method: "DELETE", Path: "/api/v1/machines/{id}/schedule", Summary: "Remove a machine's schedule", Auth: authUser, OK: 204},
	{Method: "GET", Path: "/api/v1/stacks/{id}/schedule", Summary: "A stack's schedule, for its machines", Auth: authUser, Response: client.Schedule{}},
	{Method: "PUT", Path: "/api/v1/stacks/{id}/schedule", Summary: "Set a stack's schedule", Auth: authUser, Request: client.ScheduleRequest{}, Response: client.Schedule{}},
	{Method: "DELETE", Path: "/api/v1/stacks/{id}/schedule", Summary: "Remove a stack's schedule", Auth: authUser, OK: 204},
	{Method: "POST", Path: "/api/v1/webhooks", Summary: "Add a webhook: url, events, secret (never answered)", Auth: authUser, Request: client.WebhookRequest{}, OK: 201, Response: client.Webhook{}},
	{Method: "GET", Path: "/api/v1/webhooks", Summary: "List webhooks", Auth: authUser, List: true, Response: []client.Webhook{}},
	{Method: "GET", Path: "/api/v1/webhooks/{id}", Summary: "Show a webhook", Auth: authUser, Response: client.Webhook{}},
	{Method: "DELETE", Path: "/api/v1/webhooks/{id}", Summary: "Delete a webhook", Auth: authUser, OK: 204},
	{Method: "GET", Path: "/api/v1/webhooks/{id}/deliveries", Summary: "A webhook's latest deliveries and their attempts", Auth: authUser, List: true, Response: []client.Delivery{}},
	{Method: "POST", Path: "/api/v1/rating/reprocess", Summary: "Re-rate closed periods of a scope and window (dry_run: only the delta)", Auth: authAdmin, Request: client.ReprocessRequest{}, Response: client.Reprocessed{}},

	{Method: "GET", Path: "/api/v1/rating/modules", Summary: "Rating modules, highest priority first", Auth: authUser, List: true, Response: []client.RatingModule{}},
	{Method: "GET", Path: "/api/v1/rating/modules/{name}", Summary: "Show a rating module", Auth: authUser, Response: client.RatingModule{}},
	{Method: "PUT", Path: "/api/v1/rating/modules/{name}", Summary: "Enable, disable or reorder a module", Auth: authAdmin, Request: client.ModuleUpdate{}, Response: client.RatingModule{}},
	{Method: "POST", Path: "/api/v1/rating/quote", Summary: "Price points with the enabled modules", Auth: authUser, Request: client.QuoteRequest{}, Response: client.Quote{}},
	{Method: "POST", Path: "/api/v1/rating/process", Summary: "Rate every closed period now", Auth: authAdmin, Response: client.RatingPass{}},
	{Method: "GET", Path: "/api/v1/rating/summary", Summary: "Rated totals in CloudKitty's table format", Auth: authUser, Query: []string{"begin", "end", "groupby", "filters", "offset", "limit", "scope"}, Response: client.Summary{}},
	{Method: "GET", Path: "/api/v1/rating/dataframes", Summary: "Rated data frames (CloudKitty's offset and limit over points)", Auth: authUser, Query: []string{"begin", "end", "filters", "offset", "limit", "scope"}, Response: []client.DataFrame{}},
	{Method: "GET", Path: "/api/v1/reports", Summary: "Report files the writers made", Auth: authUser, List: true, Response: []client.Report{}},
	{Method: "GET", Path: "/api/v1/reports/{name}", Summary: "Download a report (CSV or JSON)", Auth: authUser, Content: "application/octet-stream"},

	{Method: "GET", Path: hashmapBase + "services", Summary: "Hashmap services", Auth: authUser, List: true, Response: []client.HashmapService{}},
	{Method: "POST", Path: hashmapBase + "services", Summary: "Create a hashmap service", Auth: authAdmin, Request: client.NameRequest{}, OK: 201, Response: client.HashmapService{}},
	{Method: "GET", Path: hashmapBase + "services/{id}", Summary: "Show a hashmap service", Auth: authUser, Response: client.HashmapService{}},
	{Method: "DELETE", Path: hashmapBase + "services/{id}", Summary: "Delete a service with its fields and rules", Auth: authAdmin, OK: 204},
	{Method: "GET", Path: hashmapBase + "fields", Summary: "Hashmap fields", Auth: authUser, List: true, Query: []string{"service_id"}, Response: []client.HashmapField{}},
	{Method: "POST", Path: hashmapBase + "fields", Summary: "Create a hashmap field", Auth: authAdmin, Request: client.FieldRequest{}, OK: 201, Response: client.HashmapField{}},
	{Method: "GET", Path: hashmapBase + "fields/{id}", Summary: "Show a hashmap field", Auth: authUser, Response: client.HashmapField{}},
	{Method: "DELETE", Path: hashmapBase + "fields/{id}", Summary: "Delete a field with its rules", Auth: authAdmin, OK: 204},
	{Method: "GET", Path: hashmapBase + "groups", Summary: "Hashmap groups", Auth: authUser, List: true, Response: []client.HashmapGroup{}},
	{Method: "POST", Path: hashmapBase + "groups", Summary: "Create a hashmap group", Auth: authAdmin, Request: client.NameRequest{}, OK: 201, Response: client.HashmapGroup{}},
	{Method: "GET", Path: hashmapBase + "groups/{id}", Summary: "Show a hashmap group", Auth: authUser, Response: client.HashmapGroup{}},
	{Method: "DELETE", Path: hashmapBase + "groups/{id}", Summary: "Delete a group; its rules become ungrouped", Auth: authAdmin, OK: 204},
	{Method: "GET", Path: hashmapBase + "mappings", Summary: "Hashmap mappings", Auth: authUser, List: true, Query: []string{"service_id", "field_id", "group_id"}, Response: []client.HashmapMapping{}},
	{Method: "POST", Path: hashmapBase + "mappings", Summary: "Create a mapping", Auth: authAdmin, Request: client.MappingRequest{}, OK: 201, Response: client.HashmapMapping{}},
	{Method: "GET", Path: hashmapBase + "mappings/{id}", Summary: "Show a mapping", Auth: authUser, Response: client.HashmapMapping{}},
	{Method: "PUT", Path: hashmapBase + "mappings/{id}", Summary: "Replace a mapping", Auth: authAdmin, Request: client.MappingRequest{}, Response: client.HashmapMapping{}},
	{Method: "DELETE", Path: hashmapBase + "mappings/{id}", Summary: "Delete a mapping", Auth: authAdmin, OK: 204},
	{Method: "GET", Path: hashmapBase + "thresholds", Summary: "Hashmap thresholds", Auth: authUser, List: true, Query: []string{"service_id", "field_id", "group_id"}, Response: []client.HashmapThreshold{}},
	{Method: "POST", Path: hashmapBase + "thresholds", Summary: "Create a threshold", Auth: authAdmin, Request: client.ThresholdRequest{}, OK: 201, Response: client.HashmapThreshold{}},
	{Method: "GET", Path: hashmapBase + "thresholds/{id}", Summary: "Show a threshold", Auth: authUser, Response: client.HashmapThreshold{}},
	{Method: "PUT", Path: hashmapBase + "thresholds/{id}", Summary: "Replace a threshold", Auth: authAdmin, Request: client.ThresholdRequest{}, Response: client.HashmapThreshold{}},
	{Method: "DELETE", Path: hashmapBase + "thresholds/{id}", Summary: "Delete a threshold", Auth: authAdmin, OK: 204},
}

// OpenAPIPatterns returns the "METHOD /path" of every documented
// operation, as the server's mux patterns are written.
func OpenAPIPatterns() []string {
	out := make([]string, len(apiOps))
	for i, op := range apiOps {
		out[i] = op.Method + " " + op.Path
	}
	return out
}

var (
	openAPIOnce sync.Once
	openAPIDoc  []byte
)

// OpenAPI returns the API's OpenAPI 3.1 description (JSON), built once.
func OpenAPI() []byte {
	openAPIOnce.Do(func() {
		b, err := json.MarshalIndent(buildOpenAPI(apiOps), "", "  ")
		if err != nil {
			panic("encode the OpenAPI description: " + err.Error()) // only Go values built here: cannot fail
		}
		openAPIDoc = b
	})
	return openAPIDoc
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(OpenAPI())
}

// buildOpenAPI describes ops.
func buildOpenAPI(ops []apiOp) map[string]any {
	sc := newSchemas()
	errorRef := sc.of(reflect.TypeFor[client.Error]())
	paths := map[string]map[string]any{}
	for _, op := range ops {
		o := map[string]any{
			"operationId": operationID(op),
			"summary":     op.Summary,
			"tags":        []string{tagOf(op.Path)},
		}
		switch op.Auth {
		case authPublic:
			o["security"] = []any{}
		case authAdmin:
			o["description"] = "Admins only."
		case authAgent:
			o["description"] = "Called by a machine's agent with its machine token."
		}
		var params []any
		for _, seg := range strings.Split(op.Path, "/") {
			if name, ok := strings.CutPrefix(seg, "{"); ok {
				name = strings.TrimSuffix(name, "}")
				params = append(params, map[string]any{"name": name, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
			}
		}
		if op.List {
			params = append(params,
				map[string]any{"name": "limit", "in": "query", "description": "page size (default " + strconv.Itoa(defaultLimit) + ")",
					"schema": map[string]any{"type": "integer", "minimum": 1, "maximum": maxLimit}},
				map[string]any{"name": "after", "in": "query", "description": "opaque cursor from a Link rel=\"next\"", "schema": map[string]any{"type": "string"}})
		}
		for _, q := range op.Query {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": map[string]any{"type": "string"}})
		}
		if len(params) > 0 {
			o["parameters"] = params
		}
		if op.Request != nil {
			o["requestBody"] = map[string]any{"required": !op.OptionalBody, "content": map[string]any{
				"application/json": map[string]any{"schema": sc.of(reflect.TypeOf(op.Request))}}}
		}
		responses := map[string]any{
			"default": map[string]any{"description": "an error: 4xx for the caller's mistakes, 503 with Retry-After when the store cannot be reached",
				"content": map[string]any{"application/json": map[string]any{"schema": errorRef}}},
		}
		ok := op.OK
		if ok == 0 {
			ok = http.StatusOK
		}
		for _, status := range append([]int{ok}, op.Also...) {
			resp := map[string]any{"description": http.StatusText(status)}
			switch {
			case op.Response != nil:
				resp["content"] = map[string]any{"application/json": map[string]any{"schema": sc.of(reflect.TypeOf(op.Response))}}
			case op.Content == "application/json":
				resp["content"] = map[string]any{op.Content: map[string]any{"schema": map[string]any{"type": "object"}}}
			case op.Content != "":
				resp["content"] = map[string]any{op.Content: map[string]any{"schema": map[string]any{"type": "string"}}}
			}
			if op.List && status == ok {
				resp["headers"] = map[string]any{"Link": map[string]any{"description": `the next page: <…>; rel="next"`, "schema": map[string]any{"type": "string"}}}
			}
			responses[strconv.Itoa(status)] = resp
		}
		o["responses"] = responses
		if paths[op.Path] == nil {
			paths[op.Path] = map[string]any{}
		}
		paths[op.Path][strings.ToLower(op.Method)] = o
	}
	return map[string]any{
		"openapi":           "3.1.0",
		"jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
		"info": map[string]any{
			"title":       "Kloud API",
			"version":     version.Version,
			"description": "Terraform-backed stack orchestration. Lists answer a JSON array, one page at a time (?limit, default 100, at most 1000; ?after); the next page is in a Link: <…>; rel=\"next\" header. Unknown query parameters are 400.",
		},
		"security": []any{map[string]any{"bearer": []any{}}},
		"paths":    paths,
		"components": map[string]any{
			"schemas":         sc.defs,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
	}
}

// operationID names an operation after its method and path:
// "GET /api/v1/machines/{id}" is "get_machines_id".
func operationID(op apiOp) string {
	path := strings.TrimPrefix(op.Path, "/api/v1")
	var parts []string
	for _, seg := range strings.Split(path, "/") {
		seg = strings.Trim(seg, "{}")
		seg = strings.NewReplacer(".", "_", "-", "_").Replace(seg)
		if seg != "" {
			parts = append(parts, seg)
		}
	}
	return strings.ToLower(op.Method) + "_" + strings.Join(parts, "_")
}

// tagOf groups operations by their resource: /api/v1/<resource>/….
func tagOf(path string) string {
	rest, ok := strings.CutPrefix(path, "/api/v1/")
	if !ok {
		return "operations"
	}
	tag, _, _ := strings.Cut(rest, "/")
	tag, _, _ = strings.Cut(tag, ".")
	return tag
}

// Undocumented compares the server's route patterns ("METHOD /path", as
// registered) with the description: routes no operation describes, and
// operations no route serves, each with what to do about it.
func Undocumented(routes []string) []string {
	documented := map[string]bool{}
	for _, p := range OpenAPIPatterns() {
		documented[p] = true
	}
	served := map[string]bool{}
	var problems []string
	for _, r := range routes {
		served[r] = true
		if !documented[r] {
			method, path, _ := strings.Cut(r, " ")
			problems = append(problems, "route "+r+" is not in the OpenAPI description: add to apiOps in kloud/openapi.go "+
				`{Method: "`+method+`", Path: "`+path+`", Summary: "…", Auth: …, Request: …, Response: …}`)
		}
	}
	for _, op := range apiOps {
		if p := op.Method + " " + op.Path; !served[p] {
			problems = append(problems, "the OpenAPI description documents "+p+", which no route serves: remove it from apiOps in kloud/openapi.go or register the route")
		}
	}
	sort.Strings(problems)
	return problems
}
