// Request logs and their CSV export (reference §4.9; how totals are counted, and when they are
// lower bounds: docs/compatibility.md).

import { downloadUrl, get, type Query } from "./http";
import type { LogFilters, Page, RequestLog } from "./types";

export const listLogs = (filters: LogFilters, page: number, pageSize: number) =>
  get<Page<RequestLog>>("/logs", { ...(filters as Query), page, page_size: pageSize });

export const exportLogsUrl = (filters: LogFilters) => downloadUrl("/logs/export", filters as Query);
