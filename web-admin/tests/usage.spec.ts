import { afterEach, describe, expect, it, vi } from "vitest";
import { flushPromises, mount } from "@vue/test-utils";
import { defineComponent, h } from "vue";
import { NDialogProvider, NMessageProvider } from "naive-ui";
import type { ApiKey, Group, RequestLog, TokenSums, UsageReport } from "../src/api/types";
import { hourlyTokens, keyTokens, presetRange, shareText, sumText, tokenText } from "../src/utils/usage";
import UsageView from "../src/views/UsageView.vue";
import DashboardView from "../src/views/DashboardView.vue";
import LogDetailDrawer from "../src/components/logs/LogDetailDrawer.vue";
import TokenTotals from "../src/components/usage/TokenTotals.vue";
import KeyTable from "../src/components/keys/KeyTable.vue";

const sums = (over: Partial<TokenSums> = {}): TokenSums => ({
  requests: 0,
  known_requests: 0,
  input_tokens: 0,
  output_tokens: 0,
  total_tokens: 0,
  cached_tokens: 0,
  cache_write_tokens: 0,
  reasoning_tokens: 0,
  ...over,
});

describe("unknown usage is a dash, never 0", () => {
  it("shows a single request's counts, and null or absent as —", () => {
    expect(tokenText(1234)).toBe((1234).toLocaleString());
    expect(tokenText(0)).toBe("0");
    expect(tokenText(null)).toBe("—");
    expect(tokenText(undefined)).toBe("—");
  });

  it("shows sums only when some request reported usage", () => {
    expect(sumText(sums({ requests: 3 }), "input_tokens")).toBe("—");
    expect(sumText(sums({ requests: 3, known_requests: 1, input_tokens: 5 }), "input_tokens")).toBe("5");
    expect(sumText(sums({ requests: 3, known_requests: 1 }), "cached_tokens")).toBe("0");
    expect(sumText(null, "total_tokens")).toBe("—");
  });

  it("shows a key's totals, or — for a key without any (or an older server)", () => {
    expect(keyTokens({ input_tokens: 2, output_tokens: 6, total_tokens: 8 })).toEqual({ total: "8", input: "2", output: "6" });
    expect(keyTokens({ input_tokens: 0, output_tokens: 0, total_tokens: 0 })).toEqual({ total: "—", input: "—", output: "—" });
  });

  it("gives shares of the known total", () => {
    const totals = sums({ requests: 4, known_requests: 4, total_tokens: 40 });
    expect(shareText(sums({ requests: 1, known_requests: 1, total_tokens: 10 }), totals)).toBe("25.0%");
    expect(shareText(sums({ requests: 1 }), totals)).toBe("—");
  });
});

describe("hourly token series", () => {
  const report = {
    start_time: "2026-12-05T00:00:00Z",
    end_time: "2026-12-05T04:00:00Z",
    series: [
      { time: "2026-12-05T00:00:00Z", name: "a", ...sums({ requests: 1, known_requests: 1, input_tokens: 1, output_tokens: 3, total_tokens: 4 }) },
      { time: "2026-12-05T00:00:00Z", name: "b", ...sums({ requests: 2, known_requests: 2, input_tokens: 10, output_tokens: 20, total_tokens: 30 }) },
      { time: "2026-12-05T02:00:00Z", name: "a", ...sums({ requests: 5 }) },
    ],
  };

  it("adds every name up per hour, fills quiet hours with 0 and leaves unknown hours empty", () => {
    const h = hourlyTokens(report);
    expect(h.hours).toEqual(["2026-12-05T00:00:00.000Z", "2026-12-05T01:00:00.000Z", "2026-12-05T02:00:00.000Z", "2026-12-05T03:00:00.000Z"]);
    expect(h.input).toEqual([11, 0, null, 0]);
    expect(h.output).toEqual([23, 0, null, 0]);
  });

  it("ends presets with the current hour", () => {
    const now = Date.parse("2026-12-05T10:20:00Z");
    const [start, end] = presetRange("24h", now);
    expect(new Date(end).toISOString()).toBe("2026-12-05T11:00:00.000Z");
    expect(end - start).toBe(24 * 3_600_000);
    expect(presetRange("30d", now)[1] - presetRange("30d", now)[0]).toBe(720 * 3_600_000);
  });
});

function stubApi(routes: Record<string, (url: URL) => unknown>) {
  const calls: URL[] = [];
  vi.stubGlobal("fetch", async (raw: string) => {
    const url = new URL(raw, "http://localhost");
    calls.push(url);
    const handler = routes[url.pathname];
    if (!handler) return new Response(JSON.stringify({ code: 0, message: "Success", data: [] }), { status: 200 });
    return new Response(JSON.stringify({ code: 0, message: "Success", data: handler(url) }), { status: 200 });
  });
  return calls;
}

const withMessages = (component: ReturnType<typeof defineComponent>, props: Record<string, unknown> = {}) =>
  defineComponent({ render: () => h(NMessageProvider, null, { default: () => h(component, props) }) });

afterEach(() => {
  vi.unstubAllGlobals();
  document.body.innerHTML = "";
});

describe("usage page", () => {
  const report = (groupBy: string): UsageReport => ({
    group_by: groupBy as UsageReport["group_by"],
    start_time: "2026-12-04T11:00:00Z",
    end_time: "2026-12-05T11:00:00Z",
    totals: sums({ requests: 3, known_requests: 2, input_tokens: 2, output_tokens: 6, total_tokens: 8, cached_tokens: 1 }),
    items: [
      { name: groupBy === "key" ? "sk-a****0001" : "gpt-4o-mini", group_id: null, key_id: null, ...sums({ requests: 2, known_requests: 2, input_tokens: 2, output_tokens: 6, total_tokens: 8, cached_tokens: 1 }) },
      { name: "mystery-model", group_id: null, key_id: null, ...sums({ requests: 1 }) },
    ],
    series: [],
  });

  it("shows the totals and the breakdown, — for unknown, and regroups on request", async () => {
    const calls = stubApi({ "/api/usage": (url) => report(url.searchParams.get("group_by") ?? "model"), "/api/groups/list": () => [] });
    const wrapper = mount(withMessages(UsageView), { attachTo: document.body, global: { stubs: { TokenChart: true } } });
    await flushPromises();

    const usage = calls.filter((c) => c.pathname === "/api/usage");
    expect(usage).toHaveLength(1);
    expect(usage[0].searchParams.get("group_by")).toBe("model");
    const start = Date.parse(usage[0].searchParams.get("start_time") ?? "");
    const end = Date.parse(usage[0].searchParams.get("end_time") ?? "");
    expect(end - start).toBe(24 * 3_600_000);

    expect(wrapper.find('[data-test="tokens-input"]').text()).toBe("2");
    expect(wrapper.find('[data-test="tokens-output"]').text()).toBe("6");
    expect(wrapper.find('[data-test="tokens-total"]').text()).toBe("8");
    expect(wrapper.find('[data-test="tokens-reasoning"]').text()).toBe("0");
    const names = wrapper.findAll('[data-test="usage-name"]').map((n) => n.text());
    expect(names).toEqual(["gpt-4o-mini", "mystery-model"]);
    const totals = wrapper.findAll('[data-test="usage-total_tokens"]').map((n) => n.text());
    expect(totals).toEqual(["8", "—"]);

    await wrapper.find('[data-group-by="key"] input').setValue(true);
    await flushPromises();
    const last = calls.filter((c) => c.pathname === "/api/usage").at(-1);
    expect(last?.searchParams.get("group_by")).toBe("key");
    expect(wrapper.findAll('[data-test="usage-name"]')[0].text()).toBe("sk-a****0001");
    wrapper.unmount();
  });

  it("shows — everywhere when nothing reported usage", async () => {
    const wrapper = mount(TokenTotals, { props: { sums: sums({ requests: 5 }) } });
    for (const cell of ["input", "output", "cached", "reasoning", "total"]) {
      expect(wrapper.find(`[data-test="tokens-${cell}"]`).text()).toBe("—");
    }
    expect(wrapper.find('[data-test="tokens-requests"]').text()).toContain("0 of 5");
  });
});

describe("dashboard tokens card", () => {
  it("shows the last 24 hours of tokens from the usage route, for the picked group", async () => {
    const calls = stubApi({
      "/api/usage": () => ({ ...report24h, totals: sums({ requests: 4, known_requests: 4, input_tokens: 4, output_tokens: 12, total_tokens: 16 }) }),
      "/api/dashboard/chart": () => ({ labels: [], datasets: [] }),
      "/api/dashboard/stats": () => {
        const card = { value: 1, trend: 0, trend_is_growth: true };
        return { key_count: card, rpm: card, request_count: card, error_rate: card, security_warnings: [] };
      },
      "/api/dashboard/encryption-status": () => ({ has_mismatch: false, scenario_type: "", message: "", suggestion: "" }),
      "/api/groups/list": () => [],
    });
    const wrapper = mount(withMessages(DashboardView), {
      attachTo: document.body,
      global: { stubs: { TokenChart: true, TrendChart: true, RouterLink: true } },
    });
    await flushPromises();
    const usage = calls.find((c) => c.pathname === "/api/usage");
    expect(usage?.searchParams.get("group_by")).toBe("model");
    expect(usage?.searchParams.has("start_time")).toBe(false);
    const card = wrapper.find('[data-test="dashboard-tokens"]');
    expect(card.find('[data-test="tokens-input"]').text()).toBe("4");
    expect(card.find('[data-test="tokens-output"]').text()).toBe("12");
    expect(card.find('[data-test="tokens-total"]').text()).toBe("16");
    wrapper.unmount();
  });
});

const report24h: UsageReport = {
  group_by: "model",
  start_time: "2026-12-04T11:00:00Z",
  end_time: "2026-12-05T11:00:00Z",
  totals: sums(),
  items: [],
  series: [],
};

describe("log detail drawer", () => {
  const log = (over: Partial<RequestLog>): RequestLog => ({
    id: "1",
    timestamp: "2026-12-05T10:00:00Z",
    group_id: 1,
    group_name: "g",
    parent_group_id: 0,
    parent_group_name: "",
    key_value: "sk-abc",
    key_hash: "h",
    model: "gpt-4o-mini",
    is_success: true,
    source_ip: "127.0.0.1",
    status_code: 200,
    request_path: "/proxy/g/v1/chat/completions",
    duration_ms: 5,
    error_message: "",
    user_agent: "",
    request_type: "final",
    upstream_addr: "http://u",
    is_stream: false,
    request_body: "",
    proxy_key: "",
    ...over,
  });

  it("shows every token count and the proxy-key identity", async () => {
    mount(withMessages(LogDetailDrawer, {
      log: log({ input_tokens: 12, output_tokens: 30, total_tokens: 42, cached_tokens: 4, cache_write_tokens: null, reasoning_tokens: 9, proxy_key: "group #1 · 1a2b3c4d" }),
    }), { attachTo: document.body });
    await flushPromises();
    const text = (sel: string) => document.querySelector(`[data-test="${sel}"]`)?.textContent?.trim();
    expect(text("log-tokens-input")).toBe("12");
    expect(text("log-tokens-output")).toBe("30");
    expect(text("log-tokens-cached")).toBe("4");
    expect(text("log-tokens-cache-write")).toBe("—");
    expect(text("log-tokens-reasoning")).toBe("9");
    expect(text("log-tokens-total")).toBe("42");
    expect(text("log-proxy-key")).toBe("group #1 · 1a2b3c4d");
    expect(document.querySelector('[data-test="log-tokens-unknown"]')).toBeNull();
  });

  it("says so when the upstream reported no usage (or the server is GPT-Load)", async () => {
    mount(withMessages(LogDetailDrawer, { log: log({}) }), { attachTo: document.body });
    await flushPromises();
    expect(document.querySelector('[data-test="log-tokens-unknown"]')).not.toBeNull();
    expect(document.querySelector('[data-test="log-tokens-total"]')?.textContent?.trim()).toBe("—");
    expect(document.querySelector('[data-test="log-proxy-key"]')?.textContent?.trim()).toBe("—");
  });
});

describe("key table", () => {
  const key = (over: Partial<ApiKey>): ApiKey => ({
    id: 1,
    key_value: "sk-e2e-alpha-0001",
    key_hash: "h1",
    group_id: 1,
    status: "active",
    state: "active",
    cooldown_until: null,
    last_failure: null,
    notes: "",
    request_count: 2,
    failure_count: 0,
    last_used_at: null,
    created_at: "2026-12-05T10:00:00Z",
    updated_at: "2026-12-05T10:00:00Z",
    model_cooldowns: [],
    demoted: false,
    input_tokens: 0,
    output_tokens: 0,
    total_tokens: 0,
    ...over,
  });

  it("shows per-key token totals, demoted keys and per-model rests", async () => {
    stubApi({
      "/api/keys": () => ({
        items: [
          key({ id: 1, input_tokens: 2, output_tokens: 6, total_tokens: 8 }),
          key({
            id: 2,
            key_value: "sk-e2e-bravo-0002",
            demoted: true,
            last_failure: "key_dead",
            model_cooldowns: [{ model: "gpt-4o", cooldown_until: "2026-12-05T11:00:00Z" }],
          }),
        ],
        pagination: { page: 1, page_size: 20, total_items: 2, total_pages: 1 },
      }),
    });
    const group = { id: 1, name: "g", group_type: "standard" } as unknown as Group;
    const Host = defineComponent({
      render: () => h(NMessageProvider, null, { default: () => h(NDialogProvider, null, { default: () => h(KeyTable, { group, refreshToken: 0 }) }) }),
    });
    const wrapper = mount(Host, { attachTo: document.body });
    await flushPromises();
    expect(wrapper.findAll('[data-test="key-tokens"]').map((n) => n.text())).toEqual(["8", "—"]);
    expect(wrapper.findAll('[data-test="key-demoted"]')).toHaveLength(1);
    expect(wrapper.find('[data-test="key-model-rests"]').text()).toBe("1 model rest(s)");
    wrapper.unmount();
  });

  it("edits a key's notes through the split page logic", async () => {
    const calls: { method: string; url: string; body?: string }[] = [];
    vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
      calls.push({ method: init.method ?? "GET", url, body: init.body as string | undefined });
      const data = url.startsWith("/api/keys?")
        ? { items: [key({ id: 7 })], pagination: { page: 1, page_size: 20, total_items: 1, total_pages: 1 } }
        : undefined;
      return new Response(JSON.stringify({ code: 0, message: "Success", data }), { status: 200 });
    });
    const group = { id: 1, name: "g", group_type: "standard" } as unknown as Group;
    const Host = defineComponent({
      render: () => h(NMessageProvider, null, { default: () => h(NDialogProvider, null, { default: () => h(KeyTable, { group, refreshToken: 0 }) }) }),
    });
    const wrapper = mount(Host, { attachTo: document.body });
    await flushPromises();
    await wrapper.find(".notes").trigger("click");
    await flushPromises();
    const area = document.querySelector<HTMLTextAreaElement>(".n-modal textarea");
    expect(area).not.toBeNull();
    area!.value = "primary key";
    area!.dispatchEvent(new Event("input"));
    await flushPromises();
    const save = [...document.querySelectorAll<HTMLButtonElement>(".n-modal button")].find((b) => b.textContent?.includes("Save"));
    save!.click();
    await flushPromises();
    const put = calls.find((c) => c.method === "PUT");
    expect(put?.url).toBe("/api/keys/7/notes");
    expect(JSON.parse(put?.body ?? "{}")).toEqual({ notes: "primary key" });
    expect(wrapper.find(".notes").text()).toBe("primary key");
    wrapper.unmount();
  });
});
