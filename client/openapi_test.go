package client_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/kloud/kloud/kloud"
)

// loadOpenAPI loads the server's description with kin-openapi and checks
// it is a valid OpenAPI 3.1 document.
func loadOpenAPI(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(kloud.OpenAPI())
	if err != nil {
		t.Fatalf("load the OpenAPI description: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("the description is OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI description is not valid: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("route the OpenAPI description: %v", err)
	}
	return doc, router
}

// TestOpenAPIDescribesEveryRoute: the description documents every route
// the server registers and nothing else; a route added without its line
// in kloud/openapi.go fails, naming the line to add.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	loadOpenAPI(t)
	routes := serverRoutes(t)
	for _, p := range kloud.Undocumented(routes) {
		t.Error(p)
	}

	// The check itself: a new undocumented route, and a documented path
	// whose route went away, are each named.
	added := append(slices.Clone(routes), "POST /api/v1/widgets/{id}/polish")
	problems := kloud.Undocumented(added)
	if len(problems) != 1 || !strings.Contains(problems[0], "POST /api/v1/widgets/{id}/polish") ||
		!strings.Contains(problems[0], `Path: "/api/v1/widgets/{id}/polish"`) {
		t.Errorf("an undocumented route gives %q, want one problem naming it and the line to add", problems)
	}
	removed := slices.DeleteFunc(slices.Clone(routes), func(r string) bool { return r == "GET /api/v1/machines/{id}" })
	problems = kloud.Undocumented(removed)
	if len(problems) != 1 || !strings.Contains(problems[0], "documents GET /api/v1/machines/{id}, which no route serves") {
		t.Errorf("a documented path without a route gives %q, want one problem naming it", problems)
	}
}

// validateExamples checks recorded requests and their JSON answers
// against the description with kin-openapi's validator (JSON Schema
// 2020-12 for a 3.1 document).
func validateExamples(t *testing.T, answers []answer) {
	t.Helper()
	_, router := loadOpenAPI(t)
	validated := map[string]bool{}
	for _, a := range answers {
		op, err := validateExample(router, a)
		if err != nil {
			t.Error(err)
		}
		validated[op] = true
	}
	if len(validated) < 30 {
		t.Errorf("only %d operations were validated by example", len(validated))
	}
}

// validateExample checks one recorded request and its answer against the
// description, and names the operation.
func validateExample(router routers.Router, a answer) (string, error) {
	ctx := context.Background()
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}
	req := a.req.Clone(ctx)
	req.Body = io.NopCloser(bytes.NewReader(a.reqBody))
	route, params, err := router.FindRoute(req)
	if err != nil {
		return "", fmt.Errorf("%s %s: no operation of the description: %w", req.Method, req.URL.Path, err)
	}
	op := req.Method + " " + route.Path
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
		return op, fmt.Errorf("request %s does not match the description: %w\n%.300s", op, err, a.reqBody)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: a.status, Header: a.header,
		Body: io.NopCloser(bytes.NewReader(a.body)), Options: opts}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return op, fmt.Errorf("answer of %s (%d) does not match the description: %w\n%.300s", op, a.status, err, a.body)
	}
	return op, nil
}

// TestOpenAPIValidationRefusesWrongExamples: the validation the route test
// runs does refuse a request or an answer that is not as described.
func TestOpenAPIValidationRefusesWrongExamples(t *testing.T) {
	_, router := loadOpenAPI(t)
	get := func(method, path, body string) *http.Request {
		r, _ := http.NewRequest(method, "http://kloud"+path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	for _, c := range []struct {
		name string
		a    answer
	}{
		{"a machine whose uptime is a string", answer{req: get("GET", "/api/v1/machines/m-1", ""), status: 200, header: jsonHeader,
			body: []byte(`{"id":"m-1","stack_id":"s","owner_id":"u","label":"l","provider":"p","state":"Running","reason":"","always_on":false,"metadata":{},"uptime_seconds":"long","agent":{"status":"never"}}`)}},
		{"a job ref without its job_id", answer{req: get("POST", "/api/v1/stacks/s-1/apply", ""), status: 202, header: jsonHeader, body: []byte(`{}`)}},
		{"a stack request whose title is a number", answer{req: get("POST", "/api/v1/stacks", `{"title":1,"template_id":"t","credential_id":"c"}`),
			reqBody: []byte(`{"title":1,"template_id":"t","credential_id":"c"}`), status: 201, header: jsonHeader, body: []byte(`{}`)}},
		{"a status the operation does not answer", answer{req: get("GET", "/healthz", ""), status: 201, header: jsonHeader, body: []byte(`{}`)}},
	} {
		if _, err := validateExample(router, c.a); err == nil {
			t.Errorf("%s: the validation accepts it", c.name)
		}
	}
}
