// The global task (import, delete, validation): polled every second while one runs, so every
// page shows the same progress bar and can refresh when it ends.

import { reactive } from "vue";
import { taskStatus } from "../api/tasks";
import type { TaskStatus } from "../api/types";

const CLOSED_STORAGE = "last_closed_task";
const POLL_MS = 1000;

export const task = reactive<{ status: TaskStatus | null; unavailable: boolean }>({ status: null, unavailable: false });

type Listener = (status: TaskStatus) => void;
const finishedListeners = new Set<Listener>();
let timer: ReturnType<typeof setTimeout> | null = null;
let wasRunning = false;

/** Registers a callback for when a running task finishes; returns the unsubscribe function. */
export function onTaskFinished(listener: Listener): () => void {
  finishedListeners.add(listener);
  return () => finishedListeners.delete(listener);
}

async function poll(): Promise<void> {
  timer = null;
  try {
    const status = await taskStatus();
    task.status = status;
    task.unavailable = false;
    if (wasRunning && !status.is_running) finishedListeners.forEach((l) => l(status));
    wasRunning = status.is_running;
    if (status.is_running) timer = setTimeout(poll, POLL_MS);
  } catch {
    // The server has no task endpoint (or it failed): stop polling rather than spin.
    task.unavailable = true;
    wasRunning = false;
  }
}

/** Starts polling now (on mount, and whenever the UI starts a task). */
export function watchTask(initial?: TaskStatus): void {
  if (initial) {
    task.status = initial;
    wasRunning = wasRunning || initial.is_running;
  }
  if (timer) clearTimeout(timer);
  void poll();
}

export function stopWatchingTask(): void {
  if (timer) clearTimeout(timer);
  timer = null;
}

/** The finished task was dismissed by the user: remembered by its finish time. */
export function dismissTask(): void {
  if (task.status?.finished_at) localStorage.setItem(CLOSED_STORAGE, task.status.finished_at);
  task.status = null;
}

export function isDismissed(status: TaskStatus): boolean {
  return !!status.finished_at && localStorage.getItem(CLOSED_STORAGE) === status.finished_at;
}
