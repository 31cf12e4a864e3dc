package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kloud/kloud/provider/sandbox/sandboxvm"
)

// EnvDataDir is the data dir used when the provider block sets none.
const EnvDataDir = "KLOUD_SANDBOX_DIR"

// sandboxProvider is the provider: its configuration is where machines live.
type sandboxProvider struct {
	version string
}

// New returns the provider constructor providerserver.Serve wants.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &sandboxProvider{version: version} }
}

type providerModel struct {
	DataDir types.String `tfsdk:"data_dir"`
}

// providerData is what Configure hands the resources.
type providerData struct {
	dataDir string
	// agent is the argv prefix new machines run their agent with.
	agent []string
}

func (p *sandboxProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "sandbox"
	resp.Version = p.version
}

func (p *sandboxProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "Sandbox machines: a directory on this host (the disk) plus a detached agent process (the CPU).",
		Attributes: map[string]schema.Attribute{
			"data_dir": schema.StringAttribute{
				Optional:    true,
				Description: "Directory holding the machines (machines/<id>/). Defaults to $" + EnvDataDir + ".",
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
	if cfg.DataDir.IsUnknown() {
		// Known at apply; resources are not touched before then.
		return
	}
	dir := cfg.DataDir.ValueString()
	if dir == "" {
		dir = os.Getenv(EnvDataDir)
	}
	if dir == "" {
		resp.Diagnostics.AddAttributeError(path.Root("data_dir"), "No sandbox data directory",
			"Set data_dir in the provider block or the "+EnvDataDir+" environment variable.")
		return
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("data_dir"), "Invalid sandbox data directory", err.Error())
		return
	}
	agent, err := agentArgv()
	if err != nil {
		resp.Diagnostics.AddError("No sandbox agent", err.Error())
		return
	}
	data := &providerData{dataDir: abs, agent: agent}
	resp.ResourceData = data
	resp.DataSourceData = data
}

// agentArgv is how this plugin's machines run their agent: klient as
// sandboxvm.DefaultAgent finds it, else this very binary's agent
// subcommand. A KLOUD_KLIENT that names no executable is an error, not a
// reason to fall back.
func agentArgv() ([]string, error) {
	argv, err := sandboxvm.DefaultAgent()
	if err == nil {
		return argv, nil
	}
	if os.Getenv(sandboxvm.EnvKlient) != "" || !errors.Is(err, sandboxvm.ErrNoAgent) {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if resolved, err := filepath.EvalSymlinks(self); err == nil {
		self = resolved
	}
	return []string{self, "agent"}, nil
}

func (p *sandboxProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{newMachineResource}
}

func (p *sandboxProvider) DataSources(context.Context) []func() datasource.DataSource {
	return nil
}
