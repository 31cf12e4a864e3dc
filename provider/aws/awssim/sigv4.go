package awssim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// sigV4 is a parsed "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
// Signature=..." Authorization header.
type sigV4 struct {
	accessKeyID   string
	date          string // yyyymmdd of the credential scope
	region        string
	service       string
	signedHeaders []string
	signature     string
}

func parseAuthorization(h string) (sigV4, error) {
	const algo = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(h, algo) {
		return sigV4{}, errors.New("Authorization header is not AWS4-HMAC-SHA256")
	}
	var sig sigV4
	var scope string
	for _, part := range strings.Split(h[len(algo):], ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return sigV4{}, errors.New("Authorization header component is not key=value")
		}
		switch k {
		case "Credential":
			scope = v
		case "SignedHeaders":
			sig.signedHeaders = strings.Split(v, ";")
		case "Signature":
			sig.signature = v
		}
	}
	parts := strings.Split(scope, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" || sig.signature == "" || len(sig.signedHeaders) == 0 {
		return sigV4{}, errors.New("Authorization header lacks Credential=<key>/<date>/<region>/<service>/aws4_request, SignedHeaders or Signature")
	}
	sig.accessKeyID, sig.date, sig.region, sig.service = parts[0], parts[1], parts[2], parts[3]
	return sig, nil
}

// verifySignature recomputes the request's SigV4 signature with secret
// (the canonical request of AWS's Signature Version 4 documentation) and
// compares it with the one the client sent.
func verifySignature(r *http.Request, body []byte, sig sigV4, secret string) bool {
	amzDate := r.Header.Get("X-Amz-Date")
	if len(amzDate) < 8 || amzDate[:8] != sig.date {
		return false
	}
	payloadHash := r.Header.Get("X-Amz-Content-Sha256")
	if payloadHash == "" {
		sum := sha256.Sum256(body)
		payloadHash = hex.EncodeToString(sum[:])
	}
	var ch strings.Builder
	for _, name := range sig.signedHeaders {
		var values []string
		switch name {
		case "host":
			values = []string{r.Host}
		case "content-length":
			values = []string{strconv.FormatInt(r.ContentLength, 10)}
		default:
			values = r.Header.Values(name)
		}
		for i, v := range values {
			values[i] = strings.Join(strings.Fields(v), " ")
		}
		ch.WriteString(name + ":" + strings.Join(values, ",") + "\n")
	}
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	canonical := strings.Join([]string{
		r.Method,
		path,
		canonicalQuery(r.URL.Query()),
		ch.String(),
		strings.Join(sig.signedHeaders, ";"),
		payloadHash,
	}, "\n")
	crHash := sha256.Sum256([]byte(canonical))
	scope := sig.date + "/" + sig.region + "/" + sig.service + "/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(crHash[:])
	key := hmacSHA256([]byte("AWS4"+secret), sig.date)
	key = hmacSHA256(key, sig.region)
	key = hmacSHA256(key, sig.service)
	key = hmacSHA256(key, "aws4_request")
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	return hmac.Equal([]byte(want), []byte(sig.signature))
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// canonicalQuery sorts the query by key and value, each encoded as SigV4
// wants (RFC 3986 unreserved characters kept, everything else %XX).
func canonicalQuery(q url.Values) string {
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, sigEscape(k)+"="+sigEscape(v))
		}
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "&")
}

func sigEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
