// Per-channel defaults the group form pre-fills, as GPT-Load's UI does.

import type { ChannelType } from "../api/types";

export const CHANNEL_TYPES: ChannelType[] = ["openai", "openai-response", "gemini", "anthropic"];

export const DEFAULT_TEST_MODEL: Record<ChannelType, string> = {
  openai: "gpt-4.1-nano",
  "openai-response": "gpt-4.1-nano",
  gemini: "gemini-2.0-flash-lite",
  anthropic: "claude-3-haiku-20240307",
};

export const DEFAULT_UPSTREAM: Record<ChannelType, string> = {
  openai: "https://api.openai.com",
  "openai-response": "https://api.openai.com",
  gemini: "https://generativelanguage.googleapis.com",
  anthropic: "https://api.anthropic.com",
};

export const DEFAULT_VALIDATION_ENDPOINT: Record<ChannelType, string> = {
  openai: "/v1/chat/completions",
  "openai-response": "/v1/responses",
  gemini: "",
  anthropic: "/v1/messages",
};

/** The 14 settings a group may override (§2.3), used when the server lacks config-options. */
export const OVERRIDABLE_SETTINGS = [
  "request_timeout",
  "idle_conn_timeout",
  "connect_timeout",
  "max_idle_conns",
  "max_idle_conns_per_host",
  "response_header_timeout",
  "proxy_url",
  "max_retries",
  "blacklist_threshold",
  "failover_status_codes",
  "key_validation_interval_minutes",
  "key_validation_concurrency",
  "key_validation_timeout_seconds",
  "enable_request_body_logging",
] as const;
