// Key text helpers shared by the key dialogs: the same parsing rule as the server, masking, and
// the proxy-key generator of GPT-Load's UI; plus how the keys table shows a key's live health.

import type { ApiKey, FailureClass, KeyState } from "../api/types";
import type { MessageKey } from "../i18n";

/** The server's rule (§4.6): a non-empty JSON array of strings, else split on whitespace, `,` and `;`. */
export function parseKeysText(text: string): string[] {
  const trimmed = text.trim();
  if (trimmed.startsWith("[")) {
    try {
      const list: unknown = JSON.parse(trimmed);
      if (Array.isArray(list) && list.length > 0 && list.every((k) => typeof k === "string")) {
        return (list as string[]).map((k) => k.trim()).filter(Boolean);
      }
    } catch {
      // Not JSON: fall through to splitting.
    }
  }
  return trimmed.split(/[\s,;]+/).filter(Boolean);
}

/** How many distinct keys a text holds (what the server will at most add). */
export function countDistinctKeys(text: string): number {
  return new Set(parseKeysText(text)).size;
}

/** `sk-abcdefgh1234` → `sk-a…1234`; short keys keep only their first and last character. */
export function maskKey(key: string): string {
  if (!key) return "";
  if (key.length <= 8) return `${key.slice(0, 1)}…${key.slice(-1)}`;
  return `${key.slice(0, 4)}…${key.slice(-4)}`;
}

const PROXY_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/** `sk-` + 48 random characters from `[A-Za-z0-9_-]`, from the browser's CSPRNG. */
export function generateProxyKey(): string {
  const bytes = new Uint8Array(48);
  crypto.getRandomValues(bytes);
  let out = "sk-";
  for (const b of bytes) out += PROXY_KEY_ALPHABET[b % PROXY_KEY_ALPHABET.length];
  return out;
}

/** Appends `count` fresh keys to a comma-separated list. */
export function appendProxyKeys(current: string, count: number): string {
  const existing = current
    .split(",")
    .map((k) => k.trim())
    .filter(Boolean);
  for (let i = 0; i < count; i++) existing.push(generateProxyKey());
  return existing.join(",");
}

/** Reads an uploaded file as text (the `.txt` key import). */
export function isTxtFile(file: File): boolean {
  return file.name.toLowerCase().endsWith(".txt");
}

/** Tag colour and label of a key's live state, for the keys table. */
export function keyStateTag(state: KeyState): { type: "success" | "warning" | "error" | "default"; label: MessageKey } {
  switch (state) {
    case "active":
      return { type: "success", label: "keys.active" };
    case "cooling_down":
      return { type: "warning", label: "keys.coolingDown" };
    case "invalid":
      return { type: "error", label: "keys.invalid" };
    case "disabled":
      return { type: "default", label: "keys.disabled" };
  }
}

/** The status the disable/enable toggle sets: disabled keys can be enabled, any other disabled. */
export function toggledStatus(key: Pick<ApiKey, "status">): "active" | "disabled" {
  return key.status === "disabled" ? "active" : "disabled";
}

/** The label of a failure class. */
export function failureLabel(failure: FailureClass): MessageKey {
  return `failure.${failure}` as const;
}
