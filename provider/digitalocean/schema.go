package digitalocean

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
)

// Schema creates the digitalocean provider's persisted values.
var Schema = &provider.Schema{
	NewCredential: func() any { return &Credential{} },
	NewBootstrap:  func() any { return &Bootstrap{} },
	NewMetadata:   func(*stack.Machine) any { return &Metadata{} },
}

// Region is a DigitalOcean region slug.
type Region string

// regions are the region slugs that take new droplets.
var regions = []string{
	"nyc1", "nyc3", "sfo2", "sfo3", "ams3", "sgp1", "lon1", "fra1", "tor1", "blr1", "syd1", "atl1",
}

// Values lists the region slugs a credential may name.
func (Region) Values() []string { return append([]string(nil), regions...) }

// Credential is a DigitalOcean account: a personal access token, the region
// its machines and bootstrap VPC live in, and optionally another API
// endpoint (a proxy, a private endpoint, or a simulator).
type Credential struct {
	Token    stack.Secret `json:"token" kloud:"API token,secret"`
	Region   Region       `json:"region" kloud:"Region"`
	Endpoint string       `json:"endpoint,omitempty" kloud:"API endpoint"`
}

// DefaultEndpoint is the DigitalOcean API.
const DefaultEndpoint = "https://api.digitalocean.com"

// tokenRE is what a token may look like: a personal access token
// (dop_v1_ + 64 hex digits), an OAuth token (doo_v1_), or an older token
// without a prefix. Only the characters and the length are checked; the
// API decides whether it is valid.
var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_\-.]{16,512}$`)

// Valid checks the token's shape, the region and the endpoint URL.
func (c *Credential) Valid() error {
	tok := c.Token.Reveal()
	switch {
	case tok == "":
		return &provider.FieldError{Field: "token", Message: "is required"}
	case strings.TrimSpace(tok) != tok:
		return &provider.FieldError{Field: "token", Message: "must not start or end with spaces"}
	case !tokenRE.MatchString(tok):
		return &provider.FieldError{Field: "token", Message: "must be a DigitalOcean API token: 16 to 512 letters, digits, '_', '-' or '.' (a personal access token reads dop_v1_ followed by 64 hex digits)"}
	case strings.HasPrefix(tok, "dop_v1_") && len(tok) != len("dop_v1_")+64:
		return &provider.FieldError{Field: "token", Message: fmt.Sprintf("a personal access token is dop_v1_ followed by 64 hex digits; this one has %d characters after the prefix", len(tok)-len("dop_v1_"))}
	}
	if !validRegion(string(c.Region)) {
		return &provider.FieldError{Field: "region", Message: fmt.Sprintf("%q is not one of %s", c.Region, strings.Join(regions, ", "))}
	}
	if c.Endpoint != "" {
		if _, _, err := endpointURLs(c.Endpoint); err != nil {
			return &provider.FieldError{Field: "endpoint", Message: err.Error()}
		}
	}
	return nil
}

func validRegion(r string) bool {
	for _, v := range regions {
		if v == r {
			return true
		}
	}
	return false
}

// endpointURLs checks an endpoint and returns it as godo's base URL (with
// a trailing slash, so that "v2/..." resolves under it) and as the
// Terraform provider's api_endpoint.
func endpointURLs(endpoint string) (api, terraform string, err error) {
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	u, err := url.Parse(endpoint)
	switch {
	case err != nil || strings.ContainsAny(endpoint, " \t\r\n"):
		return "", "", fmt.Errorf("%q is not a URL", endpoint)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", "", fmt.Errorf("%q must be an http or https URL", endpoint)
	case u.Host == "":
		return "", "", fmt.Errorf("%q has no host", endpoint)
	case u.User != nil:
		return "", "", fmt.Errorf("must not hold credentials; the token goes in the token field")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", "", fmt.Errorf("%q must not have a query or fragment", endpoint)
	case strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/v2"):
		return "", "", fmt.Errorf("%q: give the API root without /v2 (e.g. %s)", endpoint, DefaultEndpoint)
	}
	if u.Path == "" || u.Path == "/" {
		root := u.Scheme + "://" + u.Host
		return root + "/", root, nil
	}
	base := strings.TrimSuffix(u.String(), "/") + "/"
	return base, base, nil
}

// PrivateKey is the bootstrap's private key, sealed (see SealPrivateKey).
// It prints masked but is encoded in JSON as is, so that it survives being
// stored with the credential's bootstrap (which the store encrypts); it is
// described as a secret, so every mask of the credential's secrets covers
// it.
type PrivateKey string

// String masks the key.
func (k PrivateKey) String() string {
	if k == "" {
		return ""
	}
	return provider.Mask
}

// GoString masks the key for %#v.
func (k PrivateKey) GoString() string { return k.String() }

// Bootstrap is a credential's persistent resources, the outputs of the
// bootstrap template: the SSH key Kloud generated (its DigitalOcean ID and
// fingerprint, the public half, the private half sealed with the
// credential's token) and the VPC machines are placed in.
type Bootstrap struct {
	KeyID          string     `json:"key_id" kloud:"SSH key ID"`
	KeyFingerprint string     `json:"key_fingerprint" kloud:"SSH key fingerprint"`
	VPCUUID        string     `json:"vpc_uuid" kloud:"VPC UUID"`
	Region         string     `json:"region,omitempty" kloud:"VPC region"`
	PublicKey      string     `json:"public_key" kloud:"SSH public key"`
	PrivateKey     PrivateKey `json:"private_key" kloud:"SSH private key (sealed),secret"`
}

var (
	fingerprintRE = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){15}$`)
	uuidRE        = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// Valid checks the outputs: a numeric key ID, an MD5 fingerprint that is
// the public key's, a VPC UUID, and a sealed private key (SSHKey opens it
// and checks it against the public key; that needs the token).
func (b *Bootstrap) Valid() error {
	if n, err := strconv.ParseInt(b.KeyID, 10, 64); err != nil || n <= 0 {
		return &provider.FieldError{Field: "key_id", Message: fmt.Sprintf("%q is not a DigitalOcean SSH key ID (a positive integer)", b.KeyID)}
	}
	if !fingerprintRE.MatchString(b.KeyFingerprint) {
		return &provider.FieldError{Field: "key_fingerprint", Message: fmt.Sprintf("%q is not an MD5 fingerprint (16 hex pairs joined by ':')", b.KeyFingerprint)}
	}
	if !uuidRE.MatchString(b.VPCUUID) {
		return &provider.FieldError{Field: "vpc_uuid", Message: fmt.Sprintf("%q is not a UUID", b.VPCUUID)}
	}
	if b.Region != "" && !validRegion(b.Region) {
		return &provider.FieldError{Field: "region", Message: fmt.Sprintf("%q is not a DigitalOcean region", b.Region)}
	}
	pub, err := ParseAuthorizedKey(b.PublicKey)
	if err != nil {
		return &provider.FieldError{Field: "public_key", Message: err.Error()}
	}
	if fp := Fingerprint(pub); fp != b.KeyFingerprint {
		return &provider.FieldError{Field: "key_fingerprint", Message: fmt.Sprintf("%s is not the fingerprint of the public key (%s)", b.KeyFingerprint, fp)}
	}
	if _, err := sealedBytes(string(b.PrivateKey)); err != nil {
		return &provider.FieldError{Field: "private_key", Message: err.Error()}
	}
	return nil
}

// SSHKey opens the bootstrap's private key with the credential it belongs
// to and checks it is the private half of PublicKey. It returns the key and
// its text in OpenSSH's format (what `ssh -i` reads).
func (b *Bootstrap) SSHKey(cred *Credential, credentialID string) (ed25519.PrivateKey, string, error) {
	if cred == nil {
		return nil, "", fmt.Errorf("%w: no credential", ErrSealedKey)
	}
	key, text, err := OpenPrivateKey(string(b.PrivateKey), cred.Token.Reveal(), credentialID)
	if err != nil {
		return nil, "", err
	}
	pub, err := ParseAuthorizedKey(b.PublicKey)
	if err != nil {
		return nil, "", err
	}
	if !bytes.Equal(key.Public().(ed25519.PublicKey), pub) {
		return nil, "", fmt.Errorf("%w: it is not the private half of the bootstrap's public key", ErrSealedKey)
	}
	return key, text, nil
}

// Metadata is what Kloud stores about a droplet. Its JSON names are the
// digitalocean_droplet state attributes, so a machine's Terraform state
// decodes into it; Info, Start and Stop refresh it from the API. Size is
// the size slug the rating bridge prices.
type Metadata struct {
	ID          string `json:"id"`
	Name        string `json:"name,omitempty"`
	Region      string `json:"region"`
	Size        string `json:"size"`
	Image       string `json:"image"`
	PublicIPv4  string `json:"ipv4_address"`
	PrivateIPv4 string `json:"ipv4_address_private"`
	Status      string `json:"status,omitempty"`
	VPCUUID     string `json:"vpc_uuid,omitempty"`
}
