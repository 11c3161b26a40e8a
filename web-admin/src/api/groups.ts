// Groups and aggregate membership (reference §4.4, §4.5).

import { get, post, put, request } from "./http";
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

export const createGroup = (input: GroupInput) => post<Group>("/groups", input);

export const updateGroup = (id: number, input: GroupInput) => put<Group>(`/groups/${id}`, input);

export const deleteGroup = (id: number) => request<never>("DELETE", `/groups/${id}`);

/** Persists the order; GPT-Load's UI sends `sort = position × 10`. */
export const reorderGroups = (ids: number[]) =>
  request<never>("PUT", "/groups/reorder", { body: { items: ids.map((id, i) => ({ id, sort: (i + 1) * 10 })) } });

export const groupStats = (id: number) => get<GroupStats>(`/groups/${id}/stats`);

export async function copyGroup(id: number, copyKeys: CopyKeysMode): Promise<Group> {
  return (await post<{ group: Group }>(`/groups/${id}/copy`, { copy_keys: copyKeys })).group;
}

export const subGroups = (id: number) => get<SubGroup[]>(`/groups/${id}/sub-groups`);
export const addSubGroups = (id: number, members: { group_id: number; weight: number }[]) =>
  request<never>("POST", `/groups/${id}/sub-groups`, { body: { sub_groups: members } });
export const setSubGroupWeight = (id: number, subId: number, weight: number) =>
  request<never>("PUT", `/groups/${id}/sub-groups/${subId}/weight`, { body: { weight } });
export const removeSubGroup = (id: number, subId: number) => request<never>("DELETE", `/groups/${id}/sub-groups/${subId}`);
export const parentAggregates = (id: number) => get<ParentAggregate[]>(`/groups/${id}/parent-aggregate-groups`);
