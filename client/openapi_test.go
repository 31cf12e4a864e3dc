package client_test

import (
	"bytes"
	"context"
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
	ctx := context.Background()
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}
	validated := map[string]bool{}
	for _, a := range answers {
		req := a.req.Clone(ctx)
		req.Body = io.NopCloser(bytes.NewReader(a.reqBody))
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("%s %s: no operation of the description: %v", req.Method, req.URL.Path, err)
			continue
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			t.Errorf("request %s %s does not match the description: %v\n%.300s", req.Method, req.URL.Path, err, a.reqBody)
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: a.status, Header: a.header,
			Body: io.NopCloser(bytes.NewReader(a.body)), Options: opts}
		if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
			t.Errorf("answer of %s %s (%d) does not match the description: %v\n%.300s", req.Method, req.URL.Path, a.status, err, a.body)
		}
		validated[req.Method+" "+route.Path] = true
	}
	if len(validated) < 30 {
		t.Errorf("only %d operations were validated by example", len(validated))
	}
	_ = http.MethodGet
}
