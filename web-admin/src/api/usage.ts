// Token usage (gpt-load's own route, not in GPT-Load): totals and an hourly series for a time
// range, grouped by model, group, proxy-key identity or upstream key.

import { get, type Query } from "./http";
import type { UsageQuery, UsageReport } from "./types";

export const usageReport = (query: UsageQuery) => get<UsageReport>("/usage", { ...query } as Query);
