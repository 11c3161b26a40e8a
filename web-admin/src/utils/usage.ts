// How token usage is shown: unknown usage (the upstream did not report it, or the server is
// GPT-Load, which has no token fields) is "—", never 0; hourly series become chart lines.

import type { ApiKey, TokenSums, UsagePoint, UsageReport } from "../api/types";

/** What the UI shows for an unknown count. */
export const UNKNOWN = "—";

/** A single request's count: null or absent is unknown. */
export function tokenText(n: number | null | undefined): string {
  return n === null || n === undefined ? UNKNOWN : n.toLocaleString();
}

export type TokenField = "input_tokens" | "output_tokens" | "total_tokens" | "cached_tokens" | "cache_write_tokens" | "reasoning_tokens";

/** A sum over requests: unknown when none of them reported usage. */
export function sumText(sums: TokenSums | null | undefined, field: TokenField): string {
  if (!sums || sums.known_requests <= 0) return UNKNOWN;
  return sums[field].toLocaleString();
}

/**
 * A key's totals. The server keeps no count of the key's requests that reported usage, so a key
 * with no tokens at all (never answered with usage, or a server without token fields) is unknown:
 * no real answered request reports a total of 0.
 */
export function keyTokens(key: Pick<ApiKey, "input_tokens" | "output_tokens" | "total_tokens">): {
  total: string;
  input: string;
  output: string;
} {
  if (!key.total_tokens && !key.input_tokens && !key.output_tokens) return { total: UNKNOWN, input: UNKNOWN, output: UNKNOWN };
  return {
    total: (key.total_tokens ?? 0).toLocaleString(),
    input: (key.input_tokens ?? 0).toLocaleString(),
    output: (key.output_tokens ?? 0).toLocaleString(),
  };
}

/** Share of all tokens, as a percentage with one decimal, or "—" without known totals. */
export function shareText(part: TokenSums, totals: TokenSums): string {
  if (part.known_requests <= 0 || totals.total_tokens <= 0) return UNKNOWN;
  return `${((part.total_tokens / totals.total_tokens) * 100).toFixed(1)}%`;
}

export interface HourlyTokens {
  /** Start of each hour, RFC 3339, oldest first. */
  hours: string[];
  /** Per hour; null where requests were made but none reported usage (a gap, not a 0). */
  input: (number | null)[];
  output: (number | null)[];
}

const HOUR_MS = 3_600_000;

/** Every hour of the report's range with the input and output tokens of all names added up. */
export function hourlyTokens(report: Pick<UsageReport, "start_time" | "end_time" | "series">): HourlyTokens {
  const start = Math.floor(new Date(report.start_time).getTime() / HOUR_MS) * HOUR_MS;
  const end = new Date(report.end_time).getTime();
  const byHour = new Map<number, Pick<UsagePoint, "requests" | "known_requests" | "input_tokens" | "output_tokens">>();
  for (const p of report.series) {
    const at = Math.floor(new Date(p.time).getTime() / HOUR_MS) * HOUR_MS;
    const sum = byHour.get(at) ?? { requests: 0, known_requests: 0, input_tokens: 0, output_tokens: 0 };
    sum.requests += p.requests;
    sum.known_requests += p.known_requests;
    sum.input_tokens += p.input_tokens;
    sum.output_tokens += p.output_tokens;
    byHour.set(at, sum);
  }
  const result: HourlyTokens = { hours: [], input: [], output: [] };
  if (Number.isNaN(start) || Number.isNaN(end)) return result;
  for (let at = start; at < end; at += HOUR_MS) {
    const sum = byHour.get(at);
    const unknown = !!sum && sum.requests > 0 && sum.known_requests === 0;
    result.hours.push(new Date(at).toISOString());
    result.input.push(unknown ? null : (sum?.input_tokens ?? 0));
    result.output.push(unknown ? null : (sum?.output_tokens ?? 0));
  }
  return result;
}

export type RangePreset = "24h" | "7d" | "30d";
const PRESET_HOURS: Record<RangePreset, number> = { "24h": 24, "7d": 24 * 7, "30d": 24 * 30 };

/** A preset as `[start, end)` in epoch ms: whole hours ending with the current one. */
export function presetRange(preset: RangePreset, now: number = Date.now()): [number, number] {
  const end = Math.floor(now / HOUR_MS) * HOUR_MS + HOUR_MS;
  return [end - PRESET_HOURS[preset] * HOUR_MS, end];
}
