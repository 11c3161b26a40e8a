import { describe, expect, it } from "vitest";
import { flushPromises, mount } from "@vue/test-utils";
import { defineComponent, h } from "vue";
import { NMessageProvider } from "naive-ui";
import { settingProblem, settingsProblems, validStatusCodeSpec } from "../src/utils/validation";
import type { Setting } from "../src/api/types";
import SettingsView from "../src/views/SettingsView.vue";

const int = (key: string, min: number): Setting => ({
  key,
  name: key,
  value: min,
  type: "int",
  default_value: String(min),
  description: "",
  category: "c",
  min_value: min,
  required: false,
});

describe("settings validation", () => {
  it("checks integers against their minimum", () => {
    expect(settingProblem(int("max_retries", 0), 3)).toBeNull();
    expect(settingProblem(int("request_timeout", 1), 0)).toEqual({ kind: "min", min: 1 });
    expect(settingProblem(int("request_timeout", 1), 1.5)).toEqual({ kind: "integer" });
    expect(settingProblem(int("request_timeout", 1), null)).toEqual({ kind: "required" });
  });

  it("requires required strings and parses failover status codes", () => {
    const appUrl: Setting = { ...int("app_url", 0), type: "string", required: true, min_value: null };
    expect(settingProblem(appUrl, "  ")).toEqual({ kind: "required" });
    const codes: Setting = { ...appUrl, key: "failover_status_codes", required: false };
    expect(settingProblem(codes, "400-403,405-999")).toBeNull();
    expect(settingProblem(codes, "")).toBeNull();
    expect(settingProblem(codes, "500-400")).toEqual({ kind: "statusCodes" });
    expect(validStatusCodeSpec("429\n 500 - 599")).toBe(true);
    expect(validStatusCodeSpec("99,abc")).toBe(false);
    expect(settingsProblems([int("a", 1), int("b", 0)], { a: 0, b: 0 })).toEqual({ a: { kind: "min", min: 1 } });
  });
});

describe("settings page", () => {
  it("renders each category from the API and refuses to save an invalid value", async () => {
    const calls: { method: string; url: string }[] = [];
    globalThis.fetch = (async (url: string, init: RequestInit) => {
      calls.push({ method: init.method ?? "GET", url });
      return new Response(
        JSON.stringify({
          code: 0,
          message: "Success",
          data: [
            { category_name: "Request Settings", settings: [int("request_timeout", 1)] },
            { category_name: "Basic", settings: [{ ...int("app_url", 0), type: "string", value: "http://x", required: true }] },
          ],
        }),
        { status: 200 },
      );
    }) as typeof fetch;
    const Host = defineComponent({ render: () => h(NMessageProvider, null, { default: () => h(SettingsView) }) });
    const wrapper = mount(Host, { attachTo: document.body });
    await flushPromises();

    expect(wrapper.text()).toContain("Request Settings");
    expect(wrapper.text()).toContain("Basic");
    const input = wrapper.find('[data-setting="request_timeout"] input');
    // The number input already clamps below-minimum values; an emptied one must block the save.
    await input.setValue("");
    await input.trigger("blur");
    await wrapper.find('[data-test="settings-save"]').trigger("click");
    await flushPromises();

    expect(calls.filter((c) => c.method === "PUT")).toHaveLength(0);
    expect(wrapper.text()).toContain("Required");
    wrapper.unmount();
  });
});
