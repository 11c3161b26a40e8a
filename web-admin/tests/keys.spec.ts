import { describe, expect, it } from "vitest";
import en from "../src/i18n/en";
import ja from "../src/i18n/ja-JP";
import zh from "../src/i18n/zh-CN";
import {
  appendProxyKeys,
  countDistinctKeys,
  failureLabel,
  generateProxyKey,
  keyStateTag,
  maskKey,
  parseKeysText,
  toggledStatus,
} from "../src/utils/keys";

describe("key text parsing (same rule as the server)", () => {
  it("splits on any run of whitespace, commas and semicolons", () => {
    expect(parseKeysText(" sk-a\nsk-b,sk-c;;sk-d \t sk-e\r\n")).toEqual(["sk-a", "sk-b", "sk-c", "sk-d", "sk-e"]);
  });

  it("takes a JSON array of strings as is, trimmed", () => {
    expect(parseKeysText('["sk-a", " sk-b ", ""]')).toEqual(["sk-a", "sk-b"]);
  });

  it("falls back to splitting when the JSON is not an array of strings", () => {
    expect(parseKeysText("[1, 2]")).toEqual(["[1", "2]"]);
    expect(parseKeysText("")).toEqual([]);
  });

  it("counts distinct keys", () => {
    expect(countDistinctKeys("a b a\nc")).toBe(3);
  });
});

describe("masking and generation", () => {
  it("masks long keys to their ends and short ones to their first and last character", () => {
    expect(maskKey("sk-abcdefghijklmnop1234")).toBe("sk-a…1234");
    expect(maskKey("short")).toBe("s…t");
    expect(maskKey("")).toBe("");
  });

  it("generates sk- keys of 48 URL-safe characters and appends them", () => {
    const key = generateProxyKey();
    expect(key).toMatch(/^sk-[A-Za-z0-9_-]{48}$/);
    expect(generateProxyKey()).not.toBe(key);
    const list = appendProxyKeys(" existing , ", 2).split(",");
    expect(list).toHaveLength(3);
    expect(list[0]).toBe("existing");
  });
});

describe("live key health in the keys table", () => {
  it("gives every live state its own tag and label", () => {
    expect(keyStateTag("active")).toEqual({ type: "success", label: "keys.active" });
    expect(keyStateTag("cooling_down")).toEqual({ type: "warning", label: "keys.coolingDown" });
    expect(keyStateTag("invalid")).toEqual({ type: "error", label: "keys.invalid" });
    expect(keyStateTag("disabled")).toEqual({ type: "default", label: "keys.disabled" });
  });

  it("toggles disabled keys on and every other key off", () => {
    expect(toggledStatus({ status: "disabled" })).toBe("active");
    expect(toggledStatus({ status: "active" })).toBe("disabled");
    expect(toggledStatus({ status: "invalid" })).toBe("disabled");
  });

  it("labels failure classes in every language", () => {
    for (const dict of [en, zh, ja]) {
      for (const failure of ["key_dead", "rate_limited", "upstream_trouble", "request_fault"] as const) {
        expect(dict[failureLabel(failure)]).toBeTruthy();
      }
    }
  });
});
