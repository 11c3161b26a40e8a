import { describe, expect, it } from "vitest";
import { appendProxyKeys, countDistinctKeys, generateProxyKey, maskKey, parseKeysText } from "../src/utils/keys";

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
