// The JSON shapes of the admin API, taken from the types generated from the server's OpenAPI
// document (`npm run gen:api` → generated/schema.ts), so they cannot drift from what the server
// sends. Where the document is still looser than the server (enums typed as plain strings, free JSON
// as `Record<string, never>`), `Narrow` pins the values the server actually sends. Request shapes the
// UI builds itself (filters, queries) stay here. Deliberate differences from GPT-Load 1.4.9:
// docs/compatibility.md.

import type { components } from "./generated/schema";

type Schemas = components["schemas"];
/** A generated shape with some fields replaced by the narrower types the server's values fit. */
type Narrow<T, N> = Omit<T, keyof N> & N;

/** `POST /api/auth/login`'s answer, the one route without the envelope. */
export type LoginResponse = Schemas["LoginResponse"];

/** `{"code": 0, "message", "data"}` */
export interface Envelope<T> {
  code: number;
  message: string;
  data?: T;
}

/** `total_exact` is false when total_items is a lower bound (the request-log listing stops counting). */
export type Pagination = Narrow<Schemas["Pagination"], { total_exact?: boolean }>;

export interface Page<T> {
  items: T[];
  pagination: Pagination;
}

export type ChannelType = "openai" | "openai-response" | "gemini" | "anthropic";
export type GroupType = "standard" | "aggregate";

export type Upstream = Schemas["UpstreamSpec"];

export type HeaderRule = Narrow<Schemas["HeaderRuleSpec"], { value: string; action: "set" | "remove" }>;

/** Per-group overrides of system settings (§2.3); only present keys are stored. */
export type GroupConfig = Record<string, number | boolean | string>;

export type Group = Narrow<
  Schemas["GroupResponse"],
  {
    group_type: GroupType;
    channel_type: ChannelType;
    param_overrides: Record<string, unknown>;
    model_redirect_rules: Record<string, string>;
    config: GroupConfig;
    header_rules: HeaderRule[];
    last_validated_at: string | null;
  }
>;

export type GroupInput = Partial<Omit<Group, "id" | "endpoint" | "last_validated_at" | "created_at" | "updated_at">>;

export interface GroupBrief {
  id: number;
  name: string;
  display_name: string;
}

export type ConfigOption = Narrow<Schemas["ConfigOption"], { default_value: number | boolean | string }>;

/** `failure_rate` is a fraction, 0–1. */
export type PeriodStats = Schemas["RequestStats"];

/** Token sums of a set of final requests (`known_requests` of them reported usage). */
export type TokenSums = Schemas["TokenSums"];

/**
 * `key_stats.active_keys` includes `cooling_keys` (live, resting now); `disabled_keys` are off by
 * hand. For an aggregate the token sums are its members' (sums are kept per serving group).
 */
export type GroupStats = Schemas["GroupStats"];

export type SubGroup = Narrow<Schemas["SubGroupResponse"], { group: Group }>;

export type ParentAggregate = Schemas["ParentAggregate"];

export type CopyKeysMode = "none" | "valid_only" | "all";

/** Stored status. `disabled` is set and cleared only by an operator. */
export type KeyStatus = "active" | "invalid" | "disabled";

/** Live state from the server's key pool: a stored `active` key may be resting. */
export type KeyState = "active" | "cooling_down" | "invalid" | "disabled";

/** Class of a key's last failure (decided by the server from status and provider error fields). A
 * client that left is never charged to a key, so it has no class here. */
export type FailureClass = "key_dead" | "rate_limited" | "upstream_trouble" | "request_fault";

/** A key's rest for one model after that model's rate limit; the key serves other models. */
export type ModelCooldown = Schemas["ModelCooldown"];

/** `demoted`: failed as dead, leased only when no other key is left; token totals of its answered requests. */
export type ApiKey = Narrow<
  Schemas["KeyResponse"],
  { status: KeyStatus; state: KeyState; cooldown_until: string | null; last_failure: FailureClass | null; last_used_at: string | null }
>;

export interface KeyQuery {
  group_id: number;
  status?: KeyStatus;
  key_value?: string;
  page: number;
  page_size: number;
}

export type AddKeysResult = Schemas["AddKeysResult"];
export type DeleteKeysResult = Schemas["DeleteKeysResult"];
export type RestoreKeysResult = Schemas["RestoreKeysResult"];

/** `error` is absent when the key is valid, as in GPT-Load. */
export type KeyTestResult = Schemas["KeyTestResult"];
export type KeyTestResponse = Schemas["KeyTestResults"];

export type TaskType = "" | "KEY_VALIDATION" | "KEY_IMPORT" | "KEY_DELETE";

export interface ValidationResult {
  total_keys: number;
  valid_keys: number;
  invalid_keys: number;
}

export type TaskStatus = Narrow<
  Schemas["TaskStatus"],
  { task_type: TaskType; result?: Partial<AddKeysResult & DeleteKeysResult & ValidationResult> | null }
>;

export type StatCard = Schemas["StatCard"];

export type SecurityWarning = Narrow<Schemas["SecurityWarning"], { severity: "low" | "medium" | "high" }>;

export type DashboardStats = Narrow<Schemas["DashboardStats"], { security_warnings: SecurityWarning[] }>;

export type ChartDataset = Schemas["ChartDataset"];
export type ChartData = Schemas["ChartData"];

export type EncryptionStatus = Narrow<
  Schemas["EncryptionStatus"],
  { scenario_type: "" | "data_not_encrypted" | "key_not_configured" | "key_mismatch" }
>;

/**
 * Token counts are null when the upstream did not report them; `proxy_key` names the proxy key that
 * authenticated the request (`global #2 · 1a2b3c4d`), never the key.
 */
export type RequestLog = Narrow<Schemas["RequestLog"], { request_type: "retry" | "final" }>;

export interface LogFilters {
  parent_group_name?: string;
  group_name?: string;
  key_value?: string;
  model?: string;
  is_success?: boolean;
  request_type?: "retry" | "final";
  status_code?: number;
  source_ip?: string;
  error_contains?: string;
  start_time?: string;
  end_time?: string;
}

export type SettingType = "int" | "bool" | "string";
export type SettingValue = number | boolean | string;

export type Setting = Narrow<Schemas["SettingItem"], { value: SettingValue; type: SettingType }>;

export type SettingCategory = Narrow<Schemas["SettingCategory"], { settings: Setting[] }>;

export type UsageGroupBy = "model" | "group" | "proxy_key" | "key";

export interface UsageQuery {
  group_by: UsageGroupBy;
  /** RFC 3339; the server counts whole hours. */
  start_time?: string;
  end_time?: string;
  group_id?: number;
}

/** `name`: the model, group name, proxy-key identity or masked upstream key. */
export type UsageItem = Schemas["UsageItem"];

/** `time`: start of the hour, RFC 3339. */
export type UsagePoint = Schemas["UsagePoint"];

/** `GET /api/usage`. */
export type UsageReport = Narrow<Schemas["UsageReport"], { group_by: UsageGroupBy }>;
