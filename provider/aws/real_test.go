package aws

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
)

// TestRealAWS runs the credential check against the real AWS API, opt-in:
//
//	KLOUD_TEST_AWS=1 AWS_ACCESS_KEY_ID=AKIA... AWS_SECRET_ACCESS_KEY=... \
//	AWS_REGION=eu-west-1 go test ./provider/aws/ -run TestRealAWS -v
//
// (AWS_SESSION_TOKEN too for temporary keys). It verifies the keys with
// STS GetCallerIdentity, then checks that the same access key with a wrong
// secret is refused as bad keys (SignatureDoesNotMatch), not as an
// unreachable endpoint. With KLOUD_TEST_AWS_INSTANCE=i-... it also reads
// that instance's state with DescribeInstances (read-only: nothing is
// started, stopped or created).
func TestRealAWS(t *testing.T) {
	if os.Getenv("KLOUD_TEST_AWS") != "1" {
		t.Skip("set KLOUD_TEST_AWS=1 and the standard AWS_* credentials to run against the real AWS API")
	}
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	if region == "" {
		region = "us-east-1"
	}
	cred := &Credential{
		AccessKey:    os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretKey:    stack.Secret(os.Getenv("AWS_SECRET_ACCESS_KEY")),
		SessionToken: stack.Secret(os.Getenv("AWS_SESSION_TOKEN")),
		Region:       Region(region),
	}
	if err := cred.Valid(); err != nil {
		t.Fatalf("the AWS_* environment is not a valid credential: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := Options{}.withDefaults()
	id, err := opts.CallerIdentity(ctx, cred)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("account %s, arn %s", id.Account, id.ARN)

	bad := *cred
	secret := []byte(cred.SecretKey.Reveal())
	secret[0] ^= 1 // still 40 characters of the same alphabet
	bad.SecretKey = stack.Secret(secret)
	_, err = opts.CallerIdentity(ctx, &bad)
	if !errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrUnreachable) {
		t.Errorf("a wrong secret key: %v, want %v", err, ErrBadCredentials)
	}
	if err != nil && strings.Contains(err.Error(), cred.SecretKey.Reveal()) {
		t.Error("the error shows the secret key")
	}

	if inst := os.Getenv("KLOUD_TEST_AWS_INSTANCE"); inst != "" {
		p := New(Options{})
		m, _ := p.Machine(&provider.BaseMachine{Provider: p, Cred: cred, Metadata: &Metadata{ID: inst}})
		st, meta, err := m.Info(ctx)
		if err != nil || st == machinestate.Unknown {
			t.Fatalf("info of %s: %s, %v", inst, st, err)
		}
		t.Logf("%s is %s: %+v", inst, st, meta)
	}
}
