package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kloud/kloud/provider/sandbox/sandboxvm"
)

// machineResource is sandbox_machine.
type machineResource struct {
	data *providerData
}

var (
	_ resource.ResourceWithConfigure   = (*machineResource)(nil)
	_ resource.ResourceWithImportState = (*machineResource)(nil)
)

func newMachineResource() resource.Resource { return &machineResource{} }

type machineModel struct {
	ID         types.String `tfsdk:"id"`
	Name       types.String `tfsdk:"name"`
	Size       types.String `tfsdk:"size"`
	UserData   types.String `tfsdk:"user_data"`
	AlwaysOn   types.Bool   `tfsdk:"always_on"`
	KloudURL   types.String `tfsdk:"kloud_url"`
	AgentToken types.String `tfsdk:"agent_token"`
	PID        types.Int64  `tfsdk:"pid"`
	Address    types.String `tfsdk:"address"`
	State      types.String `tfsdk:"state"`
}

func (r *machineResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_machine"
}

func (r *machineResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "A sandbox machine: a directory under the provider's data_dir plus a detached agent process. " +
			"Changing size, kloud_url or agent_token reboots the agent in place; changing user_data replaces the machine.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:      true,
				Description:   "Machine id (sbx-<hex>), also its directory name.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				Required:    true,
				Description: "Display name.",
				Validators:  []validator.String{oneLine{}},
			},
			"size": schema.StringAttribute{
				Optional:    true,
				Computed:    true,
				Default:     stringdefault.StaticString(sandboxvm.DefaultSize),
				Description: "One of " + strings.Join(sandboxvm.Sizes(), ", ") + ". Changing it reboots the machine.",
				Validators:  []validator.String{oneOf(sandboxvm.Sizes())},
			},
			"user_data": schema.StringAttribute{
				Optional:      true,
				Description:   "Shell script the agent runs once, at first boot, in the machine directory. Changing it replaces the machine.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"always_on": schema.BoolAttribute{
				Optional:    true,
				Computed:    true,
				Default:     booldefault.StaticBool(false),
				Description: "Exempt the machine from Kloud's idle stop.",
			},
			"kloud_url": schema.StringAttribute{
				Optional:    true,
				Description: "Kloud base URL the agent registers and heartbeats with.",
			},
			"agent_token": schema.StringAttribute{
				Optional:    true,
				Sensitive:   true,
				Description: "The agent's token for Kloud; kept on the machine's disk with mode 0600 and passed to the agent in its environment.",
			},
			"pid": schema.Int64Attribute{
				Computed:    true,
				Description: "Process id of the machine's agent; 0 when stopped.",
			},
			"address": schema.StringAttribute{
				Computed:    true,
				Description: "host:port the agent serves /healthz and /v1/info on; empty when stopped.",
			},
			"state": schema.StringAttribute{
				Computed:    true,
				Description: "running or stopped, as observed: a dead or unresponsive agent reads stopped.",
			},
		},
	}
}

func (r *machineResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if req.ProviderData == nil {
		return
	}
	data, ok := req.ProviderData.(*providerData)
	if !ok {
		resp.Diagnostics.AddError("Unexpected provider data", fmt.Sprintf("got %T", req.ProviderData))
		return
	}
	r.data = data
}

// configured reports a diagnostic when the provider could not be
// configured (data_dir unknown at plan time, say).
func (r *machineResource) configured(diags interface{ AddError(string, string) }) bool {
	if r.data == nil {
		diags.AddError("Provider not configured", "The sandbox provider has no data_dir; set data_dir or "+EnvDataDir+".")
		return false
	}
	return true
}

func (r *machineResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if !r.configured(&resp.Diagnostics) {
		return
	}
	var plan machineModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	vm, err := sandboxvm.Create(ctx, r.data.dataDir, sandboxvm.Spec{
		Name:     plan.Name.ValueString(),
		Size:     plan.Size.ValueString(),
		UserData: plan.UserData.ValueString(),
		AlwaysOn: plan.AlwaysOn.ValueBool(),
		KloudURL: plan.KloudURL.ValueString(),
		Token:    plan.AgentToken.ValueString(),
		Agent:    r.data.agent,
	})
	if err != nil {
		resp.Diagnostics.AddError("Create sandbox machine", err.Error())
		return
	}
	if err := vm.Start(ctx); err != nil {
		// Leave nothing half-made: no state is saved for this machine.
		if derr := vm.Destroy(context.WithoutCancel(ctx)); derr != nil {
			err = errors.Join(err, derr)
		}
		resp.Diagnostics.AddError("Start sandbox machine", err.Error())
		return
	}
	plan.ID = types.StringValue(vm.ID())
	r.observe(ctx, vm, &plan)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// observe fills the computed process attributes from what runs now.
func (r *machineResource) observe(ctx context.Context, vm *sandboxvm.VM, m *machineModel) {
	st, err := vm.Status(ctx)
	if err != nil || st.State != sandboxvm.Running {
		st = sandboxvm.Status{State: sandboxvm.Stopped}
	}
	m.PID = types.Int64Value(int64(st.PID))
	m.Address = types.StringValue(st.Address)
	m.State = types.StringValue(string(st.State))
}

func (r *machineResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if !r.configured(&resp.Diagnostics) {
		return
	}
	var state machineModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	vm, err := sandboxvm.Load(r.data.dataDir, state.ID.ValueString())
	if errors.Is(err, sandboxvm.ErrNotFound) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("Read sandbox machine", err.Error())
		return
	}
	meta := vm.Meta()
	state.Name = types.StringValue(meta.Name)
	state.Size = types.StringValue(meta.Size)
	state.AlwaysOn = types.BoolValue(meta.AlwaysOn)
	state.KloudURL = keepEmpty(state.KloudURL, meta.KloudURL)
	userData, err := readOptional(filepath.Join(vm.Dir(), sandboxvm.UserDataFile))
	if err != nil {
		resp.Diagnostics.AddError("Read sandbox machine user data", err.Error())
		return
	}
	state.UserData = keepEmpty(state.UserData, userData)
	token, err := readOptional(filepath.Join(vm.Dir(), sandboxvm.TokenFile))
	if err != nil {
		resp.Diagnostics.AddError("Read sandbox machine token", err.Error())
		return
	}
	state.AgentToken = keepEmpty(state.AgentToken, strings.TrimSpace(token))
	r.observe(ctx, vm, &state)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// keepEmpty is the value read from disk, except that an empty value keeps
// whatever empty form (null or "") the state already had, so a refresh
// does not invent a diff.
func keepEmpty(prev types.String, got string) types.String {
	if got == "" && (prev.IsNull() || prev.ValueString() == "") {
		return prev
	}
	return types.StringValue(got)
}

func readOptional(p string) (string, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return string(b), err
}

func (r *machineResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	if !r.configured(&resp.Diagnostics) {
		return
	}
	var plan, state machineModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	vm, err := sandboxvm.Load(r.data.dataDir, state.ID.ValueString())
	if err != nil {
		resp.Diagnostics.AddError("Update sandbox machine", err.Error())
		return
	}
	name, size, on := plan.Name.ValueString(), plan.Size.ValueString(), plan.AlwaysOn.ValueBool()
	url, token := plan.KloudURL.ValueString(), plan.AgentToken.ValueString()
	if _, err := vm.Update(ctx, sandboxvm.Update{Name: &name, Size: &size, AlwaysOn: &on, KloudURL: &url, Token: &token}); err != nil {
		resp.Diagnostics.AddError("Update sandbox machine", err.Error())
		return
	}
	plan.ID = state.ID
	r.observe(ctx, vm, &plan)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *machineResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if !r.configured(&resp.Diagnostics) {
		return
	}
	var state machineModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	vm, err := sandboxvm.Load(r.data.dataDir, state.ID.ValueString())
	if errors.Is(err, sandboxvm.ErrNotFound) {
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("Delete sandbox machine", err.Error())
		return
	}
	if err := vm.Destroy(ctx); err != nil {
		resp.Diagnostics.AddError("Delete sandbox machine", err.Error())
	}
}

func (r *machineResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if err := sandboxvm.ValidID(req.ID); err != nil {
		resp.Diagnostics.AddError("Import sandbox machine", err.Error())
		return
	}
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

// oneOf is a validator accepting only the given strings.
type oneOf []string

func (v oneOf) Description(context.Context) string {
	return "value must be one of: " + strings.Join(v, ", ")
}

func (v oneOf) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v oneOf) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if got := req.ConfigValue.ValueString(); !slices.Contains(v, got) {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid value",
			fmt.Sprintf("%s is %q; want one of %s", req.Path, got, strings.Join(v, ", ")))
	}
}

// oneLine is a validator for a non-empty single-line name.
type oneLine struct{}

func (oneLine) Description(context.Context) string { return "a non-empty single line" }

func (v oneLine) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (oneLine) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if s := req.ConfigValue.ValueString(); s == "" || strings.ContainsAny(s, "\x00\n") || len(s) > 255 {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid value",
			fmt.Sprintf("%s must be a non-empty single line of at most 255 characters", req.Path))
	}
}
