package main

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kloud/kloud/provider/sandbox/sandboxapi"
)

// Environment variables read when the provider block leaves an argument
// unset. Kloud sets the endpoint in the provider block and the token in
// the environment only: a saved plan file records the provider block's
// values, and a run's token is revoked when its run ends.
const (
	EnvEndpoint = "KLOUD_SANDBOX_ENDPOINT"
	EnvToken    = "KLOUD_SANDBOX_TOKEN"
)

// sandboxProvider is the provider: its configuration is the sandbox
// control API Kloud serves and this run's token.
type sandboxProvider struct {
	version string
}

// New returns the provider constructor providerserver.Serve wants.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &sandboxProvider{version: version} }
}

type providerModel struct {
	Endpoint types.String `tfsdk:"endpoint"`
	Token    types.String `tfsdk:"token"`
}

// providerData is what Configure hands the resources.
type providerData struct {
	api *sandboxapi.Client
}

func (p *sandboxProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "sandbox"
	resp.Version = p.version
}

func (p *sandboxProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "Sandbox machines on Kloud's host, through the sandbox control API Kloud serves.",
		Attributes: map[string]schema.Attribute{
			"endpoint": schema.StringAttribute{
				Optional:    true,
				Description: "Base URL of the sandbox control API. Defaults to $" + EnvEndpoint + ".",
			},
			"token": schema.StringAttribute{
				Optional:    true,
				Sensitive:   true,
				Description: "This run's token, granted by Kloud for one credential's machines. Defaults to $" + EnvToken + ".",
			},
		},
	}
}

func (p *sandboxProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if cfg.Endpoint.IsUnknown() || cfg.Token.IsUnknown() {
		// Known at apply; resources are not touched before then.
		return
	}
	endpoint, token := cfg.Endpoint.ValueString(), cfg.Token.ValueString()
	if endpoint == "" {
		endpoint = os.Getenv(EnvEndpoint)
	}
	if token == "" {
		token = os.Getenv(EnvToken)
	}
	if endpoint == "" {
		resp.Diagnostics.AddAttributeError(path.Root("endpoint"), "No sandbox endpoint",
			"Set endpoint in the provider block or the "+EnvEndpoint+" environment variable.")
		return
	}
	if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		resp.Diagnostics.AddAttributeError(path.Root("endpoint"), "Invalid sandbox endpoint", "want http(s)://host:port, got "+sandboxapi.Quote(endpoint))
		return
	}
	if token == "" {
		resp.Diagnostics.AddAttributeError(path.Root("token"), "No sandbox token",
			"Set token in the provider block or the "+EnvToken+" environment variable.")
		return
	}
	data := &providerData{api: &sandboxapi.Client{Endpoint: endpoint, Token: token, HTTP: newHTTPClient()}}
	resp.ResourceData = data
	resp.DataSourceData = data
}

// newHTTPClient bounds every call; creating a machine waits for its agent.
func newHTTPClient() *http.Client { return &http.Client{Timeout: 3 * time.Minute} }

func (p *sandboxProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{newMachineResource}
}

func (p *sandboxProvider) DataSources(context.Context) []func() datasource.DataSource {
	return nil
}
