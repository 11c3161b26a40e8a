// The key table's page logic: one page of a group's keys from the server (status filter, exact
// search, page size remembered), the selection, revealed keys, notes, and every per-key, bulk and
// group-menu action with its notice. Call from a component's setup (it uses Naive's message and
// dialog providers).
import { computed, h, reactive, ref, watch } from "vue";
import { NInput, useDialog } from "naive-ui";
import {
  clearAllInvalid,
  clearAllKeys,
  deleteKeys,
  exportKeysUrl,
  listKeys,
  resetKeyCooldown,
  restoreAllInvalid,
  restoreKeys,
  setKeyNotes,
  setKeyStatus,
  testKeys,
  validateGroup,
} from "../../api/keys";
import type { ApiKey, Group, KeyStatus, Pagination } from "../../api/types";
import { t } from "../../i18n";
import { watchTask } from "../../stores/task";
import { copyText, download } from "../../utils/format";
import { maskKey, toggledStatus } from "../../utils/keys";
import { errorText, useNotify } from "../../utils/notify";

export const PAGE_SIZES = [20, 50, 100, 200, 500];

const PAGE_SIZE_STORAGE = "keys-page-size";

/** `props` are the component's props (read reactively); `onChanged` runs after every write. */
export function useKeyPage(props: { group: Group; refreshToken: number }, onChanged: () => void) {
  const notify = useNotify();
  const dialog = useDialog();

  const keys = ref<ApiKey[]>([]);
  const pagination = ref<Pagination>({ page: 1, page_size: 20, total_items: 0, total_pages: 0 });
  const query = reactive({
    status: "" as "" | KeyStatus,
    search: "",
    page: 1,
    pageSize: Number(localStorage.getItem(PAGE_SIZE_STORAGE)) || 20,
  });
  const loading = ref(false);
  const error = ref("");
  const revealed = ref(new Set<number>());
  const checked = ref<number[]>([]);
  const busyRow = ref<number | null>(null);
  const notesFor = ref<ApiKey | null>(null);
  const notesText = ref("");

  let requestSeq = 0;
  async function load(): Promise<void> {
    const seq = ++requestSeq;
    loading.value = true;
    try {
      const page = await listKeys({
        group_id: props.group.id,
        status: query.status || undefined,
        key_value: query.search.trim() || undefined,
        page: query.page,
        page_size: query.pageSize,
      });
      if (seq !== requestSeq) return;
      keys.value = page.items;
      pagination.value = page.pagination;
      error.value = "";
      checked.value = checked.value.filter((id) => page.items.some((k) => k.id === id));
    } catch (err) {
      if (seq !== requestSeq) return;
      keys.value = [];
      error.value = errorText(err);
    } finally {
      if (seq === requestSeq) loading.value = false;
    }
  }

  watch(
    () => props.group.id,
    () => {
      query.page = 1;
      query.search = "";
      query.status = "";
      checked.value = [];
      revealed.value = new Set();
      void load();
    },
    { immediate: true },
  );
  watch(() => props.refreshToken, load);

  function setStatus(status: "" | KeyStatus): void {
    query.status = status;
    query.page = 1;
    void load();
  }
  function search(): void {
    query.page = 1;
    void load();
  }
  function setPage(page: number): void {
    query.page = page;
    void load();
  }
  function setPageSize(size: number): void {
    query.pageSize = size;
    query.page = 1;
    localStorage.setItem(PAGE_SIZE_STORAGE, String(size));
    void load();
  }

  function changed(): void {
    void load();
    onChanged();
  }

  async function copy(text: string): Promise<void> {
    if (await copyText(text)) notify.ok(t("common.copied"));
  }

  function toggleReveal(id: number): void {
    const next = new Set(revealed.value);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    revealed.value = next;
  }

  async function testOne(key: ApiKey): Promise<void> {
    busyRow.value = key.id;
    try {
      const r = await testKeys(props.group.id, key.key_value);
      const result = r.results[0];
      if (result?.is_valid) notify.ok(t("keys.testOk", { ms: r.total_duration }));
      else notify.fail(new Error(t("keys.testFailed", { error: result?.error ?? "" })));
      void load();
    } catch (err) {
      notify.fail(err);
    } finally {
      busyRow.value = null;
    }
  }

  async function restoreOne(key: ApiKey): Promise<void> {
    busyRow.value = key.id;
    try {
      const r = await restoreKeys(props.group.id, key.key_value);
      notify.ok(t("keys.restored", { n: r.restored_count }));
      changed();
    } catch (err) {
      notify.fail(err);
    } finally {
      busyRow.value = null;
    }
  }

  async function toggleOne(key: ApiKey): Promise<void> {
    busyRow.value = key.id;
    try {
      notify.ok((await setKeyStatus(key.id, toggledStatus(key))).message);
      changed();
    } catch (err) {
      notify.fail(err);
    } finally {
      busyRow.value = null;
    }
  }

  async function resetCooldownOne(key: ApiKey): Promise<void> {
    busyRow.value = key.id;
    try {
      notify.ok((await resetKeyCooldown(key.id)).message);
      changed();
    } catch (err) {
      notify.fail(err);
    } finally {
      busyRow.value = null;
    }
  }

  function deleteOne(key: ApiKey): void {
    dialog.warning({
      title: t("keys.deleteOneTitle"),
      content: t("keys.deleteOneBody", { key: maskKey(key.key_value) }),
      positiveText: t("common.delete"),
      negativeText: t("common.cancel"),
      onPositiveClick: async () => {
        try {
          const r = await deleteKeys(props.group.id, key.key_value);
          notify.ok(t("task.deleteDone", { deleted: r.deleted_count, ignored: r.ignored_count }));
          changed();
        } catch (err) {
          notify.fail(err);
        }
      },
    });
  }

  function openNotes(key: ApiKey): void {
    notesFor.value = key;
    notesText.value = key.notes;
  }

  async function saveNotes(): Promise<boolean> {
    const key = notesFor.value;
    if (!key) return true;
    if ([...notesText.value.trim()].length > 255) {
      notify.fail(new Error(t("keys.notesTooLong")));
      return false;
    }
    try {
      await setKeyNotes(key.id, notesText.value.trim());
      key.notes = notesText.value.trim();
      notify.ok(t("keys.notesSaved"));
      notesFor.value = null;
      return true;
    } catch (err) {
      notify.fail(err);
      return false;
    }
  }

  const selectedText = computed(() =>
    keys.value
      .filter((k) => checked.value.includes(k.id))
      .map((k) => k.key_value)
      .join("\n"),
  );

  async function bulkSelected(action: "test" | "restore" | "delete"): Promise<void> {
    const text = selectedText.value;
    if (!text) return;
    try {
      if (action === "test") {
        const r = await testKeys(props.group.id, text);
        const ok = r.results.filter((x) => x.is_valid).length;
        notify.ok(t("keys.bulkTested", { ok, bad: r.results.length - ok, ms: r.total_duration }));
      } else if (action === "restore") {
        const r = await restoreKeys(props.group.id, text);
        notify.ok(t("keys.restored", { n: r.restored_count }));
      } else {
        const r = await deleteKeys(props.group.id, text);
        notify.ok(t("task.deleteDone", { deleted: r.deleted_count, ignored: r.ignored_count }));
      }
      checked.value = [];
      changed();
    } catch (err) {
      notify.fail(err);
    }
  }

  async function runMenu(key: string): Promise<void> {
    const [action, arg] = key.split(":");
    const groupId = props.group.id;
    try {
      switch (action) {
        case "export":
          download(exportKeysUrl(groupId, arg as "all" | KeyStatus));
          return;
        case "validate": {
          const status = await validateGroup(groupId, (arg || undefined) as KeyStatus | undefined);
          watchTask(status);
          notify.info(t("keys.validationStarted"));
          return;
        }
        case "restore-all": {
          const res = await restoreAllInvalid(groupId);
          notify.ok(res.message);
          changed();
          return;
        }
        case "clear-invalid":
          dialog.warning({
            title: t("keys.clearInvalid"),
            content: t("keys.clearInvalidBody"),
            positiveText: t("common.confirm"),
            negativeText: t("common.cancel"),
            onPositiveClick: async () => {
              try {
                notify.ok((await clearAllInvalid(groupId)).message);
                changed();
              } catch (err) {
                notify.fail(err);
              }
            },
          });
          return;
        case "clear-all":
          confirmClearAll();
          return;
      }
    } catch (err) {
      notify.fail(err);
    }
  }

  function confirmClearAll(): void {
    const typed = ref("");
    dialog.error({
      title: t("keys.clearAll"),
      content: () =>
        h("div", [
          h("p", { style: "margin: 0 0 10px" }, t("keys.clearAllBody", { name: props.group.name })),
          h(NInput, { value: typed.value, "onUpdate:value": (v: string) => (typed.value = v), placeholder: props.group.name }),
        ]),
      positiveText: t("common.delete"),
      negativeText: t("common.cancel"),
      onPositiveClick: async () => {
        if (typed.value !== props.group.name) {
          notify.fail(new Error(t("groupInfo.nameMismatch")));
          return false;
        }
        try {
          notify.ok((await clearAllKeys(props.group.id)).message);
          changed();
          return true;
        } catch (err) {
          notify.fail(err);
          return false;
        }
      },
    });
  }

  return {
    keys,
    pagination,
    query,
    loading,
    error,
    revealed,
    checked,
    busyRow,
    notesFor,
    notesText,
    load,
    setStatus,
    search,
    setPage,
    setPageSize,
    changed,
    copy,
    toggleReveal,
    testOne,
    restoreOne,
    toggleOne,
    resetCooldownOne,
    deleteOne,
    openNotes,
    saveNotes,
    bulkSelected,
    runMenu,
  };
}
