// System settings (reference §4.10).

import { get, request } from "./http";
import type { SettingCategory, SettingValue } from "./types";

export const listSettings = () => get<SettingCategory[]>("/settings");
export const saveSettings = (values: Record<string, SettingValue>) => request<never>("PUT", "/settings", { body: values });
