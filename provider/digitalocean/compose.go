package digitalocean

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
)

// Composition of a user's template for the digitalocean Terraform provider.
//
// Kloud adds, beside the user's unchanged file:
//   - the provider block: token = var.kloud_do_token (sensitive, passed only
//     as TF_VAR_kloud_do_token), api_endpoint when the credential sets one;
//   - on every digitalocean_droplet: region = var.kloud_region where the
//     user set none; the bootstrap key first in ssh_keys (concat with the
//     user's list); vpc_uuid = the bootstrap VPC where the user set none and
//     the droplet is in the VPC's region; the agent's start-up script in
//     user_data (a MIME multipart archive with the user's own, which
//     cloud-init runs part by part, Kloud's first); Kloud's tags
//     ("kloud_stack_id:<id>", ...) appended to the user's.
//
// Refused before anything runs, each naming the file and line: a
// DigitalOcean token written in the template (a dop_v1_/doo_v1_/dor_v1_
// string, the credential's own token, or any literal token/spaces key in a
// provider "digitalocean" block); a droplet with no image (the Terraform
// provider requires one, and Terraform checks required arguments before
// override files merge, so Kloud cannot default it: the template writes
// image = var.kloud_image for Kloud's default); user data Kloud cannot merge
// with its own (not a shell script or cloud-config, or over DigitalOcean's
// 64 KiB limit together).
//
// The real digitalocean/digitalocean Terraform provider cannot be
// downloaded where Kloud's tests run, so the composition is tested up to the
// generated files (golden files), not with terraform validate.

// FileDropletOverride holds the per-droplet attributes that depend on what
// the user set (ssh_keys merged with the user's list, vpc_uuid only where it
// fits the region). Terraform merges every *_override.tf.json file; this one
// and Compose's kloud_override.tf.json set different attributes.
const FileDropletOverride = "kloud_digitalocean_override.tf.json"

// MaxUserData is DigitalOcean's limit on a droplet's user data.
const MaxUserData = 64 << 10

// Sentinel errors of composition; each is returned wrapped together with a
// *terraform.TemplateError whose diagnostics name the file, line and column.
var (
	ErrLiteralCredential = errors.New("DigitalOcean credential written in the template")
	ErrNoImage           = errors.New("droplet without an image")
	ErrUserDataConflict  = errors.New("user data cannot be merged with Kloud's")
)

// agentScript is the agent's start-up on a droplet (provider.CloudAgentScript);
// the droplet metadata service gives its id and size.
func agentScript() string {
	return provider.CloudAgentScript(provider.AgentScriptOptions{
		MachineID: "droplet-$(curl -fsS --max-time 5 http://169.254.169.254/metadata/v1/id 2>/dev/null || hostname)",
		Size:      "$(curl -fsS --max-time 5 http://169.254.169.254/metadata/v1/size 2>/dev/null || true)",
	})
}

// compose is ApplyTemplate's work once the credential and bootstrap are
// known.
func (s *Stack) compose(cred *Credential, boot *Bootstrap) (*stack.Template, error) {
	if s.Template == nil {
		return nil, provider.ErrNoTemplate
	}
	t := s.Template
	parsed, _, err := terraform.ValidateTemplate(t.FileName(), []byte(t.Content), t.Format)
	if err != nil {
		return nil, err
	}
	if err := CheckTemplate(parsed, cred.Token.Reveal()); err != nil {
		return nil, err
	}
	if boot.Region != "" && boot.Region != string(cred.Region) {
		return nil, fmt.Errorf("the credential's bootstrap VPC is in %s but its region is %s; destroy and apply the bootstrap again", boot.Region, cred.Region)
	}
	cfg, err := providerConfig(cred)
	if err != nil {
		return nil, err
	}
	vars := []terraform.Variable{
		tokenVariable(cred),
		{Name: RegionVar, Description: "the credential's region, droplets' default", Value: string(cred.Region)},
		{Name: ImageVar, Description: "Kloud's default droplet image", Value: DefaultImage},
		{Name: KeyIDVar, Description: "the ID of the credential's bootstrap SSH key", Value: boot.KeyID},
		{Name: KeyFingerprintVar, Description: "the fingerprint of the credential's bootstrap SSH key", Value: boot.KeyFingerprint},
		{Name: VPCUUIDVar, Description: "the credential's bootstrap VPC", Value: boot.VPCUUID},
		{Name: PublicKeyVar, Description: "the public half of the credential's bootstrap SSH key", Value: boot.PublicKey},
		s.KlientURLVariable(),
	}
	tpl, err := s.Compose(provider.ComposeOptions{
		ProviderConfig: cfg,
		Variables:      vars,
		Defaults:       map[string]terraform.Value{"region": terraform.Var(RegionVar)},
		TagsAttribute:  "tags",
		TagsStyle:      terraform.TagsList,
		UserData:       &terraform.UserData{Attribute: "user_data", Script: agentScript(), CloudInit: true},
	})
	if err != nil {
		return nil, err
	}
	override, err := dropletOverride(parsed)
	if err != nil {
		return nil, err
	}
	if override != nil {
		if tpl.Generated == nil {
			tpl.Generated = map[string][]byte{}
		}
		tpl.Generated[FileDropletOverride] = override
	}
	return tpl, nil
}

// dropletOverride generates FileDropletOverride: on every droplet, the
// bootstrap key first in ssh_keys, and the bootstrap VPC where the user set
// no vpc_uuid and the droplet is in the VPC's region (null, DigitalOcean's
// default VPC of the region, otherwise).
func dropletOverride(parsed *terraform.Parsed) ([]byte, error) {
	droplets := terraform.MachineResources(parsed, Name+"_"+ResourceName)
	if len(droplets) == 0 {
		return nil, nil
	}
	res := map[string]any{}
	var diags terraform.Diagnostics
	for _, r := range droplets {
		attrs := map[string]any{}
		if a, ok := r.Attributes["ssh_keys"]; ok {
			tmpl := "${concat([var." + KeyIDVar + "], tolist(" + embed(a.Source) + "))}"
			if _, d := hclsyntax.ParseTemplate([]byte(tmpl), "ssh_keys", hcl.InitialPos); d.HasErrors() {
				diags = append(diags, diagAt(a.Range, fmt.Sprintf("ssh_keys of %s cannot be combined with Kloud's key: %s", r.Address(), d[0].Summary)))
				continue
			}
			attrs["ssh_keys"] = tmpl
		} else {
			attrs["ssh_keys"] = []any{"${var." + KeyIDVar + "}"}
		}
		if !r.Has("vpc_uuid") {
			if a, ok := r.Attributes["region"]; ok {
				attrs["vpc_uuid"] = "${lower(" + embed(a.Source) + ") == var." + RegionVar + " ? var." + VPCUUIDVar + " : null}"
			} else {
				attrs["vpc_uuid"] = "${var." + VPCUUIDVar + "}"
			}
		}
		res[r.Name] = attrs
	}
	if len(diags) > 0 {
		return nil, &terraform.TemplateError{Diagnostics: diags}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]any{"resource": map[string]any{Name + "_" + ResourceName: res}}); err != nil {
		return nil, fmt.Errorf("encode %s: %w", FileDropletOverride, err)
	}
	return buf.Bytes(), nil
}

// embed returns an expression's source ready to sit inside a larger one:
// a multi-line source (it may end with a heredoc, whose closing marker must
// end its line) gets a newline.
func embed(src string) string {
	if strings.Contains(src, "\n") {
		return src + "\n"
	}
	return src
}

// tokenRefRE finds DigitalOcean tokens: personal access (dop_v1_), OAuth
// (doo_v1_) and refresh (dor_v1_) tokens are the prefix and 64 hex digits.
var tokenRefRE = regexp.MustCompile(`\bdo[opr]_v1_[0-9a-fA-F]{64}\b`)

// providerSecretAttrs are the digitalocean provider block's credentials.
var providerSecretAttrs = []string{"token", "spaces_access_id", "spaces_secret_key"}

// CheckTemplate refuses what Kloud cannot run safely or at all on
// DigitalOcean: a token written in the template (credToken, the
// credential's own, too), a droplet without an image, user data that
// cannot be merged with the agent's. The error wraps ErrLiteralCredential,
// ErrNoImage or ErrUserDataConflict and a *terraform.TemplateError naming the
// lines. Messages never repeat a token.
func CheckTemplate(parsed *terraform.Parsed, credToken string) error {
	if ds := literalCredentials(parsed, credToken); len(ds) > 0 {
		return fmt.Errorf("%w: %w", ErrLiteralCredential, &terraform.TemplateError{Diagnostics: ds})
	}
	droplets := terraform.MachineResources(parsed, Name+"_"+ResourceName)
	var noImage, userData terraform.Diagnostics
	for _, r := range droplets {
		if !r.Has("image") {
			noImage = append(noImage, diagAt(r.Range, fmt.Sprintf(
				"%s sets no image, which the digitalocean Terraform provider requires (Terraform checks required arguments before Kloud's defaults merge): "+
					"write image = var.%s for Kloud's default (%s), or an image slug or ID", r.Address(), ImageVar, DefaultImage)))
		}
		userData = append(userData, checkUserData(r)...)
	}
	if len(noImage) > 0 {
		return fmt.Errorf("%w: %w", ErrNoImage, &terraform.TemplateError{Diagnostics: noImage})
	}
	if len(userData) > 0 {
		return fmt.Errorf("%w: %w", ErrUserDataConflict, &terraform.TemplateError{Diagnostics: userData})
	}
	return nil
}

func literalCredentials(parsed *terraform.Parsed, credToken string) terraform.Diagnostics {
	var ds terraform.Diagnostics
	content := parsed.Content
	seen := map[int]bool{}
	for _, loc := range tokenRefRE.FindAllIndex(content, -1) {
		seen[loc[0]] = true
		ds = append(ds, diagOffset(parsed, loc[0], "a DigitalOcean API token is written in the template; Kloud passes the credential's token to Terraform itself (var."+TokenVar+")"))
	}
	if len(credToken) >= 16 {
		for off := 0; ; {
			i := bytes.Index(content[off:], []byte(credToken))
			if i < 0 {
				break
			}
			if !seen[off+i] {
				ds = append(ds, diagOffset(parsed, off+i, "the credential's DigitalOcean token is written in the template; remove it, Kloud passes it to Terraform itself"))
			}
			off += i + len(credToken)
		}
	}
	if parsed.File != nil && parsed.File.Body != nil {
		schema := &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "provider", LabelNames: []string{"name"}}}}
		body, _, _ := parsed.File.Body.PartialContent(schema)
		attrSchema := &hcl.BodySchema{}
		for _, n := range providerSecretAttrs {
			attrSchema.Attributes = append(attrSchema.Attributes, hcl.AttributeSchema{Name: n})
		}
		for _, b := range blocksOf(body) {
			if len(b.Labels) == 0 || b.Labels[0] != Name {
				continue
			}
			pc, _, _ := b.Body.PartialContent(attrSchema)
			if pc == nil {
				continue
			}
			for _, n := range providerSecretAttrs {
				a, ok := pc.Attributes[n]
				if !ok || len(a.Expr.Variables()) > 0 {
					continue
				}
				ds = append(ds, diagAt(a.Expr.Range(), fmt.Sprintf(
					"provider %q sets %s to a literal; Kloud sets the provider's credentials from the Kloud credential (token = var.%s): remove it", Name, n, TokenVar)))
			}
		}
	}
	slices.SortStableFunc(ds, func(a, b terraform.Diagnostic) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	return ds
}

func blocksOf(c *hcl.BodyContent) hcl.Blocks {
	if c == nil {
		return nil
	}
	return c.Blocks
}

// checkUserData refuses user data written literally that Kloud cannot put
// beside its own start-up: cloud-init gets the two as a multipart archive
// whose user part is typed cloud-config or shell script, so a literal must
// be one of those, and the whole must fit DigitalOcean's limit. User data
// computed by an expression is checked by Terraform when it runs (the
// composed template types the part from its first line).
func checkUserData(r terraform.ResourceBlock) terraform.Diagnostics {
	a, ok := r.Attributes["user_data"]
	if !ok {
		return nil
	}
	lit, ok := literalString(a.Source)
	if !ok {
		return nil
	}
	var ds terraform.Diagnostics
	trimmed := strings.TrimLeft(lit, " \t\r\n")
	first, _, _ := strings.Cut(trimmed, "\n")
	if len(first) > 40 {
		first = first[:40] + "…"
	}
	switch {
	case trimmed == "", strings.HasPrefix(lit, "#!"), strings.HasPrefix(trimmed, "#cloud-config"):
	case strings.HasPrefix(trimmed, "#!"):
		ds = append(ds, diagAt(a.Range, fmt.Sprintf("user_data of %s has blank space before its #! line; cloud-init could not run it as a script", r.Address())))
	default:
		ds = append(ds, diagAt(a.Range, fmt.Sprintf(
			"user_data of %s starts with %q; Kloud runs its agent start-up beside the user's user data as a multipart archive, "+
				"which takes a shell script (#!...) or cloud-config (#cloud-config) only", r.Address(), first)))
	}
	// The archive adds its headers (a few hundred bytes) to the two parts.
	if size := len(lit) + len(agentScript()) + 512; size > MaxUserData {
		ds = append(ds, diagAt(a.Range, fmt.Sprintf(
			"user_data of %s is %d bytes; with Kloud's agent start-up it would be about %d bytes, over DigitalOcean's limit of %d",
			r.Address(), len(lit), size, MaxUserData)))
	}
	return ds
}

// literalString evaluates src when it is a constant string (a quoted
// string or a heredoc without interpolations).
func literalString(src string) (string, bool) {
	expr, diags := hclsyntax.ParseExpression([]byte(src), "user_data", hcl.InitialPos)
	if diags.HasErrors() {
		return "", false
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() || !v.IsWhollyKnown() || v.IsNull() || !v.Type().Equals(cty.String) {
		return "", false
	}
	return v.AsString(), true
}

func diagAt(r hcl.Range, msg string) terraform.Diagnostic {
	return terraform.Diagnostic{File: r.Filename, Line: r.Start.Line, Column: r.Start.Column, Severity: terraform.SeverityError, Message: msg}
}

// diagOffset is a diagnostic at byte offset off of the template.
func diagOffset(parsed *terraform.Parsed, off int, msg string) terraform.Diagnostic {
	before := parsed.Content[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := off - bytes.LastIndexByte(before, '\n')
	return terraform.Diagnostic{File: parsed.Name, Line: line, Column: col, Severity: terraform.SeverityError, Message: msg}
}

// templateDiagnostics is CheckTemplate as the provider's template check at
// creation: without a credential yet, so only token-shaped literals are
// recognised; the apply checks again against the credential's own token.
func templateDiagnostics(parsed *terraform.Parsed) terraform.Diagnostics {
	var te *terraform.TemplateError
	if err := CheckTemplate(parsed, ""); errors.As(err, &te) {
		return te.Diagnostics
	}
	return nil
}
