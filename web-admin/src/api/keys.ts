// Keys of a group (reference §4.6). Bulk calls take free text (`keys_text`) that the server parses.

import { downloadUrl, get, request } from "./http";
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
export async function addKeysAsync(groupId: number, source: string | File): Promise<TaskStatus> {
  const options =
    typeof source === "string"
      ? { body: { group_id: groupId, keys_text: source } }
      : { form: formWith(groupId, source) };
  return (await request<TaskStatus>("POST", "/keys/add-async", options)).data as TaskStatus;
}

function formWith(groupId: number, file: File): FormData {
  const form = new FormData();
  form.set("group_id", String(groupId));
  form.set("file", file, file.name);
  return form;
}

/** Synchronous add of at most 5000 keys. */
export async function addKeys(groupId: number, keysText: string): Promise<AddKeysResult> {
  return (await request<AddKeysResult>("POST", "/keys/add-multiple", { body: { group_id: groupId, keys_text: keysText } }))
    .data as AddKeysResult;
}

export async function deleteKeysAsync(groupId: number, keysText: string): Promise<TaskStatus> {
  return (await request<TaskStatus>("POST", "/keys/delete-async", { body: { group_id: groupId, keys_text: keysText } }))
    .data as TaskStatus;
}

export async function deleteKeys(groupId: number, keysText: string): Promise<DeleteKeysResult> {
  return (
    await request<DeleteKeysResult>("POST", "/keys/delete-multiple", { body: { group_id: groupId, keys_text: keysText } })
  ).data as DeleteKeysResult;
}

export async function restoreKeys(groupId: number, keysText: string): Promise<RestoreKeysResult> {
  return (
    await request<RestoreKeysResult>("POST", "/keys/restore-multiple", { body: { group_id: groupId, keys_text: keysText } })
  ).data as RestoreKeysResult;
}

export const restoreAllInvalid = (groupId: number) => request<never>("POST", "/keys/restore-all-invalid", { body: { group_id: groupId } });
export const clearAllInvalid = (groupId: number) => request<never>("POST", "/keys/clear-all-invalid", { body: { group_id: groupId } });
export const clearAllKeys = (groupId: number) => request<never>("POST", "/keys/clear-all", { body: { group_id: groupId } });

export async function validateGroup(groupId: number, status?: KeyStatus): Promise<TaskStatus> {
  return (await request<TaskStatus>("POST", "/keys/validate-group", { body: { group_id: groupId, status } })).data as TaskStatus;
}

export async function testKeys(groupId: number, keysText: string): Promise<KeyTestResponse> {
  return (await request<KeyTestResponse>("POST", "/keys/test-multiple", { body: { group_id: groupId, keys_text: keysText } }))
    .data as KeyTestResponse;
}

/** Disables a key (never leased nor validated) or enables it again with a fresh health. */
export const setKeyStatus = (id: number, status: "active" | "disabled"): Promise<Envelope<ApiKey>> =>
  request<ApiKey>("PUT", `/keys/${id}/status`, { body: { status } });

/** Ends a key's cooldown now; the message says whether it was cooling down. */
export const resetKeyCooldown = (id: number): Promise<Envelope<ApiKey>> => request<ApiKey>("POST", `/keys/${id}/reset-cooldown`);

export const setKeyNotes = (id: number, notes: string) => request<never>("PUT", `/keys/${id}/notes`, { body: { notes } });

export const exportKeysUrl = (groupId: number, status: "all" | KeyStatus) => downloadUrl("/keys/export", { group_id: groupId, status });
