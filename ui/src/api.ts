// The Rust side of the app, through Tauri's invoke and events. Everything the UI asks of it goes through an
// `Api`, so tests can hand the app a fake one.

import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import type { Editable } from "./bindings/Editable";
import type { FormError } from "./bindings/FormError";
import type { HelperState } from "./bindings/HelperState";
import type { KeyPair } from "./bindings/KeyPair";
import type { PacketBatch } from "./bindings/PacketBatch";
import type { ProfileSummary } from "./bindings/ProfileSummary";
import type { Settings } from "./bindings/Settings";
import type { SettingsView } from "./bindings/SettingsView";
import type { Snapshot } from "./bindings/Snapshot";
import type { TunnelStatus } from "./bindings/TunnelStatus";
import type { UsageReport } from "./bindings/UsageReport";
import type { Draft } from "./forms";

export const SNAPSHOT_EVENT = "culvert://snapshot";
export const PACKETS_EVENT = "culvert://packets";
export const NOTICE_EVENT = "culvert://notice";

export type Unlisten = () => void;

export interface Api {
  helperState(): Promise<HelperState>;
  listProfiles(): Promise<ProfileSummary[]>;
  importProfile(fileName: string, text: string): Promise<ProfileSummary>;
  removeProfile(name: string): Promise<void>;
  exportProfile(name: string): Promise<string>;
  connect(name: string): Promise<TunnelStatus>;
  disconnect(name: string): Promise<void>;
  /**
   * Checks a form's draft (the profile's TOML table as JSON) with the CLI's and the helper's rules: null when
   * it is a valid profile. `original` is the stored profile being edited, or null for a new one.
   */
  validateProfile(name: string, draft: Draft, original: string | null): Promise<FormError | null>;
  /** Stores a form's draft as profile `name`, renaming `original` when the name changed. */
  saveProfile(name: string, draft: Draft, original: string | null): Promise<ProfileSummary>;
  /** A stored profile's draft for its form, without secrets, and its WireGuard public key. */
  loadProfile(name: string): Promise<Editable>;
  generateKeypair(): Promise<KeyPair>;
  /** Starts sampling the packets of tunnel `name`, or stops with null. */
  watchPackets(name: string | null): Promise<void>;
  getSettings(): Promise<SettingsView>;
  /**
   * Saves the app's settings and whether it starts at login; answers with what is now true. Rejects with what
   * failed (the settings file may be saved even when the login entry could not be changed).
   */
  setSettings(settings: Settings, startAtLogin: boolean): Promise<SettingsView>;
  /** `name`'s daily totals for the `days` days ending today (only the days with traffic). */
  usage(name: string, days: number): Promise<UsageReport>;
  onSnapshot(handler: (s: Snapshot) => void): Promise<Unlisten>;
  onPackets(handler: (b: PacketBatch) => void): Promise<Unlisten>;
  /** Messages for the user from the Rust side's own work, such as a profile that failed to connect on launch. */
  onNotice(handler: (message: string) => void): Promise<Unlisten>;
  /** Every notice of this run so far: those sent before the page listened are only here. */
  notices(): Promise<string[]>;
}

export const tauriApi: Api = {
  helperState: () => invoke<HelperState>("helper_state"),
  listProfiles: () => invoke<ProfileSummary[]>("list_profiles"),
  importProfile: (fileName, text) => invoke<ProfileSummary>("import_profile", { fileName, text }),
  removeProfile: (name) => invoke<void>("remove_profile", { name }),
  exportProfile: (name) => invoke<string>("export_profile", { name }),
  connect: (name) => invoke<TunnelStatus>("connect", { name }),
  disconnect: (name) => invoke<void>("disconnect", { name }),
  watchPackets: (name) => invoke<void>("watch_packets", { name }),
  validateProfile: (name, draft, original) => invoke<FormError | null>("validate_profile", { name, draft, original }),
  saveProfile: (name, draft, original) => invoke<ProfileSummary>("save_profile", { name, draft, original }),
  loadProfile: (name) => invoke<Editable>("load_profile", { name }),
  generateKeypair: () => invoke<KeyPair>("generate_keypair"),
  getSettings: () => invoke<SettingsView>("get_settings"),
  setSettings: (settings, startAtLogin) => invoke<SettingsView>("set_settings", { settings, startAtLogin }),
  usage: (name, days) => invoke<UsageReport>("usage", { name, days }),
  onSnapshot: (handler) => listen<Snapshot>(SNAPSHOT_EVENT, (e) => handler(e.payload)),
  onPackets: (handler) => listen<PacketBatch>(PACKETS_EVENT, (e) => handler(e.payload)),
  onNotice: (handler) => listen<string>(NOTICE_EVENT, (e) => handler(e.payload)),
  notices: () => invoke<string[]>("notices"),
};

/** The text of a failed call, as is: the Rust side's errors are strings that say what to fix. */
export function errorText(err: unknown): string {
  if (typeof err === "string") return err;
  if (err instanceof Error) return err.message;
  if (err && typeof err === "object" && "message" in err && typeof err.message === "string") return err.message;
  try {
    return JSON.stringify(err);
  } catch {
    return String(err);
  }
}
