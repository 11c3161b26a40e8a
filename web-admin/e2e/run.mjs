// End-to-end check of the admin UI in headless Chromium against the real gpt-load binary (with
// the UI served from web-admin/dist) and the mock upstream. Prints `N passed, N failed` and exits
// non-zero on any failure. Screenshots of every page go to $E2E_SCREENSHOTS (default /tmp/gpt-load-e2e);
// with $E2E_DOCS_DIR set (e.g. docs/screenshots), the token-usage views are also saved there as
// the small PNGs the docs show.
//
// Needs: `npm run build`, `cargo build --bins` (gpt-load + gpt-load-mock-upstream), /usr/bin/chromium.

import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const ROOT = resolve(import.meta.dirname, "..", "..");
const TARGET = process.env.CARGO_TARGET_DIR ?? join(ROOT, "target");
const SERVER_BIN = join(TARGET, "debug", "gpt-load");
const MOCK_BIN = join(TARGET, "debug", "gpt-load-mock-upstream");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SHOTS = process.env.E2E_SCREENSHOTS ?? "/tmp/gpt-load-e2e";
const AUTH_KEY = "e2e-Admin-Key-7f3c9a2b-long";
const PROXY_KEY = "sk-e2e-Proxy-Key-5d1c0b7e-long";
const DOCS_DIR = process.env.E2E_DOCS_DIR ? resolve(process.env.E2E_DOCS_DIR) : null;
const STEP_TIMEOUT = 15_000;

const children = [];
let passed = 0;
let failed = 0;

function log(line) {
  process.stdout.write(`${line}\n`);
}

async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
    passed++;
    log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (err) {
    failed++;
    log(`FAIL ${name}: ${err instanceof Error ? err.message.split("\n")[0] : err}`);
  }
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

/** Starts a process and resolves when a line of its stdout/stderr matches `ready`. */
function start(bin, args, env, ready, deadlineMs) {
  return new Promise((resolveStart, reject) => {
    const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let output = "";
    const timer = setTimeout(() => reject(new Error(`${bin} not ready within ${deadlineMs} ms:\n${output}`)), deadlineMs);
    const onData = (chunk) => {
      output += chunk.toString();
      const m = ready.exec(output);
      if (m) {
        clearTimeout(timer);
        resolveStart({ child, match: m });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${bin} exited with ${code} before it was ready:\n${output}`));
    });
  });
}

async function waitForHealth(base, deadlineMs) {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${base}/health`);
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${base}/health did not answer within ${deadlineMs} ms`);
}

/** Waits until `check` returns a truthy value (re-run every 100 ms) or fails with its last error. */
async function until(what, check, deadlineMs = STEP_TIMEOUT) {
  const deadline = Date.now() + deadlineMs;
  let last = null;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not within ${deadlineMs} ms${last ? `: ${last.message}` : ""}`);
}

/**
 * The usage a provider reported in a relayed body (JSON or SSE), as the server normalises it:
 * `{input, output, total}`, or null when the body carries none. Anthropic sends no total.
 */
function reportedUsage(channel, text) {
  const events = text.trimStart().startsWith("{")
    ? [JSON.parse(text)]
    : text
        .split("\n")
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trim())
        .filter((d) => d && d !== "[DONE]")
        .map((d) => JSON.parse(d));
  let usage = null;
  for (const e of events) {
    if (channel === "openai" && e.usage) usage = { input: e.usage.prompt_tokens, output: e.usage.completion_tokens, total: e.usage.total_tokens };
    if (channel === "gemini" && e.usageMetadata) {
      const u = e.usageMetadata;
      usage = { input: u.promptTokenCount, output: u.candidatesTokenCount, total: u.totalTokenCount };
    }
    if (channel === "anthropic") {
      const u = e.type === "message_start" ? e.message?.usage : e.usage;
      if (u) {
        const input = u.input_tokens ?? usage?.input;
        const output = u.output_tokens ?? usage?.output;
        usage = { input, output, total: input + output };
      }
    }
  }
  return usage;
}

/** The numbers of a list of cells; "—" (unknown) counts as null. */
function numbers(texts) {
  return texts.map((t) => (t.trim() === "—" ? null : Number(t.replace(/[^0-9]/g, ""))));
}

function stopAll() {
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
}

async function main() {
  for (const [what, path] of [
    ["gpt-load binary", SERVER_BIN],
    ["mock upstream binary", MOCK_BIN],
    ["chromium", CHROMIUM],
    ["built UI", join(ROOT, "web-admin", "dist", "index.html")],
  ]) {
    if (!existsSync(path)) throw new Error(`missing ${what}: ${path}`);
  }
  mkdirSync(SHOTS, { recursive: true });
  const dataDir = mkdtempSync(join(tmpdir(), "gpt-load-e2e-"));

  const { match } = await start(MOCK_BIN, ["--port", "0", "--any-key"], {}, /LISTENING (http:\/\/\S+)/, 20_000);
  const mockUrl = match[1];
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = spawn(SERVER_BIN, [], {
    env: {
      ...process.env,
      AUTH_KEY,
      HOST: "127.0.0.1",
      PORT: String(port),
      DATABASE_DSN: join(dataDir, "gpt-load.db"),
      LOG_LEVEL: "error",
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  children.push(server);
  await waitForHealth(base, 30_000);
  log(`server ${base}, mock ${mockUrl}, screenshots in ${SHOTS}`);

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: "en-US" });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  const pageErrors = [];
  page.on("pageerror", (err) => pageErrors.push(err.message));
  const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  /** A screenshot of one element, also copied to $E2E_DOCS_DIR when set. */
  const docShot = async (locator, name) => {
    // Loading spinners fade out after the data arrived; wait for them to be gone.
    await locator.locator(".n-base-loading__transition-wrapper").first().waitFor({ state: "detached" });
    const path = join(SHOTS, `${name}.png`);
    await locator.screenshot({ path });
    if (DOCS_DIR) {
      mkdirSync(DOCS_DIR, { recursive: true });
      copyFileSync(path, join(DOCS_DIR, `${name}.png`));
    }
  };
  const api = async (method, path, body) => {
    const res = await fetch(`${base}/api${path}`, {
      method,
      headers: { Authorization: `Bearer ${AUTH_KEY}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok || json.code !== 0) throw new Error(`${method} /api${path} answered ${res.status}: ${JSON.stringify(json)}`);
    return json.data;
  };
  const apiResponse = (method, path) =>
    page.waitForResponse((r) => r.request().method() === method && new URL(r.url()).pathname === path, { timeout: STEP_TIMEOUT });

  try {
    await step("a logged-out visit to /keys lands on /login", async () => {
      await page.goto(`${base}/keys`);
      await page.waitForURL(/\/login/);
      await page.locator('[data-test="auth-key"] input').waitFor();
      await shot("01-login");
    });

    await step("a wrong auth key shows the server's error", async () => {
      await page.locator('[data-test="auth-key"] input').fill("not-the-key");
      await page.locator('[data-test="login-submit"]').click();
      const error = page.locator('[data-test="login-error"]');
      await error.waitFor();
      const text = await error.innerText();
      if (!/authentication failed/i.test(text)) throw new Error(`unexpected error text: ${text}`);
      if (!page.url().includes("/login")) throw new Error("left the login page");
    });

    await step("the right auth key lands on the dashboard (or the page it was sent from)", async () => {
      await page.locator('[data-test="auth-key"] input').fill(AUTH_KEY);
      await page.locator('[data-test="login-submit"]').click();
      await page.locator('[data-test="keys-page"]').waitFor();
      await page.goto(`${base}/`);
      await page.locator('[data-test="dashboard"]').waitFor();
      await page.locator('[data-test="trend-chart"], [data-test="dashboard"] .n-alert').first().waitFor();
      await shot("02-dashboard");
    });

    const groupName = "e2e-mock";
    await step("create a group pointing at the mock upstream", async () => {
      await page.locator('[data-nav="keys"]').click();
      await page.locator('[data-test="keys-page"]').waitFor();
      await page.locator('[data-test="create-group"]').click();
      const form = page.locator('[data-test="group-form"]');
      await form.waitFor();
      await form.locator('[data-test="group-name"] input').fill(groupName);
      await form.locator('[data-test="group-display-name"] input').fill("E2E mock");
      await form.locator('[data-test="upstream-url-0"] input').fill(mockUrl);
      await shot("03-group-form");
      const created = apiResponse("POST", "/api/groups");
      await form.locator('[data-test="group-save"]').click();
      const res = await created;
      if (res.status() !== 200) throw new Error(`POST /api/groups answered ${res.status()}: ${await res.text()}`);
      await form.waitFor({ state: "hidden" });
      await page.locator(`[data-test="group-list"] [data-group="${groupName}"].active`).waitFor();
      const endpoint = await page.locator('[data-test="group-endpoint"]').innerText();
      if (!endpoint.includes(`/proxy/${groupName}`)) throw new Error(`endpoint shows ${endpoint}`);
    });

    const keys = ["sk-e2e-alpha-0001", "sk-e2e-bravo-0002", "sk-e2e-charlie-0003"];
    await step("add keys by paste and see them listed", async () => {
      await page.locator('[data-test="add-keys"]').click();
      const modal = page.locator('[data-test="keys-add-modal"]');
      await modal.locator('[data-test="keys-text"] textarea').fill(`${keys[0]}\n${keys[1]}, ${keys[2]}\n${keys[0]}`);
      await modal.getByText("3 distinct key(s)").waitFor();
      await modal.locator('[data-test="keys-text-submit"]').click();
      await modal.waitFor({ state: "hidden" });
      await page.locator('[data-test="keys-total"]', { hasText: "3 in total" }).waitFor();
      const shown = await page.locator('[data-test="key-table"] [data-test="key-value"]').allInnerTexts();
      const expected = keys.map((k) => `${k.slice(0, 4)}…${k.slice(-4)}`).sort();
      if (JSON.stringify([...shown].sort()) !== JSON.stringify(expected)) throw new Error(`listed ${JSON.stringify(shown)}`);
      await shot("04-keys");
    });

    await step("delete one key from its row", async () => {
      const row = page.locator('[data-test="key-table"] tr', { hasText: "sk-e…0002" });
      await row.getByRole("button", { name: "Delete" }).click();
      const removed = apiResponse("POST", "/api/keys/delete-multiple");
      await page.locator(".n-dialog").getByRole("button", { name: "Delete" }).click();
      if ((await removed).status() !== 200) throw new Error("delete-multiple failed");
      await page.locator('[data-test="keys-total"]', { hasText: "2 in total" }).waitFor();
    });

    await step("disable a key from its row, see it disabled, and enable it again", async () => {
      const row = page.locator('[data-test="key-table"] tr', { hasText: "sk-e…0001" });
      const disabled = page.waitForResponse((r) => r.request().method() === "PUT" && /\/api\/keys\/\d+\/status$/.test(new URL(r.url()).pathname));
      await row.locator('[data-test="toggle-key"]', { hasText: "Disable" }).click();
      if ((await disabled).status() !== 200) throw new Error("PUT /api/keys/{id}/status failed");
      await row.locator('[data-test="key-state"]', { hasText: "Disabled" }).waitFor();
      await page.locator('[data-test="group-key-counts"]', { hasText: "1 Disabled" }).waitFor();
      await shot("05-key-disabled");
      const enabled = page.waitForResponse((r) => r.request().method() === "PUT" && /\/api\/keys\/\d+\/status$/.test(new URL(r.url()).pathname));
      await row.locator('[data-test="toggle-key"]', { hasText: "Enable" }).click();
      if ((await enabled).status() !== 200) throw new Error("re-enabling failed");
      await row.locator('[data-test="key-state"]', { hasText: "Valid" }).waitFor();
      await row.locator('[data-test="toggle-key"]', { hasText: "Disable" }).waitFor();
    });

    await step("edit the group and see the new display name", async () => {
      await page.locator('[data-test="group-edit"]').click();
      const form = page.locator('[data-test="group-form"]');
      await form.locator('[data-test="group-display-name"] input').fill("E2E mock (edited)");
      const saved = apiResponse("PUT", "/api/groups/1");
      await form.locator('[data-test="group-save"]').click();
      if ((await saved).status() !== 200) throw new Error("PUT /api/groups/1 failed");
      await page.locator('[data-test="group-info"] h3', { hasText: "E2E mock (edited)" }).waitFor();
    });

    // Real requests through the proxy to the mock, which reports usage on every channel; what it
    // reported (read from the relayed bodies) is what the pages below must show.
    const chat = (extra) => ({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }], ...extra });
    const gemini = { contents: [{ role: "user", parts: [{ text: "hi" }] }] };
    const bearer = { Authorization: `Bearer ${PROXY_KEY}` };
    const sent = [
      { group: groupName, channel: "openai", model: "gpt-4o-mini", path: "/v1/chat/completions", headers: bearer, body: chat({}) },
      { group: groupName, channel: "openai", model: "gpt-4o-mini", path: "/v1/chat/completions", headers: bearer, body: chat({ stream: true, stream_options: { include_usage: true } }) },
      // A stream without include_usage: OpenAI reports nothing, so the UI must show "—".
      { group: groupName, channel: "openai", model: "gpt-4o-mini", path: "/v1/chat/completions", headers: bearer, body: chat({ stream: true }) },
      {
        group: "e2e-claude",
        channel: "anthropic",
        model: "claude-3-5-haiku-latest",
        path: "/v1/messages",
        headers: { "x-api-key": PROXY_KEY, "anthropic-version": "2023-06-01" },
        body: { model: "claude-3-5-haiku-latest", max_tokens: 16, messages: [{ role: "user", content: "hi" }] },
      },
      { group: "e2e-gemini", channel: "gemini", model: "gemini-2.0-flash", path: "/v1beta/models/gemini-2.0-flash:generateContent", headers: { "x-goog-api-key": PROXY_KEY }, body: gemini },
      {
        group: "e2e-gemini",
        channel: "gemini",
        model: "gemini-2.0-flash",
        path: "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        headers: { "x-goog-api-key": PROXY_KEY },
        body: gemini,
      },
    ];
    const expected = { input: 0, output: 0, total: 0, known: 0, byModel: new Map(), byGroup: new Map() };
    await step("requests through the proxy on three channels come back with the mock's usage", async () => {
      await api("PUT", "/settings", { proxy_keys: PROXY_KEY });
      for (const [name, channel, model] of [
        ["e2e-claude", "anthropic", "claude-3-5-haiku-latest"],
        ["e2e-gemini", "gemini", "gemini-2.0-flash"],
      ]) {
        const group = await api("POST", "/groups", { name, channel_type: channel, test_model: model, sort: 100, upstreams: [{ url: mockUrl, weight: 1 }] });
        await api("POST", "/keys/add-multiple", { group_id: group.id, keys_text: `sk-${name}-0001` });
      }
      for (const call of sent) {
        const res = await fetch(`${base}/proxy/${call.group}${call.path}`, {
          method: "POST",
          headers: { ...call.headers, "Content-Type": "application/json" },
          body: JSON.stringify(call.body),
        });
        const text = await res.text();
        if (res.status !== 200) throw new Error(`${call.group}${call.path} answered ${res.status}: ${text.slice(0, 200)}`);
        call.usage = reportedUsage(call.channel, text);
        if (!call.usage) continue;
        expected.input += call.usage.input;
        expected.output += call.usage.output;
        expected.total += call.usage.total;
        expected.known += 1;
        expected.byModel.set(call.model, (expected.byModel.get(call.model) ?? 0) + call.usage.total);
        expected.byGroup.set(call.group, (expected.byGroup.get(call.group) ?? 0) + call.usage.total);
      }
      if (expected.known !== sent.length - 1) throw new Error(`the mock reported usage on ${expected.known} of ${sent.length} answers`);
      // The log writer flushes about a second after the first row.
      await until("the usage report counting every request", async () => (await api("GET", "/usage")).totals.requests === sent.length);
    });

    await step("the dashboard's tokens card shows the tokens the mock reported", async () => {
      // The finished import's card would cover the screenshots' corner.
      const task = page.locator('[data-test="task-progress"]');
      if (await task.isVisible()) {
        await task.getByRole("button", { name: "Close" }).click();
        await task.waitFor({ state: "hidden" });
      }
      await page.locator('[data-nav="dashboard"]').click();
      const card = page.locator('[data-test="dashboard-tokens"]');
      await card.locator('[data-test="token-chart"]').waitFor();
      await page.getByRole("button", { name: "Refresh" }).click();
      await card.locator('[data-test="tokens-total"]', { hasText: new RegExp(`^${expected.total}$`) }).waitFor();
      const [input, output] = await Promise.all([
        card.locator('[data-test="tokens-input"]').innerText(),
        card.locator('[data-test="tokens-output"]').innerText(),
      ]);
      if (Number(input) !== expected.input || Number(output) !== expected.output) {
        throw new Error(`card shows input ${input}, output ${output}; the mock reported ${expected.input}, ${expected.output}`);
      }
      const requests = await card.locator('[data-test="tokens-requests"]').innerText();
      if (!requests.includes(`${expected.known} of ${sent.length}`)) throw new Error(`requests cell: ${requests}`);
      await docShot(card, "usage-dashboard-tokens");
    });

    await step("the logs table shows each request's tokens, and — where none were reported", async () => {
      await page.locator('[data-nav="logs"]').click();
      const table = page.locator('[data-test="logs-page"] .n-data-table');
      await until("every request in the logs table", async () => (await table.locator('[data-test="log-input_tokens"]').count()) === sent.length);
      const inputs = numbers(await table.locator('[data-test="log-input_tokens"]').allInnerTexts());
      const outputs = numbers(await table.locator('[data-test="log-output_tokens"]').allInnerTexts());
      const sorted = (list) => JSON.stringify([...list].sort());
      const want = (field) => sent.map((c) => (c.usage ? c.usage[field] : null));
      if (sorted(inputs) !== sorted(want("input"))) throw new Error(`input column ${JSON.stringify(inputs)}, reported ${JSON.stringify(want("input"))}`);
      if (sorted(outputs) !== sorted(want("output"))) throw new Error(`output column ${JSON.stringify(outputs)}, reported ${JSON.stringify(want("output"))}`);
      await docShot(page.locator('[data-test="logs-page"]'), "usage-logs-table");
    });

    await step("the logs CSV export carries each key's token sums", async () => {
      // The export button opens this URL (with the admin key as ?key=, like GPT-Load's UI).
      const res = await fetch(`${base}/api/logs/export?key=${encodeURIComponent(AUTH_KEY)}`);
      const lines = (await res.text()).trim().split("\n");
      const header = lines.shift();
      if (header !== "key_value,group_name,status_code,input_tokens,output_tokens,total_tokens,cached_tokens,cache_write_tokens,reasoning_tokens") {
        throw new Error(`CSV header: ${header}`);
      }
      const column = (name) => header.split(",").indexOf(name);
      const sum = (name) => lines.reduce((total, line) => total + Number(line.split(",")[column(name)] || 0), 0);
      for (const [name, want] of [
        ["input_tokens", expected.input],
        ["output_tokens", expected.output],
        ["total_tokens", expected.total],
      ]) {
        if (sum(name) !== want) throw new Error(`CSV ${name} adds up to ${sum(name)}, the mock reported ${want}`);
      }
    });

    await step("a log's detail shows its tokens and the proxy key's identity, never the key", async () => {
      const claude = sent.find((c) => c.channel === "anthropic");
      await page.locator('[data-test="logs-page"] .n-data-table tr', { hasText: claude.model }).getByRole("button", { name: "View" }).click();
      const drawer = page.locator('[data-test="log-detail"]');
      await drawer.waitFor();
      for (const [cell, want] of [
        ["input", claude.usage.input],
        ["output", claude.usage.output],
        ["total", claude.usage.total],
      ]) {
        const shown = await drawer.locator(`[data-test="log-tokens-${cell}"]`).innerText();
        if (Number(shown) !== want) throw new Error(`${cell}: shows ${shown}, the mock reported ${want}`);
      }
      const identity = await drawer.locator('[data-test="log-proxy-key"]').innerText();
      if (!/^global #1 · [0-9a-f]{8}$/.test(identity) || identity.includes(PROXY_KEY.slice(-6))) throw new Error(`proxy key shows ${identity}`);
      await docShot(page.locator(".n-drawer"), "usage-log-detail");
      await page.keyboard.press("Escape");
      await drawer.waitFor({ state: "hidden" });
    });

    await step("the key table's token totals add up to the group's reported tokens", async () => {
      await page.locator('[data-nav="keys"]').click();
      await page.locator(`[data-test="group-list"] [data-group="${groupName}"]`).click();
      const cells = page.locator('[data-test="key-table"] [data-test="key-tokens"]');
      await until("the key table's tokens", async () => (await cells.count()) === 2);
      const shown = numbers(await cells.allInnerTexts()).reduce((sum, n) => sum + (n ?? 0), 0);
      if (shown !== expected.byGroup.get(groupName)) throw new Error(`keys show ${shown} tokens, the mock reported ${expected.byGroup.get(groupName)}`);
      await page.locator('[data-test="group-tokens"]', { hasText: `${expected.byGroup.get(groupName)} tokens` }).first().waitFor();
    });

    await step("the usage page breaks the tokens down by model, proxy key and key", async () => {
      await page.locator('[data-nav="usage"]').click();
      const usagePage = page.locator('[data-test="usage-page"]');
      await usagePage.locator('[data-test="tokens-total"]', { hasText: new RegExp(`^${expected.total}$`) }).waitFor();
      const table = usagePage.locator('[data-test="usage-table"]');
      for (const [model, total] of expected.byModel) {
        const cell = table.locator("tr", { hasText: model }).locator('[data-test="usage-total_tokens"]');
        const shown = await cell.innerText();
        if (Number(shown) !== total) throw new Error(`${model}: shows ${shown}, the mock reported ${total}`);
      }
      await docShot(usagePage, "usage-page");
      await usagePage.locator('[data-group-by="proxy_key"]').click();
      await table.locator('[data-test="usage-name"]', { hasText: /^global #1 · / }).waitFor();
      await usagePage.locator('[data-group-by="key"]').click();
      await table.locator('[data-test="usage-name"]', { hasText: "sk-e" }).first().waitFor();
      const perKey = numbers(await table.locator('[data-test="usage-total_tokens"]').allInnerTexts()).reduce((sum, n) => sum + (n ?? 0), 0);
      if (perKey !== expected.total) throw new Error(`per-key rows add up to ${perKey}, the mock reported ${expected.total}`);
      await shot("09-usage-by-key");
    });

    await step("change a setting and see it persisted after a reload", async () => {
      await page.locator('[data-nav="settings"]').click();
      await page.locator('[data-test="settings-page"]').waitFor();
      const input = page.locator('[data-setting="max_retries"] input');
      await input.waitFor();
      await input.fill("7");
      await input.blur();
      await shot("05-settings");
      const saved = apiResponse("PUT", "/api/settings");
      await page.locator('[data-test="settings-save"]').click();
      const res = await saved;
      if (res.status() !== 200) throw new Error(`PUT /api/settings answered ${res.status()}`);
      const body = JSON.parse(res.request().postData() ?? "{}");
      if (body.max_retries !== 7) throw new Error(`sent max_retries=${body.max_retries}`);
      await page.reload();
      await page.locator('[data-setting="max_retries"] input').waitFor();
      const value = await page.locator('[data-setting="max_retries"] input').inputValue();
      if (value !== "7") throw new Error(`after reload max_retries shows ${value}`);
    });

    await step("the logs page renders its filters and table", async () => {
      await page.locator('[data-nav="logs"]').click();
      await page.locator('[data-test="logs-page"]').waitFor();
      await page.locator('[data-test="logs-search"]').waitFor();
      await page.locator('[data-test="logs-page"] .n-data-table').waitFor();
      await shot("06-logs");
    });

    await step("switching to 中文 relabels the UI and the API calls ask for zh-CN", async () => {
      const asked = page.waitForRequest((r) => new URL(r.url()).pathname === "/api/settings", { timeout: STEP_TIMEOUT });
      await page.locator(".n-layout-header .n-base-selection").click();
      await page.locator(".n-base-select-option", { hasText: "中文" }).click();
      await page.locator('[data-nav="keys"]', { hasText: "密钥管理" }).waitFor();
      await page.locator('[data-nav="settings"]').click();
      const request = await asked;
      if (request.headers()["accept-language"] !== "zh-CN") throw new Error(`Accept-Language: ${request.headers()["accept-language"]}`);
      await page.locator('[data-test="settings-save"]', { hasText: "保存设置" }).waitFor();
      await page.locator('[data-nav="keys"]').click();
      await page.locator('[data-test="key-table"]').waitFor();
      await page.locator('[data-test="keys-total"]', { hasText: "共 2 条" }).waitFor();
      await shot("07-keys-zh-CN");
      await page.locator(".n-layout-header .n-base-selection").click();
      await page.locator(".n-base-select-option", { hasText: "English" }).click();
      await page.locator('[data-nav="keys"]', { hasText: "Keys" }).waitFor();
    });

    await step("the dark theme renders the dashboard", async () => {
      await page.locator('[data-nav="dashboard"]').click();
      await page.locator('[data-test="dashboard"]').waitFor();
      // auto → light → dark
      const toggle = page.locator(".n-layout-header .tools > button").first();
      await toggle.click();
      await toggle.click();
      // Naive UI's dark body colour, once its colour transition has finished.
      await page.waitForFunction(() => getComputedStyle(document.body).backgroundColor === "rgb(16, 16, 20)");
      await shot("08-dashboard-dark");
      await toggle.click();
    });

    await step("log out, and a direct visit to /keys goes back to /login", async () => {
      await page.locator('[data-test="logout"]').click();
      await page.waitForURL(/\/login/);
      await page.goto(`${base}/keys`);
      await page.waitForURL(/\/login/);
      await page.locator('[data-test="auth-key"] input').waitFor();
    });

    await step("no uncaught error in the page", async () => {
      if (pageErrors.length) throw new Error(pageErrors.join(" | "));
    });
  } finally {
    await browser.close();
    stopAll();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main()
  .catch((err) => {
    failed++;
    log(`FAIL setup: ${err instanceof Error ? err.message : err}`);
    stopAll();
  })
  .finally(() => {
    log(`${passed} passed, ${failed} failed`);
    process.exitCode = failed ? 1 : 0;
  });
