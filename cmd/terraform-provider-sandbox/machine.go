package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kloud/kloud/provider/sandbox/sandboxapi"
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
	Tags       types.Map    `tfsdk:"tags"`
}

func (r *machineResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_machine"
}

func (r *machineResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "A sandbox machine on Kloud's host: a directory plus a confined agent process. " +
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
			"tags": schema.MapAttribute{
				ElementType: types.StringType,
				Optional:    true,
				Description: "Labels of the machine (Kloud adds kloud_stack_id, kloud_owner and kloud_template_id); changed in place.",
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
// configured (its endpoint unknown at plan time, say).
func (r *machineResource) configured(diags interface{ AddError(string, string) }) bool {
	if r.data == nil {
		diags.AddError("Provider not configured", "The sandbox provider has no endpoint and token; set them or "+EnvEndpoint+" and "+EnvToken+".")
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
	tags, diags := tagsOf(ctx, plan.Tags)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	m, err := r.data.api.Create(ctx, sandboxapi.CreateRequest{
		Tags:       tags,
		Name:       plan.Name.ValueString(),
		Size:       plan.Size.ValueString(),
		UserData:   plan.UserData.ValueString(),
		AlwaysOn:   plan.AlwaysOn.ValueBool(),
		KloudURL:   plan.KloudURL.ValueString(),
		AgentToken: plan.AgentToken.ValueString(),
	})
	if err != nil {
		// The host destroys a machine that does not boot: no state is
		// saved for it.
		resp.Diagnostics.AddError("Create sandbox machine", err.Error())
		return
	}
	plan.ID = types.StringValue(m.ID)
	observe(m, &plan)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// observe fills the computed process attributes from what runs now.
func observe(m *sandboxapi.Machine, mm *machineModel) {
	state := m.State
	if state != "running" {
		state = "stopped"
	}
	mm.PID = types.Int64Value(int64(m.PID))
	mm.Address = types.StringValue(m.Address)
	mm.State = types.StringValue(state)
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
	m, err := r.data.api.Get(ctx, state.ID.ValueString())
	if errors.Is(err, sandboxapi.ErrNotFound) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("Read sandbox machine", err.Error())
		return
	}
	state.Name = types.StringValue(m.Name)
	state.Size = types.StringValue(m.Size)
	state.AlwaysOn = types.BoolValue(m.AlwaysOn)
	state.KloudURL = keepEmpty(state.KloudURL, m.KloudURL)
	state.UserData = keepEmpty(state.UserData, m.UserData)
	state.AgentToken = keepEmpty(state.AgentToken, m.AgentToken)
	if len(m.Tags) > 0 || !state.Tags.IsNull() {
		tags, diags := types.MapValueFrom(ctx, types.StringType, m.Tags)
		resp.Diagnostics.Append(diags...)
		state.Tags = tags
	}
	observe(m, &state)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// keepEmpty is the value read, except that an empty value keeps whatever
// empty form (null or "") the state already had, so a refresh does not
// invent a diff.
func keepEmpty(prev types.String, got string) types.String {
	if got == "" && (prev.IsNull() || prev.ValueString() == "") {
		return prev
	}
	return types.StringValue(got)
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
	name, size, on := plan.Name.ValueString(), plan.Size.ValueString(), plan.AlwaysOn.ValueBool()
	url, token := plan.KloudURL.ValueString(), plan.AgentToken.ValueString()
	tags, diags := tagsOf(ctx, plan.Tags)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	if tags == nil {
		tags = map[string]string{}
	}
	m, err := r.data.api.Update(ctx, state.ID.ValueString(), sandboxapi.UpdateRequest{Name: &name, Size: &size, AlwaysOn: &on, KloudURL: &url, AgentToken: &token, Tags: &tags})
	if err != nil {
		resp.Diagnostics.AddError("Update sandbox machine", err.Error())
		return
	}
	plan.ID = state.ID
	observe(m, &plan)
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
	if err := r.data.api.Delete(ctx, state.ID.ValueString()); err != nil {
		resp.Diagnostics.AddError("Delete sandbox machine", err.Error())
	}
}

// ImportState takes a machine id; the machine must be one of the granted
// credential's, or the read that follows finds nothing to import.
func (r *machineResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if err := sandboxvm.ValidID(req.ID); err != nil {
		resp.Diagnostics.AddError("Import sandbox machine", err.Error())
		return
	}
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

// tagsOf is a planned tags map as Go (nil when null).
func tagsOf(ctx context.Context, m types.Map) (map[string]string, diag.Diagnostics) {
	if m.IsNull() || m.IsUnknown() {
		return nil, nil
	}
	out := map[string]string{}
	diags := m.ElementsAs(ctx, &out, false)
	return out, diags
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
