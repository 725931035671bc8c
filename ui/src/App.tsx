import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { errorText, type Api } from "./api";
import type { Saved } from "./bindings/Saved";
import type { TunnelStatus } from "./bindings/TunnelStatus";
import { Detail, type Tab } from "./components/Detail";
import { ErrorBanner, InfoBanner } from "./components/ErrorBanner";
import { ProfileForm } from "./components/ProfileForm";
import { QrDialog } from "./components/QrDialog";
import { SettingsDialog } from "./components/SettingsDialog";
import { Sidebar, type Row } from "./components/Sidebar";
import { TopBar } from "./components/TopBar";
import { exportFileName, saveText } from "./download";
import { defaultForm, formFromDraft } from "./forms";
import { useBanners } from "./hooks/banners";
import { useFileDrop } from "./hooks/fileDrop";
import { useHelperLink } from "./hooks/helperLink";
import { usePacketWatch } from "./hooks/packetWatch";
import { useProfileForm } from "./hooks/profileForm";
import { useProfiles } from "./hooks/profiles";
import { useRowActions } from "./hooks/rowActions";
import { useSelection } from "./hooks/selection";
import { clearRows, setFilter, setPaused } from "./packets";
import { hasPacketView, profileState, switchShows, withPending, type PendingSwitch } from "./state";

/**
 * The window: each concern is a hook of its own (`hooks/`: the helper's link, the profiles, the selection, the
 * rows' actions, the form, the packet watch, dropped files, the banners), and this puts them together.
 */
export type AppProps = {
  api: Api;
  /** Where exported profiles go; a download link by default. */
  save?: (fileName: string, text: string) => void;
};

/** A profile is a small text file; anything bigger was dropped by mistake. */
const MAX_IMPORT_BYTES = 1_000_000;

export function App({ api, save }: AppProps) {
  const { error, setError, info, setInfo, showError, showNotice } = useBanners();
  const { helper, snapshot, receivedMs, seriesBook } = useHelperLink(api, showError, showNotice);
  const { profiles, refreshProfiles } = useProfiles(api, showError);
  const { selected, select } = useSelection();
  const { busy, pending, addPending, rowAction } = useRowActions(showError);
  const { form, setForm, openForm, closeForm, dirty: formDirty, onDirty: onFormDirty } = useProfileForm();
  const [tab, setTab] = useState<Tab>("overview");
  const [confirmRemove, setConfirmRemove] = useState<string | null>(null);
  const [settingsOpen, setSettingsOpen] = useState(false);
  /** The profile whose QR code dialog is open. */
  const [qrFor, setQrFor] = useState<string | null>(null);
  /** culvertd's switches as calls just set them (`always:NAME`, `lockdown`), until the snapshots agree. */
  const [switches, setSwitches] = useState<Record<string, PendingSwitch>>({});

  const fileInput = useRef<HTMLInputElement>(null);
  const downloads = useRef<HTMLDivElement>(null);
  const settingsButton = useRef<HTMLButtonElement>(null);
  const settingsWasOpen = useRef(false);
  const settingsOpenNow = useRef(false);
  settingsOpenNow.current = settingsOpen;

  // What each row shows: the snapshot's tunnels, with the answers of calls that snapshots have not caught up with.
  const tunnels: TunnelStatus[] = useMemo(
    () => withPending(snapshot?.tunnels ?? [], receivedMs, pending, Date.now()),
    [snapshot, receivedMs, pending],
  );
  // Handshake ages and uptimes are wall-clock times (Unix seconds): measure them against Date.now(). The
  // snapshots re-render the window every second, which keeps them current.
  const nowMs = Date.now();
  const view = { tunnels };
  const systemTunnels = snapshot?.system_tunnels ?? [];
  const extras = (name: string, tunnel: TunnelStatus | null) => {
    const system = systemTunnels.find((t) => t.name === name);
    return {
      alwaysOn: switchShows(system !== undefined, switches[`always:${name}`], receivedMs, nowMs),
      killSwitch: (tunnel?.kill_switch ?? false) || (system?.kill_switch ?? false),
    };
  };
  const rows: Row[] = (profiles ?? []).map((p) => {
    const state = profileState(p, view, nowMs);
    return { name: p.name, profile: p, kind: p.kind ?? state.tunnel?.kind ?? null, state, ...extras(p.name, state.tunnel) };
  });
  const stored = new Set(rows.map((r) => r.name));
  const unstored: Row[] = tunnels
    .filter((t) => !stored.has(t.name))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((t) => ({ name: t.name, profile: null, kind: t.kind, state: profileState(t, view, nowMs), ...extras(t.name, t) }));
  const allRows = rows.concat(unstored);
  const current = allRows.find((r) => r.name === selected) ?? null;
  const helperOk = helper === null || helper.kind === "ok";
  // Lockdown is culvertd's to say: unknown while it cannot be asked.
  const lockdown = snapshot && snapshot.helper.kind === "ok" ? switchShows(snapshot.lockdown, switches.lockdown, receivedMs, nowMs) : null;
  const switched = (key: string, on: boolean) => setSwitches((s) => ({ ...s, [key]: { on, since_ms: Date.now() } }));

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
    seriesBook.retain(new Set([...stored, ...tunnels.map((t) => t.name)]));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [names]);

  // The packet view: watch the selected tunnel while the Packets tab is open on a tunnel whose packets
  // pass through culvertd; stop when the tab closes (or the profile form covers it), the selection changes or
  // the tunnel goes down.
  const watchName =
    tab === "packets" && !form && current && current.state.tunnel && hasPacketView(current.kind) && helperOk ? current.name : null;
  const { packets, setPackets } = usePacketWatch(api, watchName, showError);

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

  // Always on makes the profile a system tunnel (culvertd brings it up now); off, culvertd forgets it and
  // brings it down.
  const setAlwaysOn = (name: string, on: boolean) =>
    rowAction(name, "always-on", async () => {
      await api.setAlwaysOn(name, on);
      switched(`always:${name}`, on);
      if (!on) addPending(name, null);
    });

  const setLockdown = async (on: boolean) => switched("lockdown", await api.setLockdown(on));

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
  const formSaved = async ({ summary, live }: Saved) => {
    select(summary.name);
    await refreshProfiles();
    closeForm();
    if (live?.applied) setInfo(live.message);
    else if (live) setError(live.message);
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
  const openImport = () => fileInput.current?.click();
  const dropping = useFileDrop((files) => void importFiles(files));

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

  const series = current?.state.tunnel ? seriesBook.get(current.name) : null;

  return (
    <>
      <div class={`app${dropping ? " dropping" : ""}`} inert={settingsOpen}>
        <TopBar
          helper={helper}
          health={snapshot?.health ?? null}
          lockdown={lockdown === true}
          settingsOpen={settingsOpen}
          onSettings={() => setSettingsOpen(true)}
          settingsButton={settingsButton}
        />
        <ErrorBanner message={error} onDismiss={() => setError(null)} />
        <InfoBanner message={info} onDismiss={() => setInfo(null)} />
        <div class="body">
          <Sidebar
            rows={rows}
            unstored={unstored}
            others={snapshot?.others ?? []}
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
            onQr={setQrFor}
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
              alwaysOnBusy={current !== null && busy[current.name] === "always-on"}
              onAlwaysOn={(on) => current && void setAlwaysOn(current.name, on)}
            />
          )}
        </div>
        <input
          type="file"
          id="import-file"
          accept=".conf,.toml,.nmconnection"
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
            <div class="drop-card">Drop .conf, .nmconnection or .toml files to import them</div>
          </div>
        ) : null}
      </div>
      {qrFor ? <QrDialog api={api} name={qrFor} onClose={() => setQrFor(null)} /> : null}
      {settingsOpen ? (
        <SettingsDialog
          api={api}
          profiles={(profiles ?? []).map((p) => p.name)}
          lockdown={lockdown}
          onLockdown={setLockdown}
          onClose={() => setSettingsOpen(false)}
        />
      ) : null}
    </>
  );
}
