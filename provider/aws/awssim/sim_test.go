package awssim

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

const (
	testKey    = "AKIAIOSFODNN7EXAMPLE"
	testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

func newSim(t *testing.T, opts Options) *Server {
	t.Helper()
	s := New(opts)
	t.Cleanup(s.Close)
	s.AddKey(Key{AccessKeyID: testKey, SecretAccessKey: testSecret})
	return s
}

// sdkConfig is a real SDK configuration pointed at the simulator; the
// retryer makes one attempt so that every fault is seen by the test.
func sdkConfig(s *Server, key, secret string) aws.Config {
	return aws.Config{
		Region:       s.Region(),
		Credentials:  credentials.NewStaticCredentialsProvider(key, secret, ""),
		BaseEndpoint: aws.String(s.URL()),
		Retryer:      func() aws.Retryer { return retry.AddWithMaxAttempts(retry.NewStandard(), 1) },
	}
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestCallerIdentity(t *testing.T) {
	s := newSim(t, Options{})
	ctx := context.Background()
	out, err := sts.NewFromConfig(sdkConfig(s, testKey, testSecret)).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Account) != DefaultAccount || !strings.HasPrefix(aws.ToString(out.Arn), "arn:aws:iam::"+DefaultAccount+":") || aws.ToString(out.UserId) == "" {
		t.Errorf("identity = %s %s %s", aws.ToString(out.Account), aws.ToString(out.Arn), aws.ToString(out.UserId))
	}
	tests := []struct {
		name, key, secret, code string
	}{
		{"unknown access key", "AKIAAAAAAAAAAAAAAAAA", testSecret, "InvalidClientTokenId"},
		{"wrong secret key", testKey, strings.Repeat("x", 40), "SignatureDoesNotMatch"},
	}
	for _, tt := range tests {
		_, err := sts.NewFromConfig(sdkConfig(s, tt.key, tt.secret)).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if apiCode(err) != tt.code {
			t.Errorf("%s: err = %v, want %s", tt.name, err, tt.code)
		}
	}
	// EC2 refuses an unknown key with its own code.
	_, err = ec2.NewFromConfig(sdkConfig(s, "AKIAAAAAAAAAAAAAAAAA", testSecret)).DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	if apiCode(err) != "AuthFailure" {
		t.Errorf("ec2 unknown key: err = %v", err)
	}
}

// TestWireFormat checks the documents byte-level, without the SDK: the
// EC2 error document and status, the STS error document, an unsigned
// request, an unknown action.
func TestWireFormat(t *testing.T) {
	s := newSim(t, Options{})
	post := func(form url.Values, auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, s.URL()+"/", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := post(url.Values{"Action": {"DescribeInstances"}, "Version": {EC2Version}}, "")
	if status != http.StatusForbidden || !strings.Contains(body, "<Response><Errors><Error><Code>MissingAuthenticationToken</Code>") || !strings.Contains(body, "<RequestID>") {
		t.Errorf("unsigned ec2: %d %s", status, body)
	}
	status, body = post(url.Values{"Action": {"GetCallerIdentity"}, "Version": {STSVersion}}, "")
	if status != http.StatusForbidden || !strings.Contains(body, `<ErrorResponse xmlns="`+STSNamespace+`"><Error><Type>Sender</Type><Code>MissingAuthenticationToken</Code>`) {
		t.Errorf("unsigned sts: %d %s", status, body)
	}
	s.Throttle("DescribeInstances", 1)
	status, body = post(url.Values{"Action": {"DescribeInstances"}, "Version": {EC2Version}}, "")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "<Code>RequestLimitExceeded</Code>") {
		t.Errorf("throttled: %d %s", status, body)
	}

	// Signed requests through the SDK: a success document is in the EC2
	// namespace, an unknown instance is InvalidInstanceID.NotFound.
	ctx := context.Background()
	client := ec2.NewFromConfig(sdkConfig(s, testKey, testSecret))
	_, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
	if apiCode(err) != "InvalidInstanceID.NotFound" || !strings.Contains(err.Error(), "StatusCode: 400") {
		t.Errorf("unknown instance: %v", err)
	}
	_, err = client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"web-1"}})
	if apiCode(err) != "InvalidInstanceID.Malformed" {
		t.Errorf("malformed id: %v", err)
	}
	_, err = client.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}, DryRun: aws.Bool(true)})
	if apiCode(err) != "DryRunOperation" {
		t.Errorf("dry run: %v", err)
	}
	_, err = client.RebootInstances(ctx, &ec2.RebootInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
	if apiCode(err) != "InvalidAction" {
		t.Errorf("unsupported action: %v", err)
	}
}

func stateOf(t *testing.T, client *ec2.Client, id string) ec2types.InstanceStateName {
	t.Helper()
	out, err := client.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Reservations[0].Instances[0].State.Name
}

// TestLifecycle runs an instance through run, stop, start and terminate
// with the SDK, transitions ending after two describes.
func TestLifecycle(t *testing.T) {
	s := newSim(t, Options{TransitionPolls: 2})
	ctx := context.Background()
	client := ec2.NewFromConfig(sdkConfig(s, testKey, testSecret))
	run, err := client.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String("ami-0abcdef1234567890"), InstanceType: ec2types.InstanceTypeT3Small,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{{Key: aws.String("Name"), Value: aws.String("web")}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	if run.Instances[0].State.Name != ec2types.InstanceStateNamePending {
		t.Fatalf("run: %s", run.Instances[0].State.Name)
	}
	want := []ec2types.InstanceStateName{"pending", "pending", "running", "running"}
	for i, w := range want {
		if got := stateOf(t, client, id); got != w {
			t.Fatalf("describe %d after run: %s, want %s", i+1, got, w)
		}
	}
	out, _ := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	in := out.Reservations[0].Instances[0]
	ip := aws.ToString(in.PublicIpAddress)
	if in.InstanceType != ec2types.InstanceTypeT3Small || aws.ToString(in.ImageId) != "ami-0abcdef1234567890" || ip == "" ||
		aws.ToString(in.Placement.AvailabilityZone) != "us-east-1a" || aws.ToString(in.Tags[0].Value) != "web" {
		t.Errorf("instance = %+v", in)
	}

	stop, err := client.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if c := stop.StoppingInstances[0]; c.PreviousState.Name != "running" || c.CurrentState.Name != "stopping" || aws.ToInt32(c.CurrentState.Code) != 64 {
		t.Errorf("stop change = %+v %+v", c.PreviousState, c.CurrentState)
	}
	if _, err := client.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); apiCode(err) != "IncorrectInstanceState" {
		t.Errorf("start while stopping: %v", err)
	}
	for _, w := range []ec2types.InstanceStateName{"stopping", "stopping", "stopped"} {
		if got := stateOf(t, client, id); got != w {
			t.Fatalf("after stop: %s, want %s", got, w)
		}
	}
	if _, err := client.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []ec2types.InstanceStateName{"pending", "pending", "running"} {
		if got := stateOf(t, client, id); got != w {
			t.Fatalf("after start: %s, want %s", got, w)
		}
	}
	if got, _ := s.Instance(id); got.PublicIP == ip || got.PublicIP == "" {
		t.Errorf("public ip after stop/start = %q (was %q)", got.PublicIP, ip)
	}
	if _, err := client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []ec2types.InstanceStateName{"shutting-down", "shutting-down", "terminated"} {
		if got := stateOf(t, client, id); got != w {
			t.Fatalf("after terminate: %s, want %s", got, w)
		}
	}
	s.Forget(id)
	if _, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}); apiCode(err) != "InvalidInstanceID.NotFound" {
		t.Errorf("forgotten instance: %v", err)
	}
	if n := s.Calls("DescribeInstances"); n != 15 {
		t.Errorf("DescribeInstances calls = %d, want 15", n)
	}
}

// TestClockTransitions ends transitions on the simulator's clock alone.
func TestClockTransitions(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	s := newSim(t, Options{TransitionPolls: -1, TransitionAfter: 30 * time.Second, Now: func() time.Time { return now }})
	client := ec2.NewFromConfig(sdkConfig(s, testKey, testSecret))
	id := s.AddInstance(Instance{State: Pending})
	for range 5 {
		if got := stateOf(t, client, id); got != "pending" {
			t.Fatalf("before 30s: %s", got)
		}
	}
	now = now.Add(30 * time.Second)
	if got := stateOf(t, client, id); got != "running" {
		t.Fatalf("after 30s: %s", got)
	}
}

// TestFaults checks throttling counts, a 5xx fault and a delay that the
// client outwaits with its context.
func TestFaults(t *testing.T) {
	s := newSim(t, Options{})
	ctx := context.Background()
	client := ec2.NewFromConfig(sdkConfig(s, testKey, testSecret))
	s.Throttle("StopInstances", 2)
	s.InjectFault(Fault{Service: "ec2", Action: "DescribeInstances", Code: "InternalError", Message: "An internal error has occurred", Status: 500})
	id := s.AddInstance(Instance{})
	for i := range 2 {
		if _, err := client.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); apiCode(err) != "RequestLimitExceeded" {
			t.Errorf("stop %d: %v", i, err)
		}
	}
	if _, err := client.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Errorf("stop after the throttles: %v", err)
	}
	if _, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); apiCode(err) != "InternalError" || !strings.Contains(err.Error(), "StatusCode: 500") {
		t.Errorf("5xx fault: %v", err)
	}
	if s.Calls("StopInstances") != 3 || s.Calls("DescribeInstances") != 1 {
		t.Errorf("calls: stop %d describe %d", s.Calls("StopInstances"), s.Calls("DescribeInstances"))
	}
	s.Throttle("GetCallerIdentity", 1)
	_, err := sts.NewFromConfig(sdkConfig(s, testKey, testSecret)).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if apiCode(err) != "Throttling" {
		t.Errorf("sts throttle: %v", err)
	}

	s.InjectFault(Fault{Action: "DescribeInstances", Delay: time.Hour})
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := client.DescribeInstances(short, &ec2.DescribeInstancesInput{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("delayed: %v", err)
	}
}
