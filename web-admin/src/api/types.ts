// The JSON shapes of GPT-Load's admin API (reference §4), as the server sends them; where the
// server deliberately differs from GPT-Load 1.4.9, docs/compatibility.md says so.

/** `{"code": 0, "message", "data"}` */
export interface Envelope<T> {
  code: number;
  message: string;
  data?: T;
}

export interface Pagination {
  page: number;
  page_size: number;
  total_items: number;
  total_pages: number;
  /** False when total_items is a lower bound (the request-log listing stops counting). */
  total_exact?: boolean;
}

export interface Page<T> {
  items: T[];
  pagination: Pagination;
}

export type ChannelType = "openai" | "openai-response" | "gemini" | "anthropic";
export type GroupType = "standard" | "aggregate";

export interface Upstream {
  url: string;
  weight: number;
}

export interface HeaderRule {
  key: string;
  value: string;
  action: "set" | "remove";
}

/** Per-group overrides of system settings (§2.3); only present keys are stored. */
export type GroupConfig = Record<string, number | boolean | string>;

export interface Group {
  id: number;
  name: string;
  endpoint: string;
  display_name: string;
  description: string;
  group_type: GroupType;
  upstreams: Upstream[];
  channel_type: ChannelType;
  sort: number;
  test_model: string;
  validation_endpoint: string;
  param_overrides: Record<string, unknown>;
  model_redirect_rules: Record<string, string>;
  model_redirect_strict: boolean;
  config: GroupConfig;
  header_rules: HeaderRule[];
  proxy_keys: string;
  last_validated_at: string | null;
  created_at: string;
  updated_at: string;
}

export type GroupInput = Partial<Omit<Group, "id" | "endpoint" | "last_validated_at" | "created_at" | "updated_at">>;

export interface GroupBrief {
  id: number;
  name: string;
  display_name: string;
}

export interface ConfigOption {
  key: string;
  name: string;
  description: string;
  default_value: number | boolean | string;
}

export interface PeriodStats {
  total_requests: number;
  failed_requests: number;
  /** A fraction, 0–1. */
  failure_rate: number;
}

/** Token sums of a set of final requests (`known_requests` of them reported usage). */
export interface TokenSums {
  requests: number;
  known_requests: number;
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  cached_tokens: number;
  cache_write_tokens: number;
  reasoning_tokens: number;
}

export interface GroupStats {
  /** `active_keys` includes `cooling_keys` (live, resting now); `disabled_keys` are off by hand. */
  key_stats: {
    total_keys: number;
    active_keys: number;
    invalid_keys: number;
    disabled_keys: number;
    cooling_keys: number;
  };
  stats_24_hour: PeriodStats;
  stats_7_day: PeriodStats;
  stats_30_day: PeriodStats;
  /** For an aggregate: its members' sums (token sums are kept per serving group). */
  tokens_24_hour?: TokenSums;
  tokens_7_day?: TokenSums;
  tokens_30_day?: TokenSums;
}

export interface SubGroup {
  group: Group;
  weight: number;
  total_keys: number;
  active_keys: number;
  invalid_keys: number;
}

export interface ParentAggregate {
  group_id: number;
  name: string;
  display_name: string;
  weight: number;
}

export type CopyKeysMode = "none" | "valid_only" | "all";

/** Stored status. `disabled` is set and cleared only by an operator. */
export type KeyStatus = "active" | "invalid" | "disabled";

/** Live state from the server's key pool: a stored `active` key may be resting. */
export type KeyState = "active" | "cooling_down" | "invalid" | "disabled";

/** Class of a key's last failure (decided by the server from status and provider error fields). A
 * client that left is never charged to a key, so it has no class here. */
export type FailureClass = "key_dead" | "rate_limited" | "upstream_trouble" | "request_fault";

/** A key's rest for one model after that model's rate limit; the key serves other models. */
export interface ModelCooldown {
  model: string;
  /** RFC 3339 end of the rest. */
  cooldown_until: string;
}

export interface ApiKey {
  id: number;
  key_value: string;
  key_hash: string;
  group_id: number;
  status: KeyStatus;
  state: KeyState;
  /** RFC 3339 end of the current cooldown, or null. */
  cooldown_until: string | null;
  /** Rests for single models (absent from GPT-Load and older servers). */
  model_cooldowns?: ModelCooldown[];
  /** Failed as dead: leased only when no other key is left. */
  demoted?: boolean;
  last_failure: FailureClass | null;
  notes: string;
  request_count: number;
  failure_count: number;
  last_used_at: string | null;
  created_at: string;
  updated_at: string;
  /** Token totals of the key's answered requests (absent from GPT-Load). */
  input_tokens?: number;
  output_tokens?: number;
  total_tokens?: number;
}

export interface KeyQuery {
  group_id: number;
  status?: KeyStatus;
  key_value?: string;
  page: number;
  page_size: number;
}

export interface AddKeysResult {
  added_count: number;
  ignored_count: number;
  total_in_group?: number;
}

export interface DeleteKeysResult {
  deleted_count: number;
  ignored_count: number;
  total_in_group?: number;
}

export interface RestoreKeysResult {
  restored_count: number;
  ignored_count: number;
  total_in_group: number;
}

export interface KeyTestResult {
  key_value: string;
  is_valid: boolean;
  /** Absent when the key is valid, as in GPT-Load. */
  error?: string;
}

export interface KeyTestResponse {
  results: KeyTestResult[];
  total_duration: number;
}

export type TaskType = "" | "KEY_VALIDATION" | "KEY_IMPORT" | "KEY_DELETE";

export interface ValidationResult {
  total_keys: number;
  valid_keys: number;
  invalid_keys: number;
}

export interface TaskStatus {
  task_type: TaskType;
  is_running: boolean;
  group_name?: string;
  processed: number;
  total: number;
  result?: Partial<AddKeysResult & DeleteKeysResult & ValidationResult>;
  error?: string;
  started_at: string;
  finished_at?: string;
  duration_seconds?: number;
}

export interface StatCard {
  value: number;
  sub_value?: number;
  sub_value_tip?: string;
  trend: number;
  trend_is_growth: boolean;
}

export interface SecurityWarning {
  type: string;
  message: string;
  severity: "low" | "medium" | "high";
  suggestion: string;
}

export interface DashboardStats {
  key_count: StatCard;
  rpm: StatCard;
  request_count: StatCard;
  error_rate: StatCard;
  security_warnings: SecurityWarning[];
}

export interface ChartDataset {
  label: string;
  data: number[];
  color: string;
}

export interface ChartData {
  labels: string[];
  datasets: ChartDataset[];
}

export interface EncryptionStatus {
  has_mismatch: boolean;
  scenario_type: "" | "data_not_encrypted" | "key_not_configured" | "key_mismatch";
  message: string;
  suggestion: string;
}

export interface RequestLog {
  id: string;
  timestamp: string;
  group_id: number;
  group_name: string;
  parent_group_id: number;
  parent_group_name: string;
  key_value: string;
  key_hash: string;
  model: string;
  is_success: boolean;
  source_ip: string;
  status_code: number;
  request_path: string;
  duration_ms: number;
  error_message: string;
  user_agent: string;
  request_type: "retry" | "final";
  upstream_addr: string;
  is_stream: boolean;
  request_body: string;
  /** Token counts the upstream reported; null (or absent, from GPT-Load) when unknown. */
  input_tokens?: number | null;
  output_tokens?: number | null;
  total_tokens?: number | null;
  cached_tokens?: number | null;
  cache_write_tokens?: number | null;
  reasoning_tokens?: number | null;
  /** Which proxy key authenticated the request (`global #2 · 1a2b3c4d`), never the key. */
  proxy_key?: string;
}

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

export interface Setting {
  key: string;
  name: string;
  value: SettingValue;
  type: SettingType;
  default_value: string;
  description: string;
  category: string;
  min_value?: number | null;
  required: boolean;
}

export interface SettingCategory {
  category_name: string;
  settings: Setting[];
}

export type UsageGroupBy = "model" | "group" | "proxy_key" | "key";

export interface UsageQuery {
  group_by: UsageGroupBy;
  /** RFC 3339; the server counts whole hours. */
  start_time?: string;
  end_time?: string;
  group_id?: number;
}

export interface UsageItem extends TokenSums {
  /** The model, group name, proxy-key identity or masked upstream key. */
  name: string;
  group_id: number | null;
  key_id: number | null;
}

export interface UsagePoint extends TokenSums {
  /** Start of the hour, RFC 3339. */
  time: string;
  name: string;
}

/** `GET /api/usage`. */
export interface UsageReport {
  group_by: UsageGroupBy;
  start_time: string;
  end_time: string;
  totals: TokenSums;
  items: UsageItem[];
  series: UsagePoint[];
}
