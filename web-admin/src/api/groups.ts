// Groups and aggregate membership (reference §4.4, §4.5).

import { get, request } from "./http";
import type {
  ChannelType,
  ConfigOption,
  CopyKeysMode,
  Group,
  GroupBrief,
  GroupInput,
  GroupStats,
  ParentAggregate,
  SubGroup,
} from "./types";

export const listGroups = () => get<Group[]>("/groups");
export const listGroupsBrief = () => get<GroupBrief[]>("/groups/list");
export const channelTypes = () => get<ChannelType[]>("/channel-types");
export const configOptions = () => get<ConfigOption[]>("/groups/config-options");

export async function createGroup(input: GroupInput): Promise<Group> {
  return (await request<Group>("POST", "/groups", { body: input })).data as Group;
}

export async function updateGroup(id: number, input: GroupInput): Promise<Group> {
  return (await request<Group>("PUT", `/groups/${id}`, { body: input })).data as Group;
}

export const deleteGroup = (id: number) => request<never>("DELETE", `/groups/${id}`);

/** Persists the order; GPT-Load's UI sends `sort = position × 10`. */
export const reorderGroups = (ids: number[]) =>
  request<never>("PUT", "/groups/reorder", { body: { items: ids.map((id, i) => ({ id, sort: (i + 1) * 10 })) } });

export const groupStats = (id: number) => get<GroupStats>(`/groups/${id}/stats`);

export async function copyGroup(id: number, copyKeys: CopyKeysMode): Promise<Group> {
  const res = await request<{ group: Group }>("POST", `/groups/${id}/copy`, { body: { copy_keys: copyKeys } });
  return (res.data as { group: Group }).group;
}

export const subGroups = (id: number) => get<SubGroup[]>(`/groups/${id}/sub-groups`);
export const addSubGroups = (id: number, members: { group_id: number; weight: number }[]) =>
  request<never>("POST", `/groups/${id}/sub-groups`, { body: { sub_groups: members } });
export const setSubGroupWeight = (id: number, subId: number, weight: number) =>
  request<never>("PUT", `/groups/${id}/sub-groups/${subId}/weight`, { body: { weight } });
export const removeSubGroup = (id: number, subId: number) => request<never>("DELETE", `/groups/${id}/sub-groups/${subId}`);
export const parentAggregates = (id: number) => get<ParentAggregate[]>(`/groups/${id}/parent-aggregate-groups`);
