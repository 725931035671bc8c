import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { errorText, type Api } from "./api";
import type { HelperState } from "./bindings/HelperState";
import type { ProfileSummary } from "./bindings/ProfileSummary";
import type { Snapshot } from "./bindings/Snapshot";
import type { TunnelStatus } from "./bindings/TunnelStatus";
import { Detail, type Tab } from "./components/Detail";
import { ErrorBanner } from "./components/ErrorBanner";
import { ProfileForm, type FormMode } from "./components/ProfileForm";
import { SettingsDialog } from "./components/SettingsDialog";
import { Sidebar, type Busy, type Row } from "./components/Sidebar";
import { TopBar } from "./components/TopBar";
import { exportFileName, saveText } from "./download";
import { defaultForm, formFromDraft, type FormState } from "./forms";
import { addBatch, clearRows, emptyPacketList, setFilter, setPaused, type PacketList } from "./packets";
import { SeriesBook } from "./series";
import { hasPacketView, PENDING_MS, profileState, withPending, type Pending } from "./state";

export type AppProps = {
  api: Api;
  /** Where exported profiles go; a download link by default. */
  save?: (fileName: string, text: string) => void;
};

const SELECTED_KEY = "culvert.selected";
/** A profile is a small text file; anything bigger was dropped by mistake. */
const MAX_IMPORT_BYTES = 1_000_000;

function readSelected(): string | null {
  try {
    return localStorage.getItem(SELECTED_KEY);
  } catch {
    return null;
  }
}

function writeSelected(name: string | null) {
  try {
    if (name === null) localStorage.removeItem(SELECTED_KEY);
    else localStorage.setItem(SELECTED_KEY, name);
  } catch {
    // private mode or no storage: the selection is simply not remembered
  }
}

/** The profile form, open in the main panel. */
type OpenForm = {
  mode: FormMode;
  /** The stored profile being edited, or null for a new one. */
  original: string | null;
  /** The profile a duplicate was made from. */
  source: string | null;
  initial: FormState;
  /** Tells one opening of the form from the next, so each starts afresh. */
  seq: number;
};

function hasFiles(e: DragEvent): boolean {
  return !!e.dataTransfer && Array.from(e.dataTransfer.types ?? []).includes("Files");
}

export function App({ api, save }: AppProps) {
  const [helper, setHelper] = useState<HelperState | null>(null);
  const [snapshot, setSnapshot] = useState<Snapshot | null>(null);
  // When the latest snapshot arrived, by Date.now(): its own `at_ms` is the app's monotonic clock.
  const [receivedMs, setReceivedMs] = useState(-Infinity);
  const [profiles, setProfiles] = useState<ProfileSummary[] | null>(null);
  const [selected, setSelectedState] = useState<string | null>(readSelected);
  const [busy, setBusy] = useState<Record<string, Busy | undefined>>({});
  const [pending, setPending] = useState<ReadonlyMap<string, Pending>>(() => new Map());
  const [error, setError] = useState<string | null>(null);
  const [tab, setTab] = useState<Tab>("overview");
  const [packets, setPackets] = useState<PacketList>(emptyPacketList);
  const [confirmRemove, setConfirmRemove] = useState<string | null>(null);
  const [dropping, setDropping] = useState(false);
  const [form, setForm] = useState<OpenForm | null>(null);
  const [settingsOpen, setSettingsOpen] = useState(false);

  const seriesBook = useRef(new SeriesBook());
  const fileInput = useRef<HTMLInputElement>(null);
  const downloads = useRef<HTMLDivElement>(null);
  const snapshotSeen = useRef(false);
  const watching = useRef<string | null>(null);
  const watchChain = useRef<Promise<void>>(Promise.resolve());
  const busyNow = useRef<Record<string, Busy | undefined>>({});
  const formSeq = useRef(0);
  const formDirty = useRef(false);
  const settingsButton = useRef<HTMLButtonElement>(null);
  const settingsWasOpen = useRef(false);
  const settingsOpenNow = useRef(false);
  settingsOpenNow.current = settingsOpen;

  const showError = useCallback((e: unknown) => setError(errorText(e)), []);
  // Notices come unasked and may come several at once (one per profile that failed to connect on launch): each
  // is added to what the banner shows rather than replacing it.
  const showNotice = useCallback((message: string) => {
    setError((shown) => (!shown ? message : shown.split("\n").includes(message) ? shown : `${shown}\n${message}`));
  }, []);

  const select = useCallback((name: string | null) => {
    setSelectedState(name);
    writeSelected(name);
  }, []);

  const refreshProfiles = useCallback(async (): Promise<ProfileSummary[] | null> => {
    try {
      const list = await api.listProfiles();
      setProfiles(list);
      return list;
    } catch (e) {
      showError(e);
      setProfiles((p) => p ?? []);
      return null;
    }
  }, [api, showError]);

  // Events, and the first look at the helper and the profile store.
  useEffect(() => {
    let alive = true;
    const subscriptions = [
      api.onSnapshot((s) => {
        if (!alive) return;
        snapshotSeen.current = true;
        seriesBook.current.feed(s.at_ms, s.tunnels);
        setSnapshot(s);
        setReceivedMs(Date.now());
        setHelper(s.helper);
      }),
      api.onPackets((batch) => {
        if (!alive || batch.name !== watching.current) return;
        setPackets((list) => addBatch(list, batch));
      }),
      api.onNotice((message) => alive && showNotice(message)),
    ];
    for (const s of subscriptions) s.catch((e) => alive && showError(e));
    // Notices sent before the listener above was in place (connect on launch starts at once).
    subscriptions[2]
      .then(() => api.notices())
      .then((early) => alive && early.forEach(showNotice), () => undefined);
    api.helperState().then(
      (h) => alive && !snapshotSeen.current && setHelper(h),
      (e) => alive && showError(e),
    );
    void refreshProfiles();
    // Profiles may change behind the app's back (culvert import, culvert rm): look again on focus.
    const onFocus = () => void refreshProfiles();
    window.addEventListener("focus", onFocus);
    return () => {
      alive = false;
      window.removeEventListener("focus", onFocus);
      for (const s of subscriptions) s.then((unlisten) => unlisten(), () => undefined);
    };
  }, [api, refreshProfiles, showError, showNotice]);

  // What each row shows: the snapshot's tunnels, with the answers of calls that snapshots have not caught up with.
  const tunnels: TunnelStatus[] = useMemo(
    () => withPending(snapshot?.tunnels ?? [], receivedMs, pending, Date.now()),
    [snapshot, receivedMs, pending],
  );
  // Handshake ages and uptimes are wall-clock times (Unix seconds): measure them against Date.now(). The
  // snapshots re-render the window every second, which keeps them current.
  const nowMs = Date.now();
  const view = { tunnels };
  const rows: Row[] = (profiles ?? []).map((p) => {
    const state = profileState(p, view, nowMs);
    return { name: p.name, profile: p, kind: p.kind ?? state.tunnel?.kind ?? null, state };
  });
  const stored = new Set(rows.map((r) => r.name));
  const unstored: Row[] = tunnels
    .filter((t) => !stored.has(t.name))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((t) => ({ name: t.name, profile: null, kind: t.kind, state: profileState(t, view, nowMs) }));
  const allRows = rows.concat(unstored);
  const current = allRows.find((r) => r.name === selected) ?? null;
  const helperOk = helper === null || helper.kind === "ok";

  // Keep a selection once the list is known: the remembered one if it still exists, else the first row.
  const names = allRows.map((r) => r.name).join("\n");
  useEffect(() => {
    if (profiles === null) return;
    if (selected !== null && allRows.some((r) => r.name === selected)) return;
    select(allRows.length ? allRows[0].name : null);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [names, profiles === null]);

  // Series of profiles that are gone (and of tunnels no longer up) need not be kept.
  useEffect(() => {
    seriesBook.current.retain(new Set([...stored, ...tunnels.map((t) => t.name)]));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [names]);

  // The packet view: watch the selected tunnel while the Packets tab is open on a tunnel whose packets
  // pass through culvertd; stop when the tab closes (or the profile form covers it), the selection changes or
  // the tunnel goes down. Calls are chained so that a stop never overtakes the start that follows it.
  const watchName =
    tab === "packets" && !form && current && current.state.tunnel && hasPacketView(current.kind) && helperOk ? current.name : null;
  const setWatch = useCallback(
    (name: string | null) => {
      watchChain.current = watchChain.current.then(() => api.watchPackets(name)).catch(showError);
    },
    [api, showError],
  );
  useEffect(() => {
    if (watchName === null) return;
    watching.current = watchName;
    setPackets((list) => ({ ...emptyPacketList(), filter: list.filter }));
    setWatch(watchName);
    return () => {
      watching.current = null;
      setWatch(null);
    };
  }, [watchName, setWatch]);

  const setRowBusy = (name: string, b: Busy | undefined) => {
    busyNow.current = { ...busyNow.current, [name]: b };
    if (b === undefined) delete busyNow.current[name];
    setBusy(busyNow.current);
  };

  const addPending = (name: string, tunnel: TunnelStatus | null) => {
    const since = Date.now();
    setPending((m) => new Map(m).set(name, { tunnel, since_ms: since }));
    setTimeout(() => {
      setPending((m) => {
        if (m.get(name)?.since_ms !== since) return m;
        const next = new Map(m);
        next.delete(name);
        return next;
      });
    }, PENDING_MS + 50);
  };

  /** Runs `work` for row `name` unless the row is busy already: marked busy meanwhile, a failure shown. */
  const rowAction = async (name: string, busy: Busy, work: () => Promise<void>) => {
    if (busyNow.current[name]) return;
    setRowBusy(name, busy);
    try {
      await work();
    } catch (e) {
      showError(e);
    } finally {
      setRowBusy(name, undefined);
    }
  };

  const toggle = async (name: string) => {
    const row = allRows.find((r) => r.name === name);
    if (!row) return;
    const up = row.state.state !== "down";
    await rowAction(name, up ? "disconnect" : "connect", async () => {
      if (up) {
        await api.disconnect(name);
        addPending(name, null);
      } else {
        addPending(name, await api.connect(name));
      }
    });
  };

  const exportProfile = (name: string) =>
    rowAction(name, "export", async () => {
      const row = allRows.find((r) => r.name === name);
      const text = await api.exportProfile(name);
      const fileName = exportFileName(name, row?.kind ?? null, text);
      if (save) save(fileName, text);
      else saveText(fileName, text, downloads.current ?? document.body);
    });

  const removeProfile = (name: string) => {
    const i = rows.findIndex((r) => r.name === name);
    const neighbour = rows[i + 1]?.name ?? rows[i - 1]?.name ?? null;
    return rowAction(name, "remove", async () => {
      await api.removeProfile(name);
      setConfirmRemove(null);
      if (selected === name) select(neighbour);
      setForm((f) => (f?.original === name ? null : f));
      await refreshProfiles();
    });
  };

  const openForm = (f: Omit<OpenForm, "seq">) => {
    formDirty.current = false;
    formSeq.current += 1;
    setForm({ ...f, seq: formSeq.current });
  };

  const closeForm = () => {
    formDirty.current = false;
    setForm(null);
  };

  const newProfile = () => openForm({ mode: "new", original: null, source: null, initial: defaultForm() });

  // Edit opens the stored profile (without its secrets) as it is; Duplicate opens it as a new profile named
  // "<name>-copy", which needs keys of its own.
  const loadForm = (name: string, mode: "edit" | "duplicate") =>
    rowAction(name, mode, async () => {
      const editable = await api.loadProfile(name);
      if (mode === "edit") {
        openForm({ mode, original: name, source: null, initial: formFromDraft(name, editable.draft, editable.public_key) });
      } else {
        openForm({ mode, original: null, source: name, initial: formFromDraft(`${name}-copy`, editable.draft, null) });
      }
      select(name);
    });

  // Select the saved profile before the list that holds it arrives, so the list's arrival keeps it selected
  // (after a rename, the old name is gone from it); the form stays until then.
  const formSaved = async (summary: ProfileSummary) => {
    select(summary.name);
    await refreshProfiles();
    closeForm();
  };

  const importFiles = async (files: File[]) => {
    const errors: string[] = [];
    let last: string | null = null;
    for (const file of files) {
      try {
        if (file.size > MAX_IMPORT_BYTES) {
          throw `${file.name}: ${Math.round(file.size / 1000)} kB is too large for a profile; import a wg-quick .conf or a Culvert .toml file`;
        }
        const summary = await api.importProfile(file.name, await file.text());
        last = summary.name;
      } catch (e) {
        errors.push(errorText(e));
      }
    }
    if (last !== null || files.length) await refreshProfiles();
    if (last !== null) select(last);
    if (errors.length) setError(errors.join("\n"));
  };
  const importRef = useRef(importFiles);
  importRef.current = importFiles;

  const openImport = () => fileInput.current?.click();

  // Files dropped anywhere on the window are imported.
  useEffect(() => {
    let depth = 0;
    const enter = (e: DragEvent) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth += 1;
      setDropping(true);
    };
    const over = (e: DragEvent) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
    };
    const leave = (e: DragEvent) => {
      if (!hasFiles(e)) return;
      depth = Math.max(0, depth - 1);
      if (depth === 0) setDropping(false);
    };
    const drop = (e: DragEvent) => {
      e.preventDefault();
      depth = 0;
      setDropping(false);
      const files = Array.from(e.dataTransfer?.files ?? []);
      if (files.length) void importRef.current(files);
    };
    document.addEventListener("dragenter", enter);
    document.addEventListener("dragover", over);
    document.addEventListener("dragleave", leave);
    document.addEventListener("drop", drop);
    return () => {
      document.removeEventListener("dragenter", enter);
      document.removeEventListener("dragover", over);
      document.removeEventListener("dragleave", leave);
      document.removeEventListener("drop", drop);
    };
  }, []);

  // Ctrl+O imports; Escape backs out of a pending remove. The settings dialog, while open, has the keyboard.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (settingsOpenNow.current) return;
      if ((e.ctrlKey || e.metaKey) && !e.shiftKey && !e.altKey && e.key.toLowerCase() === "o") {
        e.preventDefault();
        fileInput.current?.click();
      } else if (e.key === "Escape") {
        setConfirmRemove(null);
      }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, []);

  // Focus goes back to the settings button when the dialog closes, once the window behind is no longer inert.
  useEffect(() => {
    if (settingsOpen) settingsWasOpen.current = true;
    else if (settingsWasOpen.current) {
      settingsWasOpen.current = false;
      settingsButton.current?.focus();
    }
  }, [settingsOpen]);

  const onFormDirty = useCallback((dirty: boolean) => {
    formDirty.current = dirty;
  }, []);

  const series = current?.state.tunnel ? seriesBook.current.get(current.name) : null;

  return (
    <>
      <div class={`app${dropping ? " dropping" : ""}`} inert={settingsOpen}>
        <TopBar
          helper={helper}
          health={snapshot?.health ?? null}
          settingsOpen={settingsOpen}
          onSettings={() => setSettingsOpen(true)}
          settingsButton={settingsButton}
        />
        <ErrorBanner message={error} onDismiss={() => setError(null)} />
        <div class="body">
          <Sidebar
            rows={rows}
            unstored={unstored}
            loading={profiles === null}
            selected={selected}
            busy={busy}
            confirmRemove={confirmRemove}
            connectBlocked={helperOk ? null : (helper?.message ?? null)}
            onSelect={(name) => {
              if (name !== selected) select(name);
              // Looking at another profile leaves a form that holds nothing typed yet.
              if (form && !formDirty.current && name !== (form.original ?? form.source)) closeForm();
            }}
            onToggle={(name) => void toggle(name)}
            onExport={(name) => void exportProfile(name)}
            onAskRemove={setConfirmRemove}
            onRemove={(name) => void removeProfile(name)}
            onImport={openImport}
            onNew={newProfile}
            onEdit={(name) => void loadForm(name, "edit")}
            onDuplicate={(name) => void loadForm(name, "duplicate")}
          />
          {form ? (
            <ProfileForm
              key={form.seq}
              api={api}
              mode={form.mode}
              original={form.original}
              source={form.source}
              initial={form.initial}
              stored={(profiles ?? []).map((p) => p.name)}
              running={form.original !== null && tunnels.some((t) => t.name === form.original)}
              onSaved={(summary) => void formSaved(summary)}
              onCancel={closeForm}
              onDirty={onFormDirty}
            />
          ) : (
            <Detail
              api={api}
              row={current}
              helper={helper}
              nowMs={nowMs}
              series={series}
              version={snapshot?.at_ms ?? 0}
              tab={tab}
              onTab={setTab}
              packets={packets}
              onPause={(p) => setPackets((l) => setPaused(l, p))}
              onFilter={(f) => setPackets((l) => setFilter(l, f))}
              onClear={() => setPackets(clearRows)}
              onImport={openImport}
              onNew={newProfile}
            />
          )}
        </div>
        <input
          type="file"
          id="import-file"
          accept=".conf,.toml"
          multiple
          hidden
          ref={fileInput}
          onChange={(e) => {
            const input = e.currentTarget;
            const files = Array.from(input.files ?? []);
            input.value = "";
            if (files.length) void importFiles(files);
          }}
        />
        <div id="downloads" ref={downloads} hidden />
        {dropping ? (
          <div class="drop-overlay" aria-hidden="true">
            <div class="drop-card">Drop .conf or .toml files to import them</div>
          </div>
        ) : null}
      </div>
      {settingsOpen ? (
        <SettingsDialog api={api} profiles={(profiles ?? []).map((p) => p.name)} onClose={() => setSettingsOpen(false)} />
      ) : null}
    </>
  );
}
