// Client-side checks that mirror the server's rules, so a form says what is wrong before saving.
// The server stays the judge: its message is shown when it disagrees.

import type { Setting, SettingValue } from "../api/types";

/** `failover_status_codes` grammar (§2.2): codes or ranges of 100–999, comma or newline separated. */
export function validStatusCodeSpec(spec: string): boolean {
  for (const raw of spec.split(/[,\n]/)) {
    const token = raw.replace(/\s+/g, "");
    if (!token) continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(token);
    if (!m) return false;
    const start = Number(m[1]);
    const end = m[2] === undefined ? start : Number(m[2]);
    if (start < 100 || end > 999 || start > end) return false;
  }
  return true;
}

export type SettingProblem =
  | { kind: "required" }
  | { kind: "integer" }
  | { kind: "min"; min: number }
  | { kind: "boolean" }
  | { kind: "statusCodes" };

/** What is wrong with one value for a setting, or null when it is acceptable. */
export function settingProblem(setting: Pick<Setting, "key" | "type" | "min_value" | "required">, value: SettingValue | null | undefined): SettingProblem | null {
  switch (setting.type) {
    case "int": {
      if (value === null || value === undefined || value === "") return { kind: "required" };
      if (typeof value !== "number" || !Number.isInteger(value)) return { kind: "integer" };
      if (setting.min_value !== undefined && setting.min_value !== null && value < setting.min_value) {
        return { kind: "min", min: setting.min_value };
      }
      return null;
    }
    case "bool":
      return typeof value === "boolean" ? null : { kind: "boolean" };
    case "string": {
      const text = typeof value === "string" ? value : "";
      if (setting.required && !text.trim()) return { kind: "required" };
      if (setting.key === "failover_status_codes" && !validStatusCodeSpec(text)) return { kind: "statusCodes" };
      return null;
    }
  }
}

/** Every problem of a settings form, by key. */
export function settingsProblems(settings: Setting[], values: Record<string, SettingValue>): Record<string, SettingProblem> {
  const out: Record<string, SettingProblem> = {};
  for (const s of settings) {
    const p = settingProblem(s, values[s.key]);
    if (p) out[s.key] = p;
  }
  return out;
}

/** Group names as the server accepts them. */
export const GROUP_NAME_PATTERN = /^[a-z0-9_-]{1,100}$/;

/** `header` → `Header`, `x-api-key` → `X-Api-Key`, like Go's CanonicalHeaderKey. */
export function canonicalHeader(name: string): string {
  return name
    .trim()
    .toLowerCase()
    .split("-")
    .map((p) => (p ? p[0].toUpperCase() + p.slice(1) : p))
    .join("-");
}

/** Parses a JSON object textarea; `""` is `{}`. Returns an error string when not an object. */
export function parseJsonObject(text: string): { value: Record<string, unknown> } | { error: string } {
  if (!text.trim()) return { value: {} };
  try {
    const v: unknown = JSON.parse(text);
    if (v && typeof v === "object" && !Array.isArray(v)) return { value: v as Record<string, unknown> };
    return { error: "not-object" };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
}
