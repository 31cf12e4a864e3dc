package aws

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
)

// Region is an AWS region name; the enum of the credential's region field.
type Region string

// regions are the AWS regions Kloud knows: the commercial partition, then
// GovCloud and China (which the SDK reaches through their own partitions).
var regions = []string{
	"us-east-1", "us-east-2", "us-west-1", "us-west-2",
	"af-south-1",
	"ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
	"ap-south-1", "ap-south-2",
	"ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
	"ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
	"ca-central-1", "ca-west-1",
	"eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2",
	"eu-west-1", "eu-west-2", "eu-west-3",
	"il-central-1", "me-central-1", "me-south-1", "mx-central-1", "sa-east-1",
	"us-gov-east-1", "us-gov-west-1",
	"cn-north-1", "cn-northwest-1",
}

// Values lists the regions (provider.Enumer).
func (Region) Values() []string { return slices.Clone(regions) }

// Valid reports whether r is a known region.
func (r Region) Valid() bool { return slices.Contains(regions, string(r)) }

// Credential is an AWS account's access key. The secret key (and the
// session token of temporary keys) reach Terraform only as sensitive
// TF_VAR_ variables and the SDK only in memory.
type Credential struct {
	AccessKey string       `json:"access_key" kloud:"Access Key ID"`
	SecretKey stack.Secret `json:"secret_key" kloud:"Secret Access Key,secret"`
	// SessionToken is required with temporary (ASIA...) keys only.
	SessionToken stack.Secret `json:"session_token,omitempty" kloud:"Session Token,secret"`
	Region       Region       `json:"region" kloud:"Region"`
	// Endpoint, when set, is the base URL of the EC2 and STS APIs (a
	// private endpoint, LocalStack, or Kloud's simulator); the regional
	// AWS endpoints otherwise.
	Endpoint string `json:"endpoint,omitempty" kloud:"Endpoint URL"`
}

var (
	accessKeyRe = regexp.MustCompile(`^(AKIA|ASIA)[A-Z0-9]{16}$`)
	secretKeyRe = regexp.MustCompile(`^[A-Za-z0-9/+]{40}$`)
)

// Valid checks the shape of every field; no message repeats a secret.
func (c *Credential) Valid() error {
	switch {
	case !accessKeyRe.MatchString(c.AccessKey):
		return &provider.FieldError{Field: "access_key", Message: fmt.Sprintf(
			"must be an access key id: AKIA (or ASIA for temporary keys) and 16 upper-case letters or digits, 20 characters in all (got %d characters)", len(c.AccessKey))}
	case !secretKeyRe.MatchString(c.SecretKey.Reveal()):
		return &provider.FieldError{Field: "secret_key", Message: fmt.Sprintf(
			"must be a secret access key: 40 characters of letters, digits, / and + (got %d characters)", len(c.SecretKey.Reveal()))}
	case strings.HasPrefix(c.AccessKey, "ASIA") && c.SessionToken == "":
		return &provider.FieldError{Field: "session_token", Message: "is required with a temporary (ASIA...) access key"}
	case strings.HasPrefix(c.AccessKey, "AKIA") && c.SessionToken != "":
		return &provider.FieldError{Field: "session_token", Message: "goes only with a temporary (ASIA...) access key, not a long-term AKIA one"}
	case !c.Region.Valid():
		return &provider.FieldError{Field: "region", Message: fmt.Sprintf("%q is not a known AWS region; known: %s", c.Region, strings.Join(regions, ", "))}
	}
	if c.Endpoint != "" {
		if err := validEndpoint(c.Endpoint); err != nil {
			return &provider.FieldError{Field: "endpoint", Message: err.Error()}
		}
	}
	return nil
}

func validEndpoint(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil || strings.ContainsAny(s, " \t\r\n"):
		return fmt.Errorf("%q is not a URL", s)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q must be an http or https URL", s)
	case u.Host == "":
		return fmt.Errorf("%q names no host", s)
	case u.User != nil:
		return fmt.Errorf("must not carry a user or password")
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q must not have a query or fragment", s)
	case strings.Contains(s, "${") || strings.Contains(s, "%{"):
		return fmt.Errorf("%q must not contain template sequences", s)
	}
	return nil
}

// Bootstrap is a credential's persistent network and key, the outputs of
// the bootstrap template (templates/aws/bootstrap.tf.json). Stacks get
// them as var.kloud_<name> and as defaults of every aws_instance.
//
// The key pair's private half is not stored: it is derived from the
// credential (see KeyPair), so it is exactly as protected as the secret
// key it comes from, and the bootstrap can be re-applied or destroyed with
// the same public key at any time.
type Bootstrap struct {
	VPC              string `json:"vpc" kloud:"VPC ID"`
	Subnet           string `json:"subnet" kloud:"Subnet ID"`
	SecurityGroup    string `json:"sg" kloud:"Security group ID"`
	KeyPair          string `json:"key_pair" kloud:"Key pair name"`
	AMI              string `json:"ami" kloud:"Default AMI ID"`
	InternetGateway  string `json:"igw" kloud:"Internet gateway ID"`
	RouteTable       string `json:"route_table" kloud:"Route table ID"`
	AvailabilityZone string `json:"availability_zone" kloud:"Availability zone"`
	CIDRBlock        string `json:"cidr_block" kloud:"VPC CIDR block"`
}

var bootstrapIDs = []struct {
	field, prefix string
	value         func(*Bootstrap) string
}{
	{"vpc", "vpc-", func(b *Bootstrap) string { return b.VPC }},
	{"subnet", "subnet-", func(b *Bootstrap) string { return b.Subnet }},
	{"sg", "sg-", func(b *Bootstrap) string { return b.SecurityGroup }},
	{"ami", "ami-", func(b *Bootstrap) string { return b.AMI }},
	{"igw", "igw-", func(b *Bootstrap) string { return b.InternetGateway }},
	{"route_table", "rtb-", func(b *Bootstrap) string { return b.RouteTable }},
}

var resourceIDRe = regexp.MustCompile(`^[a-z]+-[0-9a-f]{8,17}$`)

// Valid checks that every id has its resource's shape.
func (b *Bootstrap) Valid() error {
	for _, id := range bootstrapIDs {
		v := id.value(b)
		if !strings.HasPrefix(v, id.prefix) || !resourceIDRe.MatchString(v) {
			return &provider.FieldError{Field: id.field, Message: fmt.Sprintf("%q is not a %s... id", v, id.prefix)}
		}
	}
	if b.KeyPair == "" || len(b.KeyPair) > 255 {
		return &provider.FieldError{Field: "key_pair", Message: "must be a key pair name of 1 to 255 characters"}
	}
	return nil
}

// Metadata is what Kloud stores about an EC2 instance. Its JSON names are
// aws_instance's state attributes (id, ami, instance_type,
// availability_zone, public_ip, private_ip, instance_state, and region in
// provider 6.x), so a machine's Terraform state decodes into it; size and
// image repeat instance_type and ami under the names the rating bridge
// prices and groups by, and region is derived from the availability zone
// when the state has none.
type Metadata struct {
	ID               string `json:"id"`
	Region           string `json:"region"`
	AvailabilityZone string `json:"availability_zone"`
	InstanceType     string `json:"instance_type"`
	Size             string `json:"size"`
	AMI              string `json:"ami"`
	Image            string `json:"image"`
	PublicIP         string `json:"public_ip"`
	PrivateIP        string `json:"private_ip"`
	InstanceState    string `json:"instance_state"`
}

// UnmarshalJSON decodes m and fills the derived fields. Attributes of other
// types that a Terraform state holds under the same names never occur:
// every field is a string attribute of aws_instance.
func (m *Metadata) UnmarshalJSON(b []byte) error {
	type plain Metadata
	if err := json.Unmarshal(b, (*plain)(m)); err != nil {
		return err
	}
	m.derive()
	return nil
}

var azRe = regexp.MustCompile(`^([a-z]{2}(-gov)?-[a-z]+-\d+)[a-z]$`)

func (m *Metadata) derive() {
	if m.InstanceType != "" {
		m.Size = m.InstanceType
	}
	if m.AMI != "" {
		m.Image = m.AMI
	}
	if m.Region == "" {
		if sub := azRe.FindStringSubmatch(m.AvailabilityZone); sub != nil {
			m.Region = sub[1]
		}
	}
}
