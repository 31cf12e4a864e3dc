// The API's JSON shapes (client/types.go, client/rating.go).

export interface Diagnostic {
  file: string;
  line: number;
  column: number;
  severity: string;
  message: string;
}

export interface User {
  id: string;
  name: string;
  role: 'admin' | 'member' | string;
  token?: string;
  created_at: string;
}

export interface Session {
  user: User;
  method: 'cookie' | 'token' | string;
  expires_at?: string;
}

export interface ProviderField {
  name: string;
  label: string;
  type: string; // string, integer, number, boolean, enum, list, object
  secret: boolean;
  required: boolean;
  enum?: string[];
}

export interface Provider {
  name: string;
  resource_type: string;
  credential: ProviderField[];
  bootstrap?: ProviderField[];
}

export interface Credential {
  id: string;
  owner_id: string;
  provider: string;
  title: string;
  verified: boolean;
  verify_message?: string;
  bootstrapped: boolean;
  created_at: string;
}

export interface Template {
  id: string;
  owner_id: string;
  title: string;
  provider: string;
  format: 'hcl' | 'json' | string;
  content: string;
  created_at: string;
  active_version?: number;
}

export interface PlannedMachine {
  label: string;
  type: string;
  action: string;
  size?: string;
  region?: string;
  image?: string;
  always_on: boolean;
}

export interface PlanResult {
  machines: PlannedMachine[];
  cost_estimate: { hourly: string; monthly: string; currency: string };
}

export interface AgentStatus {
  status: 'connected' | 'silent' | 'never' | string;
  last_seen_at?: string;
  version?: string;
}

export interface Machine {
  id: string;
  stack_id: string;
  owner_id: string;
  label: string;
  provider: string;
  state: string;
  reason: string;
  always_on: boolean;
  metadata: Record<string, unknown> | null;
  uptime_seconds: number;
  agent?: AgentStatus;
  last_activity_at?: string;
  shared?: boolean;
  permission?: string;
}

export interface Stack {
  id: string;
  owner_id: string;
  title: string;
  template_id: string;
  credential_id: string;
  provider: string;
  variables: Record<string, string> | null;
  status: string;
  reason?: string;
  machines: Machine[] | null;
  created_at: string;
  updated_at: string;
}

export interface Job {
  id: string;
  kind: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | string;
  percentage: number;
  error: string;
  stack_id?: string;
  machine_id?: string;
  credential_id?: string;
  created_at: string;
  started_at?: string;
  finished_at?: string;
  cancel_reason?: string;
}

export interface JobRef {
  job_id: string;
}

export interface JobEvent {
  seq: number;
  at: string;
  kind: 'phase' | 'output' | 'progress' | 'error' | 'done' | string;
  message: string;
  percentage: number;
}

export interface Summary {
  total: number;
  columns: string[];
  results: (string | null)[][];
}

export interface Report {
  name: string;
  scope: string;
  month: string;
  format: string;
  size: number;
  modified_at: string;
}

export interface RatingModule {
  module_id: string;
  description: string;
  enabled: boolean;
  priority: number;
  hot_config: boolean;
}

export interface HashmapService {
  service_id: string;
  name: string;
}
export interface HashmapField {
  field_id: string;
  service_id: string;
  name: string;
}
export interface HashmapGroup {
  group_id: string;
  name: string;
}
export interface HashmapMapping {
  mapping_id: string;
  service_id?: string;
  field_id?: string;
  group_id?: string;
  value?: string;
  type: string;
  cost: string;
}
export interface HashmapThreshold {
  threshold_id: string;
  service_id?: string;
  field_id?: string;
  group_id?: string;
  level: string;
  type: string;
  cost: string;
}
export interface Quote {
  points: { service: string; qty: string; price: string }[];
  total: string;
}
