// Dashboard cards, the 24 h chart and the encryption check (reference §4.8).

import { get } from "./http";
import type { ChartData, DashboardStats, EncryptionStatus } from "./types";

export const dashboardStats = () => get<DashboardStats>("/dashboard/stats");
/** Note the camelCase `groupId`, as GPT-Load names it. */
export const dashboardChart = (groupId?: number) => get<ChartData>("/dashboard/chart", { groupId });
export const encryptionStatus = () => get<EncryptionStatus>("/dashboard/encryption-status");
