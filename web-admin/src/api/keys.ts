// Keys of a group (reference §4.6). Bulk calls take free text (`keys_text`) that the server parses.

import { downloadUrl, get, post, request } from "./http";
import type {
  AddKeysResult,
  ApiKey,
  Envelope,
  DeleteKeysResult,
  KeyQuery,
  KeyStatus,
  KeyTestResponse,
  Page,
  RestoreKeysResult,
  TaskStatus,
} from "./types";

export const listKeys = (query: KeyQuery) => get<Page<ApiKey>>("/keys", { ...query });

/** Starts the import task from pasted text or an uploaded `.txt` file. */
export function addKeysAsync(groupId: number, source: string | File): Promise<TaskStatus> {
  return typeof source === "string"
    ? post<TaskStatus>("/keys/add-async", { group_id: groupId, keys_text: source })
    : post<TaskStatus>("/keys/add-async", undefined, { form: formWith(groupId, source) });
}

function formWith(groupId: number, file: File): FormData {
  const form = new FormData();
  form.set("group_id", String(groupId));
  form.set("file", file, file.name);
  return form;
}

/** Synchronous add of at most 5000 keys. */
export const addKeys = (groupId: number, keysText: string) =>
  post<AddKeysResult>("/keys/add-multiple", { group_id: groupId, keys_text: keysText });

export const deleteKeysAsync = (groupId: number, keysText: string) =>
  post<TaskStatus>("/keys/delete-async", { group_id: groupId, keys_text: keysText });

export const deleteKeys = (groupId: number, keysText: string) =>
  post<DeleteKeysResult>("/keys/delete-multiple", { group_id: groupId, keys_text: keysText });

export const restoreKeys = (groupId: number, keysText: string) =>
  post<RestoreKeysResult>("/keys/restore-multiple", { group_id: groupId, keys_text: keysText });

export const restoreAllInvalid = (groupId: number) => request<never>("POST", "/keys/restore-all-invalid", { body: { group_id: groupId } });
export const clearAllInvalid = (groupId: number) => request<never>("POST", "/keys/clear-all-invalid", { body: { group_id: groupId } });
export const clearAllKeys = (groupId: number) => request<never>("POST", "/keys/clear-all", { body: { group_id: groupId } });

export const validateGroup = (groupId: number, status?: KeyStatus) => post<TaskStatus>("/keys/validate-group", { group_id: groupId, status });

export const testKeys = (groupId: number, keysText: string) =>
  post<KeyTestResponse>("/keys/test-multiple", { group_id: groupId, keys_text: keysText });

/** Disables a key (never leased nor validated) or enables it again with a fresh health. */
export const setKeyStatus = (id: number, status: "active" | "disabled"): Promise<Envelope<ApiKey>> =>
  request<ApiKey>("PUT", `/keys/${id}/status`, { body: { status } });

/** Ends a key's cooldown now; the message says whether it was cooling down. */
export const resetKeyCooldown = (id: number): Promise<Envelope<ApiKey>> => request<ApiKey>("POST", `/keys/${id}/reset-cooldown`);

export const setKeyNotes = (id: number, notes: string) => request<never>("PUT", `/keys/${id}/notes`, { body: { notes } });

export const exportKeysUrl = (groupId: number, status: "all" | KeyStatus) => downloadUrl("/keys/export", { group_id: groupId, status });
