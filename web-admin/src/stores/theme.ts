// Light / dark / follow-the-system, remembered across visits.

import { computed, ref } from "vue";
import { darkTheme, useOsTheme } from "naive-ui";

export type ThemeMode = "auto" | "light" | "dark";
const STORAGE = "theme-mode";

export const themeMode = ref<ThemeMode>((localStorage.getItem(STORAGE) as ThemeMode | null) ?? "auto");

export function setThemeMode(mode: ThemeMode): void {
  themeMode.value = mode;
  localStorage.setItem(STORAGE, mode);
}

/** Must be called inside a component's setup (useOsTheme needs it). */
export function useNaiveTheme() {
  const os = useOsTheme();
  const dark = computed(() => themeMode.value === "dark" || (themeMode.value === "auto" && os.value === "dark"));
  return { dark, theme: computed(() => (dark.value ? darkTheme : null)) };
}
