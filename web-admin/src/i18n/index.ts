// A small typed dictionary instead of vue-i18n: English is the source, the other languages must
// have exactly its keys (the compiler checks), and the current language is one reactive ref.

import { computed, ref } from "vue";
import { dateEnUS, dateJaJP, dateZhCN, enUS, jaJP, zhCN } from "naive-ui";
import en from "./en";
import ja from "./ja-JP";
import zh from "./zh-CN";

export type MessageKey = keyof typeof en;
export type Messages = Record<MessageKey, string>;

export const LOCALES = [
  { value: "en-US", label: "English" },
  { value: "zh-CN", label: "中文" },
  { value: "ja-JP", label: "日本語" },
] as const;
export type Locale = (typeof LOCALES)[number]["value"];

const dictionaries: Record<Locale, Messages> = { "en-US": en, "zh-CN": zh, "ja-JP": ja };
const STORAGE = "locale";

/** Saved choice, else the browser language (exact or prefix match), else English. */
export function initialLocale(saved: string | null, browser: readonly string[]): Locale {
  const known = LOCALES.map((l) => l.value) as string[];
  if (saved && known.includes(saved)) return saved as Locale;
  for (const lang of browser) {
    if (known.includes(lang)) return lang as Locale;
    const prefix = lang.split("-")[0];
    const match = known.find((k) => k.split("-")[0] === prefix);
    if (match) return match as Locale;
  }
  return "en-US";
}

export const locale = ref<Locale>(initialLocale(localStorage.getItem(STORAGE), navigator.languages ?? []));
// Stored from the start so API calls send the same language the UI shows.
localStorage.setItem(STORAGE, locale.value);

export function setLocale(next: Locale): void {
  locale.value = next;
  localStorage.setItem(STORAGE, next);
  document.documentElement.lang = next;
}

/** `t("keys.total", { n: 3 })` replaces `{n}`. */
export function t(key: MessageKey, params?: Record<string, string | number>): string {
  let text = dictionaries[locale.value][key] ?? en[key];
  if (params) {
    for (const [name, value] of Object.entries(params)) text = text.split(`{${name}}`).join(String(value));
  }
  return text;
}

export const naiveLocale = computed(() => ({ "en-US": enUS, "zh-CN": zhCN, "ja-JP": jaJP })[locale.value]);
export const naiveDateLocale = computed(() => ({ "en-US": dateEnUS, "zh-CN": dateZhCN, "ja-JP": dateJaJP })[locale.value]);
