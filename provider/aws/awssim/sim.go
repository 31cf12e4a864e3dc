// Package awssim is a simulator for tests; it is not the cloud. It serves
// the EC2 and STS Query APIs on a loopback HTTP server, in their real wire
// format (form-encoded Action=...&Version=..., XML answers in the services'
// namespaces, their error documents and HTTP statuses), so that the real
// aws-sdk-go-v2 clients can be pointed at it through their base endpoint.
//
// What it speaks: EC2 DescribeInstances, RunInstances, StartInstances,
// StopInstances and TerminateInstances (API version 2016-11-15) and STS
// GetCallerIdentity (2011-06-15). Instances move through EC2's states the
// way a cloud's do: pending, stopping and shutting-down each end after a
// configurable number of DescribeInstances calls that see the instance, or
// after a duration of the simulator's clock. Faults are injected per action:
// throttling (RequestLimitExceeded for EC2, Throttling for STS), any error
// code and status (5xx), and delays.
//
// Requests are authenticated as AWS does it: the SigV4 Authorization
// header's access key id must be one added with AddKey (else
// InvalidClientTokenId from STS, AuthFailure from EC2), and the signature
// is recomputed from the request and that key's secret (else
// SignatureDoesNotMatch). Unlike AWS, the request time (X-Amz-Date) is not
// checked against the clock, session tokens are not supported, and
// DescribeInstances answers in one page (no MaxResults/NextToken).
package awssim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// The API versions and XML namespaces the simulator speaks.
const (
	EC2Version   = "2016-11-15"
	EC2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"
	STSVersion   = "2011-06-15"
	STSNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"
)

// Defaults of Options.
const (
	DefaultRegion          = "us-east-1"
	DefaultAccount         = "123456789012"
	DefaultTransitionPolls = 2
)

// Options configure a simulator.
type Options struct {
	// Region is the region the simulator serves; its instances are placed
	// in Region + "a" unless told otherwise. DefaultRegion when empty.
	Region string
	// TransitionPolls is how many DescribeInstances calls that include an
	// instance see it in a transitional state (pending, stopping,
	// shutting-down) before the next one sees the final state.
	// DefaultTransitionPolls when zero; a negative value means
	// transitions end on the clock only.
	TransitionPolls int
	// TransitionAfter, when positive, also ends a transitional state once
	// this much time passed on the simulator's clock.
	TransitionAfter time.Duration
	// Now is the simulator's clock (launch times, TransitionAfter);
	// time.Now when nil.
	Now func() time.Time
}

// Key is an IAM identity's access key the simulator accepts.
type Key struct {
	AccessKeyID     string
	SecretAccessKey string
	// Account is the 12-digit account id (DefaultAccount when empty);
	// UserID and ARN are derived from it and the key when empty.
	Account string
	UserID  string
	ARN     string
}

// Fault is an error the simulator answers instead of serving a request.
type Fault struct {
	// Service ("ec2" or "sts") and Action select the requests the fault
	// hits; empty matches any.
	Service, Action string
	// Count is how many matching requests the fault hits (at least one).
	Count int
	// Throttle answers the service's throttling error (EC2
	// RequestLimitExceeded with 503, STS Throttling with 400); otherwise
	// Code, Message and Status are answered.
	Throttle bool
	Code     string
	Message  string
	Status   int
	// Delay, when positive, holds the request that long before it is
	// served (or answered with the fault's error, when Code is set). A
	// client that gives up first closes the request and the wait ends.
	Delay time.Duration
}

// Server is a running simulator. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	srv  *httptest.Server

	mu        sync.Mutex
	keys      map[string]Key
	instances map[string]*instance
	order     []string // instance ids in launch order
	faults    []*Fault
	calls     map[string]int // by "service:Action"
	seq       int
}

// New starts a simulator on 127.0.0.1. Close stops it.
func New(opts Options) *Server {
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if opts.TransitionPolls == 0 {
		opts.TransitionPolls = DefaultTransitionPolls
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts:      opts,
		keys:      map[string]Key{},
		instances: map[string]*instance{},
		calls:     map[string]int{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s
}

// URL is the simulator's base endpoint (http://127.0.0.1:port), for both
// EC2 and STS.
func (s *Server) URL() string { return s.srv.URL }

// Region is the region the simulator serves.
func (s *Server) Region() string { return s.opts.Region }

// Close stops the server and waits for requests in flight.
func (s *Server) Close() { s.srv.Close() }

// AddKey makes the simulator accept k.
func (s *Server) AddKey(k Key) {
	if k.Account == "" {
		k.Account = DefaultAccount
	}
	if k.UserID == "" {
		k.UserID = "AIDA" + strings.ToUpper(hex.EncodeToString([]byte(k.AccessKeyID))[:16])
	}
	if k.ARN == "" {
		k.ARN = "arn:aws:iam::" + k.Account + ":user/kloud-test"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[k.AccessKeyID] = k
}

// InjectFault adds f; faults are consumed in the order they were added.
func (s *Server) InjectFault(f Fault) {
	if f.Count < 1 {
		f.Count = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// Throttle makes the next n requests of action (any action when empty)
// fail with the service's throttling error.
func (s *Server) Throttle(action string, n int) {
	s.InjectFault(Fault{Action: action, Count: n, Throttle: true})
}

// Calls returns how many requests of action reached the simulator (any
// service), answered or faulted; every action when action is empty.
func (s *Server) Calls(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, c := range s.calls {
		if action == "" || strings.HasSuffix(k, ":"+action) {
			n += c
		}
	}
	return n
}

// takeFault returns the first fault matching the request and uses it up.
func (s *Server) takeFault(service, action string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if (f.Service != "" && f.Service != service) || (f.Action != "" && f.Action != action) {
			continue
		}
		hit := *f
		f.Count--
		if f.Count == 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		return &hit
	}
	return nil
}

// apiError is an error answered in the service's error document.
type apiError struct {
	Status        int
	Code, Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// maxBody bounds a request's body.
const maxBody = 1 << 20

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := newRequestID()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		writeEC2Error(w, reqID, errorf(http.StatusBadRequest, "InvalidRequest", "the request body could not be read"))
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeEC2Error(w, reqID, errorf(http.StatusBadRequest, "MalformedQueryString", "the request body is not form-encoded: %v", err))
		return
	}
	for k, v := range r.URL.Query() {
		form[k] = append(form[k], v...)
	}
	action := form.Get("Action")
	service := "ec2"
	if sig, err := parseAuthorization(r.Header.Get("Authorization")); err == nil {
		service = sig.service
	} else if action == "GetCallerIdentity" {
		service = "sts"
	}
	s.mu.Lock()
	s.calls[service+":"+action]++
	s.mu.Unlock()

	writeErr := writeEC2Error
	if service == "sts" {
		writeErr = writeSTSError
	}
	if f := s.takeFault(service, action); f != nil {
		if f.Delay > 0 && !wait(r.Context(), f.Delay) {
			return // the client gave up
		}
		switch {
		case f.Throttle && service == "sts":
			writeErr(w, reqID, errorf(http.StatusBadRequest, "Throttling", "Rate exceeded"))
			return
		case f.Throttle:
			writeErr(w, reqID, errorf(http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded."))
			return
		case f.Code != "":
			status := f.Status
			if status == 0 {
				status = http.StatusInternalServerError
			}
			writeErr(w, reqID, &apiError{Status: status, Code: f.Code, Message: f.Message})
			return
		}
		// A delay alone: serve the request after it.
	}
	if err := s.authenticate(r, body, service); err != nil {
		writeErr(w, reqID, err)
		return
	}
	var resp any
	var aerr *apiError
	switch service {
	case "sts":
		resp, aerr = s.sts(r, form, reqID)
	case "ec2":
		resp, aerr = s.ec2(form, reqID)
	default:
		aerr = errorf(http.StatusBadRequest, "UnknownService", "the simulator serves ec2 and sts, not %q", service)
	}
	if aerr != nil {
		writeErr(w, reqID, aerr)
		return
	}
	writeXML(w, http.StatusOK, resp)
}

// wait holds for d or until ctx ends; it reports whether d passed.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// authenticate checks the request's SigV4 signature against the known keys.
func (s *Server) authenticate(r *http.Request, body []byte, service string) *apiError {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return errorf(http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token")
	}
	sig, err := parseAuthorization(auth)
	if err != nil {
		return errorf(http.StatusBadRequest, "IncompleteSignature", "%v", err)
	}
	s.mu.Lock()
	key, ok := s.keys[sig.accessKeyID]
	s.mu.Unlock()
	if !ok {
		if service == "sts" {
			return errorf(http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
		}
		return errorf(http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials")
	}
	if !verifySignature(r, body, sig, key.SecretAccessKey) {
		return errorf(http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	return nil
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func writeXML(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	if err := xml.NewEncoder(&buf).Encode(v); err != nil {
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// ec2ErrorResponse is EC2's error document.
type ec2ErrorResponse struct {
	XMLName   xml.Name `xml:"Response"`
	Errors    []ec2Err `xml:"Errors>Error"`
	RequestID string   `xml:"RequestID"`
}

type ec2Err struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func writeEC2Error(w http.ResponseWriter, reqID string, e *apiError) {
	writeXML(w, e.Status, ec2ErrorResponse{Errors: []ec2Err{{Code: e.Code, Message: e.Message}}, RequestID: reqID})
}

// stsErrorResponse is the Query protocol's (STS's) error document.
type stsErrorResponse struct {
	XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ ErrorResponse"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

func writeSTSError(w http.ResponseWriter, reqID string, e *apiError) {
	var doc stsErrorResponse
	doc.Error.Type = "Sender"
	if e.Status >= 500 {
		doc.Error.Type = "Receiver"
	}
	doc.Error.Code, doc.Error.Message, doc.RequestID = e.Code, e.Message, reqID
	writeXML(w, e.Status, doc)
}

// The STS side.

type getCallerIdentityResponse struct {
	XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ GetCallerIdentityResponse"`
	Result  struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	} `xml:"GetCallerIdentityResult"`
	Metadata struct {
		RequestID string `xml:"RequestId"`
	} `xml:"ResponseMetadata"`
}

func (s *Server) sts(r *http.Request, form url.Values, reqID string) (any, *apiError) {
	if v := form.Get("Version"); v != STSVersion {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "the simulator speaks STS version %s, not %q", STSVersion, v)
	}
	action := form.Get("Action")
	if action != "GetCallerIdentity" {
		return nil, errorf(http.StatusBadRequest, "InvalidAction", "Could not find operation %s for version %s", action, STSVersion)
	}
	sig, _ := parseAuthorization(r.Header.Get("Authorization")) // authenticate parsed it
	s.mu.Lock()
	k := s.keys[sig.accessKeyID]
	s.mu.Unlock()
	var resp getCallerIdentityResponse
	resp.Result.Arn, resp.Result.UserID, resp.Result.Account = k.ARN, k.UserID, k.Account
	resp.Metadata.RequestID = reqID
	return resp, nil
}

// ClearFaults drops every fault not yet used up.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}
