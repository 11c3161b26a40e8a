import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError, getAuthKey, request, setAuthKey, setUnauthorizedHandler } from "../src/api/http";
import { login } from "../src/api/auth";
import { addKeysAsync, listKeys, resetKeyCooldown, setKeyStatus } from "../src/api/keys";
import { updateGroup } from "../src/api/groups";

function reply(status: number, body: unknown) {
  return vi.fn(async () => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } }));
}

describe("API client", () => {
  beforeEach(() => localStorage.clear());
  afterEach(() => vi.unstubAllGlobals());

  it("sends the admin key as a bearer token and the UI language", async () => {
    setAuthKey("admin-key-123");
    localStorage.setItem("locale", "ja-JP");
    const fetch = reply(200, { code: 0, message: "ok", data: { items: [], pagination: { page: 2, page_size: 50, total_items: 0, total_pages: 0 } } });
    vi.stubGlobal("fetch", fetch);

    const page = await listKeys({ group_id: 7, status: "invalid", page: 2, page_size: 50 });

    expect(page.pagination.page).toBe(2);
    const [url, init] = fetch.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/api/keys?group_id=7&status=invalid&page=2&page_size=50");
    const headers = init.headers as Headers;
    expect(headers.get("Authorization")).toBe("Bearer admin-key-123");
    expect(headers.get("Accept-Language")).toBe("ja-JP");
  });

  it("disables a key and ends a cooldown through the per-key routes", async () => {
    setAuthKey("admin-key-123");
    const key = { id: 5, status: "disabled", state: "disabled", cooldown_until: null, last_failure: null };
    const fetch = reply(200, { code: 0, message: "Key disabled", data: key });
    vi.stubGlobal("fetch", fetch);

    const res = await setKeyStatus(5, "disabled");
    expect(res.message).toBe("Key disabled");
    expect(res.data?.state).toBe("disabled");
    let [url, init] = fetch.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/api/keys/5/status");
    expect(init.method).toBe("PUT");
    expect(JSON.parse(init.body as string)).toEqual({ status: "disabled" });

    await resetKeyCooldown(5);
    [url, init] = fetch.mock.calls[1] as unknown as [string, RequestInit];
    expect(url).toBe("/api/keys/5/reset-cooldown");
    expect(init.method).toBe("POST");
  });

  it("clears the key and hands 401 to the login redirect", async () => {
    setAuthKey("stale-key");
    const redirect = vi.fn();
    setUnauthorizedHandler(redirect);
    vi.stubGlobal("fetch", reply(401, { code: "UNAUTHORIZED", message: "Authentication failed" }));

    await expect(request("GET", "/groups")).rejects.toMatchObject({ status: 401, code: "UNAUTHORIZED", message: "Authentication failed" });
    expect(redirect).toHaveBeenCalledTimes(1);
    expect(getAuthKey()).toBe("");
  });

  it("shows the server's message for errors and names a route the server lacks", async () => {
    vi.stubGlobal("fetch", reply(400, { code: "VALIDATION_FAILED", message: "max_retries must be at least 0" }));
    await expect(request("PUT", "/settings", { body: { max_retries: -1 } })).rejects.toMatchObject({
      status: 400,
      code: "VALIDATION_FAILED",
      message: "max_retries must be at least 0",
    });
    vi.stubGlobal("fetch", reply(404, { error: "Not Found" }));
    const err = await request("GET", "/tasks/status").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe("NOT_FOUND");
    expect((err as ApiError).message).toContain("/api/tasks/status");
  });

  it("does not redirect on a wrong login key but rejects with the message", async () => {
    const redirect = vi.fn();
    setUnauthorizedHandler(redirect);
    vi.stubGlobal("fetch", reply(401, { success: false, message: "Authentication failed" }));
    await expect(login("wrong")).rejects.toMatchObject({ message: "Authentication failed" });
    expect(redirect).not.toHaveBeenCalled();
  });

  it("posts and puts JSON, or a form for a file, and returns the data unwrapped", async () => {
    setAuthKey("admin-key-123");
    const fetch = reply(200, { code: 0, message: "ok", data: { id: 3, name: "g" } });
    vi.stubGlobal("fetch", fetch);

    const group = await updateGroup(3, { display_name: "G" });
    expect(group.name).toBe("g");
    let [url, init] = fetch.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/api/groups/3");
    expect(init.method).toBe("PUT");
    expect((init.headers as Headers).get("Content-Type")).toBe("application/json");
    expect(JSON.parse(init.body as string)).toEqual({ display_name: "G" });

    await addKeysAsync(3, new File(["sk-a\nsk-b"], "keys.txt"));
    [url, init] = fetch.mock.calls[1] as unknown as [string, RequestInit];
    expect(url).toBe("/api/keys/add-async");
    expect(init.method).toBe("POST");
    expect(init.body).toBeInstanceOf(FormData);
    expect((init.headers as Headers).get("Content-Type")).toBeNull();
    expect((init.body as FormData).get("group_id")).toBe("3");
  });
});
