// The key table's columns: live health (state, demotion, per-model rests, cooldown end, last
// failure class), the key (masked unless revealed), notes, counts, token totals and the per-key
// actions. Pure render functions over the row and what the page tells them (`KeyRowView`).
import { h } from "vue";
import { NButton, NSpace, NTag, NTooltip, type DataTableColumns } from "naive-ui";
import AppIcon from "../common/AppIcon.vue";
import type { ApiKey } from "../../api/types";
import { locale, t } from "../../i18n";
import { dateTime, relativeTime } from "../../utils/format";
import { failureLabel, keyStateTag, maskKey } from "../../utils/keys";
import { keyTokens } from "../../utils/usage";

/** What the columns read from the page and the actions their buttons start. */
export interface KeyRowView {
  /** Ids of the keys shown in plain text. */
  revealed: Set<number>;
  /** The key whose test is running. */
  busyRow: number | null;
  reveal(key: ApiKey): void;
  copy(text: string): void;
  editNotes(key: ApiKey): void;
  test(key: ApiKey): void;
  restore(key: ApiKey): void;
  resetCooldown(key: ApiKey): void;
  toggle(key: ApiKey): void;
  remove(key: ApiKey): void;
}

export function keyColumns(view: KeyRowView): DataTableColumns<ApiKey> {
  return [
    { type: "selection", width: 40 },
    {
      title: t("keys.status"),
      key: "state",
      width: 170,
      render: (k) => {
        const tag = keyStateTag(k.state);
        const rests = k.model_cooldowns ?? [];
        return h("div", { class: "badges" }, [
          h(NTag, { size: "small", bordered: false, type: tag.type, "data-test": "key-state" }, () => t(tag.label)),
          k.demoted
            ? h(NTooltip, null, {
                trigger: () => h(NTag, { size: "small", bordered: false, type: "error", round: true, "data-test": "key-demoted" }, () => t("keys.demoted")),
                default: () => t("keys.demotedTip"),
              })
            : null,
          rests.length
            ? h(NTooltip, null, {
                trigger: () =>
                  h(NTag, { size: "small", bordered: false, type: "warning", round: true, "data-test": "key-model-rests" }, () =>
                    t("keys.modelRests", { n: rests.length }),
                  ),
                default: () =>
                  h("div", [
                    h("div", t("keys.modelRestsTip")),
                    ...rests.map((r) => h("div", { class: "mono" }, `${r.model} → ${dateTime(r.cooldown_until)}`)),
                  ]),
              })
            : null,
        ]);
      },
    },
    {
      title: t("keys.coolingDown"),
      key: "cooldown_until",
      width: 120,
      render: (k) =>
        k.cooldown_until
          ? h(NTooltip, null, {
              trigger: () => h("span", { "data-test": "key-cooldown" }, relativeTime(k.cooldown_until, locale.value)),
              default: () => t("keys.cooldownUntil", { time: dateTime(k.cooldown_until) }),
            })
          : h("span", { class: "muted" }, "—"),
    },
    {
      title: t("keys.lastFailure"),
      key: "last_failure",
      width: 120,
      render: (k) => (k.last_failure ? h("span", t(failureLabel(k.last_failure))) : h("span", { class: "muted" }, "—")),
    },
    {
      title: t("keys.key"),
      key: "key_value",
      minWidth: 220,
      render: (k) =>
        h("div", { class: "keycell" }, [
          h("span", { class: "mono", "data-test": "key-value" }, view.revealed.has(k.id) ? k.key_value : maskKey(k.key_value)),
          h(NButton, { text: true, size: "tiny", onClick: () => view.reveal(k), "aria-label": "show" }, () =>
            h(AppIcon, { name: view.revealed.has(k.id) ? "eyeOff" : "eye" }),
          ),
          h(NButton, { text: true, size: "tiny", onClick: () => view.copy(k.key_value), "aria-label": "copy" }, () => h(AppIcon, { name: "copy" })),
        ]),
    },
    {
      title: t("keys.notes"),
      key: "notes",
      minWidth: 140,
      ellipsis: { tooltip: true },
      render: (k) =>
        h(
          "span",
          { class: k.notes ? "notes" : "notes muted", onClick: () => view.editNotes(k), title: t("keys.editNotes") },
          k.notes || t("keys.addNotes"),
        ),
    },
    { title: t("keys.requests"), key: "request_count", width: 96, align: "right" },
    { title: t("keys.failures"), key: "failure_count", width: 90, align: "right" },
    {
      title: t("keys.tokens"),
      key: "total_tokens",
      width: 110,
      align: "right",
      render: (k) => {
        const tokens = keyTokens(k);
        return h(NTooltip, null, {
          trigger: () => h("span", { class: "num", "data-test": "key-tokens" }, tokens.total),
          default: () => t("keys.tokensTip", { input: tokens.input, output: tokens.output }),
        });
      },
    },
    {
      title: t("keys.lastUsed"),
      key: "last_used_at",
      width: 130,
      render: (k) =>
        k.last_used_at
          ? h(NTooltip, null, { trigger: () => h("span", relativeTime(k.last_used_at, locale.value)), default: () => dateTime(k.last_used_at) })
          : h("span", { class: "muted" }, t("keys.unused")),
    },
    {
      title: t("common.actions"),
      key: "actions",
      width: 290,
      fixed: "right",
      render: (k) =>
        h(NSpace, { size: 4, wrap: false }, () => [
          h(NButton, { size: "tiny", secondary: true, loading: view.busyRow === k.id, onClick: () => view.test(k) }, () => t("keys.test")),
          k.status === "invalid"
            ? h(NButton, { size: "tiny", secondary: true, type: "success", onClick: () => view.restore(k) }, () => t("keys.restore"))
            : null,
          k.state === "cooling_down"
            ? h(NButton, { size: "tiny", secondary: true, type: "warning", "data-test": "reset-cooldown", onClick: () => view.resetCooldown(k) }, () =>
                t("keys.resetCooldown"),
              )
            : null,
          h(
            NButton,
            { size: "tiny", secondary: true, type: k.status === "disabled" ? "success" : "default", "data-test": "toggle-key", onClick: () => view.toggle(k) },
            () => (k.status === "disabled" ? t("keys.enable") : t("keys.disable")),
          ),
          h(NButton, { size: "tiny", secondary: true, type: "error", onClick: () => view.remove(k) }, () => t("common.delete")),
        ]),
    },
  ];
}
