// The one global long-running task (reference §4.7, §7.4).

import { get } from "./http";
import type { TaskStatus } from "./types";

export const taskStatus = () => get<TaskStatus>("/tasks/status");
