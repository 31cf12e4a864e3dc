package aws

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kloud/kloud/provider"
)

// Sentinel errors of calls to AWS, for callers to branch on.
var (
	// ErrBadCredentials: AWS refused the keys (unknown access key id,
	// wrong secret key, expired token).
	ErrBadCredentials = provider.Kind("aws rejected the credential's keys", provider.ErrCredentialRefused)
	// ErrUnreachable: no answer from the endpoint (connection refused,
	// DNS failure, timeout).
	ErrUnreachable = provider.Kind("aws endpoint unreachable", provider.ErrUnreachable)
	// ErrThrottled: AWS kept throttling after every retry.
	ErrThrottled = errors.New("aws throttled the request")
	// ErrInstanceNotFound: EC2 does not know the instance.
	ErrInstanceNotFound = errors.New("ec2 instance not found")
	// ErrAPI: any other error AWS answered.
	ErrAPI = errors.New("aws api error")
)

// badKeyCodes are the error codes with which AWS refuses keys, each with
// what it means for the credential's fields.
var badKeyCodes = map[string]string{
	"InvalidClientTokenId":        "the access_key is not a key AWS knows (deleted, or of another partition)",
	"AuthFailure":                 "the access_key is not a key AWS knows, or the secret_key does not match it",
	"InvalidAccessKeyId":          "the access_key is not a key AWS knows",
	"UnrecognizedClientException": "the access_key is not a key AWS knows",
	"SignatureDoesNotMatch":       "the secret_key does not belong to the access_key",
	"IncompleteSignature":         "the request's signature is incomplete",
	"MissingAuthenticationToken":  "the request carried no credentials",
	"ExpiredToken":                "the session_token has expired",
	"ExpiredTokenException":       "the session_token has expired",
	"InvalidToken":                "the session_token is not valid",
}

// callError is a failed call to AWS: one of the sentinels above, the call,
// and what AWS (or the network) said. Unwrap reaches both the sentinel and
// the SDK's error.
type callError struct {
	kind error
	msg  string
	err  error
}

func (e *callError) Error() string   { return e.kind.Error() + ": " + e.msg }
func (e *callError) Unwrap() []error { return []error{e.kind, e.err} }

// classify turns an SDK error of call op ("STS GetCallerIdentity") into a
// callError; a context's own error is returned as it is.
func classify(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		where := op
		var re *awshttp.ResponseError
		if errors.As(err, &re) {
			where = fmt.Sprintf("%s, HTTP %d, request id %s", op, re.HTTPStatusCode(), re.ServiceRequestID())
		}
		msg := fmt.Sprintf("%s: %s (%s)", code, ae.ErrorMessage(), where)
		kind := ErrAPI
		switch {
		case badKeyCodes[code] != "":
			kind, msg = ErrBadCredentials, msg+": "+badKeyCodes[code]
		case isThrottle(code):
			kind = ErrThrottled
		case code == "InvalidInstanceID.NotFound":
			kind = ErrInstanceNotFound
		}
		return &callError{kind: kind, msg: msg, err: err}
	}
	var se *smithyhttp.RequestSendError
	if errors.As(err, &se) {
		return &callError{kind: ErrUnreachable, msg: fmt.Sprintf("%s: %v", op, se.Err), err: err}
	}
	return &callError{kind: ErrAPI, msg: fmt.Sprintf("%s: %v", op, err), err: err}
}

// isThrottle reports whether code is one of the SDK's throttling codes
// (RequestLimitExceeded, Throttling, ThrottlingException, ...).
func isThrottle(code string) bool {
	_, ok := retry.DefaultThrottleErrorCodes[code]
	return ok
}

// transient reports whether a failed call may succeed when tried again
// later: throttling, a 5xx, no connection.
func transient(err error) bool {
	if errors.Is(err, ErrThrottled) || errors.Is(err, ErrUnreachable) {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() >= 500
}

// awsConfig is the SDK configuration of credential c. It is built here,
// not by config.LoadDefaultConfig: Kloud serves many users, and nothing of
// its host's AWS environment (profiles, AWS_* variables, an instance role)
// may stand in for a user's credential.
func (o Options) awsConfig(c *Credential) aws.Config {
	cfg := aws.Config{
		Region: string(c.Region),
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(
			c.AccessKey, c.SecretKey.Reveal(), c.SessionToken.Reveal())),
		HTTPClient: o.HTTPClient,
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = o.MaxAttempts
				so.MaxBackoff = DefaultMaxBackoff
				if o.Backoff != nil {
					so.Backoff = o.Backoff
				}
				// The waits back off on their own; the client-side
				// retry quota would only fail them early.
				so.RateLimiter = ratelimit.None
			})
		},
	}
	if c.Endpoint != "" {
		cfg.BaseEndpoint = aws.String(c.Endpoint)
	}
	return cfg
}

func (o Options) ec2Client(c *Credential) *ec2.Client { return ec2.NewFromConfig(o.awsConfig(c)) }

func (o Options) stsClient(c *Credential) *sts.Client { return sts.NewFromConfig(o.awsConfig(c)) }

// Identity is whom a credential's keys belong to.
type Identity struct {
	Account string `json:"account"`
	ARN     string `json:"arn"`
	UserID  string `json:"user_id"`
}

// CallerIdentity asks STS GetCallerIdentity whom c's keys belong to.
func (o Options) CallerIdentity(ctx context.Context, c *Credential) (*Identity, error) {
	out, err := o.stsClient(c).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return nil, classify(ctx, "STS GetCallerIdentity", err)
	}
	return &Identity{Account: aws.ToString(out.Account), ARN: aws.ToString(out.Arn), UserID: aws.ToString(out.UserId)}, nil
}
