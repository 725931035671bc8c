// A fake Rust side for the app's tests: a profile store in memory, events fired by hand.
import { act } from "preact/test-utils";
import { vi } from "vitest";
import type { Api } from "../api";
import type { DayUsage } from "../bindings/DayUsage";
import type { Draft } from "../bindings/Draft";
import type { Editable } from "../bindings/Editable";
import type { FormError } from "../bindings/FormError";
import type { HelperState } from "../bindings/HelperState";
import type { KeyPair } from "../bindings/KeyPair";
import type { PacketBatch } from "../bindings/PacketBatch";
import type { ProfileSummary } from "../bindings/ProfileSummary";
import type { Settings } from "../bindings/Settings";
import type { SettingsView } from "../bindings/SettingsView";
import type { Saved } from "../bindings/Saved";
import type { Snapshot } from "../bindings/Snapshot";
import type { TunnelStatus } from "../bindings/TunnelStatus";
import type { UsageReport } from "../bindings/UsageReport";
import type { FormDraft } from "../bindings/FormDraft";
import { KEYPAIR, OK, profile, TODAY, tunnel } from "./fixtures";

export type Deferred<T> = { promise: Promise<T>; resolve(v: T): void; reject(e: unknown): void };

export function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * `profiles` are the stored profiles; `editables` what load_profile answers for them (a bare draft of the
 * profile's kind otherwise).
 */
export function fakeSide(profiles: ProfileSummary[], helper: HelperState = OK, editables: Record<string, Editable> = {}) {
  let onSnapshot: ((s: Snapshot) => void) | null = null;
  let onPackets: ((b: PacketBatch) => void) | null = null;
  let onNotice: ((message: string) => void) | null = null;
  const store = profiles.slice();
  /** What get_settings answers and set_settings changes; `usage` the days with traffic, by tunnel. */
  const state: {
    settings: SettingsView;
    usage: Record<string, DayUsage[]>;
    today: string;
    /** Notices sent before the page listened, as `notices` returns them. */
    earlyNotices: string[];
  } = {
    settings: { settings: { start_minimized: false, connect_on_launch: [], notifications: true }, start_at_login: false, tray: true },
    usage: {},
    today: TODAY,
    earlyNotices: [],
  };
  const api = {
    helperState: vi.fn(async () => helper),
    listProfiles: vi.fn(async () => store.slice().sort((a, b) => a.name.localeCompare(b.name))),
    importProfile: vi.fn(async (fileName: string, _text: string) => {
      const p = profile(fileName.replace(/\.(conf|toml)$/, ""), fileName.endsWith(".conf") ? "wireguard" : "udp");
      store.push(p);
      return p;
    }),
    removeProfile: vi.fn(async (name: string) => {
      store.splice(
        store.findIndex((p) => p.name === name),
        1,
      );
    }),
    exportProfile: vi.fn(async (name: string) => `[Interface]\nAddress = 10.8.0.1/24\n# ${name}\n`),
    // A 21-module code whose dark modules are the diagonal: enough to count what is drawn.
    profileQr: vi.fn(async (_name: string) => ({ size: 21, dark: Array.from({ length: 21 * 21 }, (_, i) => i % 22 === 0) })),
    connect: vi.fn(async (name: string): Promise<TunnelStatus> => tunnel({ name, state: "connecting" })),
    disconnect: vi.fn(async (_name: string) => undefined),
    setAlwaysOn: vi.fn(async (_name: string, _on: boolean) => undefined),
    setLockdown: vi.fn(async (on: boolean) => on),
    watchPackets: vi.fn(async (_name: string | null) => undefined),
    validateProfile: vi.fn(async (_name: string, _draft: FormDraft, _original: string | null): Promise<FormError | null> => null),
    saveProfile: vi.fn(async (name: string, draft: FormDraft, original: string | null): Promise<Saved> => {
      if (original !== null && original !== name) {
        const i = store.findIndex((p) => p.name === original);
        if (i >= 0) store.splice(i, 1);
      }
      const saved = profile(name, draft.kind as ProfileSummary["kind"]);
      const i = store.findIndex((p) => p.name === name);
      if (i >= 0) store[i] = saved;
      else store.push(saved);
      return { summary: saved, live: null };
    }),
    loadProfile: vi.fn(async (name: string): Promise<Editable> => {
      if (editables[name]) return structuredClone(editables[name]);
      const p = store.find((q) => q.name === name);
      if (!p) throw `there is no profile called ${name}`;
      // A bare draft, as no stored profile is: the form opens with the kind's fields empty.
      return { draft: { kind: p.kind ?? "udp" } as Draft, public_key: null };
    }),
    generateKeypair: vi.fn(async (): Promise<KeyPair> => ({ ...KEYPAIR })),
    getSettings: vi.fn(async (): Promise<SettingsView> => structuredClone(state.settings)),
    setSettings: vi.fn(async (settings: Settings, startAtLogin: boolean): Promise<SettingsView> => {
      state.settings = { ...state.settings, settings: structuredClone(settings), start_at_login: startAtLogin };
      return structuredClone(state.settings);
    }),
    usage: vi.fn(async (name: string, _days: number): Promise<UsageReport> => ({ name, today: state.today, days: structuredClone(state.usage[name] ?? []) })),
    onSnapshot: vi.fn(async (h: (s: Snapshot) => void) => {
      onSnapshot = h;
      return () => (onSnapshot = null);
    }),
    onPackets: vi.fn(async (h: (b: PacketBatch) => void) => {
      onPackets = h;
      return () => (onPackets = null);
    }),
    onNotice: vi.fn(async (h: (message: string) => void) => {
      onNotice = h;
      return () => (onNotice = null);
    }),
    notices: vi.fn(async () => [...state.earlyNotices]),
  } satisfies Api;
  return {
    api,
    store,
    async snapshot(s: Snapshot) {
      await act(async () => onSnapshot?.(s));
    },
    async packets(b: PacketBatch) {
      await act(async () => onPackets?.(b));
    },
    state,
    async notice(message: string) {
      await act(async () => onNotice?.(message));
    },
  };
}

export type FakeSide = ReturnType<typeof fakeSide>;
