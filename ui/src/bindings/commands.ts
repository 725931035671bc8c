// Generated from the desktop app's commands and events (src-tauri/src/bindings.rs) by `cargo test`:
// do not edit. Change the Rust signatures instead.

import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import type { Editable } from "./Editable";
import type { FormDraft } from "./FormDraft";
import type { FormError } from "./FormError";
import type { HelperState } from "./HelperState";
import type { KeyPair } from "./KeyPair";
import type { PacketBatch } from "./PacketBatch";
import type { ProfileSummary } from "./ProfileSummary";
import type { QrModules } from "./QrModules";
import type { Saved } from "./Saved";
import type { Settings } from "./Settings";
import type { SettingsView } from "./SettingsView";
import type { Snapshot } from "./Snapshot";
import type { TunnelStatus } from "./TunnelStatus";
import type { UsageReport } from "./UsageReport";

/** Every command of the Rust side, by the camelCase of its Rust name. */
export const commands = {
  /** Whether culvertd answers, and if not, why and what to do. */
  helperState: (): Promise<HelperState> => invoke("helper_state"),
  /** The stored profiles, by name; a file that is not a profile is listed with its problem. */
  listProfiles: (): Promise<Array<ProfileSummary>> => invoke("list_profiles"),
  /** Stores a profile from a file's name and text (the UI reads the file: a dialog or a drop). */
  importProfile: (fileName: string, text: string): Promise<ProfileSummary> => invoke("import_profile", { fileName, text }),
  /** Removes a stored profile and its keys. */
  removeProfile: (name: string): Promise<void> => invoke("remove_profile", { name }),
  /** The profile as a file to hand to someone: wg-quick for WireGuard (keys included), TOML for the others. */
  exportProfile: (name: string): Promise<string> => invoke("export_profile", { name }),
  /** A WireGuard profile as a QR code for the WireGuard mobile apps: its wg-quick file, keys included (the UI warns before it asks). */
  profileQr: (name: string): Promise<QrModules> => invoke("profile_qr", { name }),
  /** Brings the stored profile's tunnel up. */
  connect: (name: string): Promise<TunnelStatus> => invoke("connect", { name }),
  /** Takes the tunnel down. */
  disconnect: (name: string): Promise<void> => invoke("disconnect", { name }),
  /** Makes the stored profile a system tunnel of culvertd's ("Always on": up at boot and after a crash, with its keys kept root-only by culvertd), or stops that and brings it down. */
  setAlwaysOn: (name: string, on: boolean): Promise<void> => invoke("set_always_on", { name, on }),
  /** Turns lockdown on or off for the whole computer; answers whether it is on. */
  setLockdown: (on: boolean): Promise<boolean> => invoke("set_lockdown", { on }),
  /** Starts streaming `name`'s sampled packets to the UI (every packet: the helper bounds what it keeps), or stops when given no name. */
  watchPackets: (name: string | null): Promise<void> => invoke("watch_packets", { name }),
  /** Checks a form's draft with the CLI's and the helper's rules; nothing when it is a valid profile. */
  validateProfile: (name: string, draft: FormDraft, original: string | null): Promise<FormError | null> => invoke("validate_profile", { name, draft, original }),
  /** Saves a form's draft as profile `name`; `original` is the stored profile it edits (renamed when the name changed). Keys go to the keyring as on import. When this user's tunnel of that name is up, the saved profile is applied to it live (`culvert apply`), and what that did is in the answer. */
  saveProfile: (name: string, draft: FormDraft, original: string | null): Promise<Saved> => invoke("save_profile", { name, draft, original }),
  /** A stored profile's draft for its edit form, without secrets. */
  loadProfile: (name: string): Promise<Editable> => invoke("load_profile", { name }),
  /** A new WireGuard key pair for a form, as `culvert genkey` makes it. */
  generateKeypair: (): Promise<KeyPair> => invoke("generate_keypair"),
  /** The app's settings and whether it starts at login. */
  getSettings: (): Promise<SettingsView> => invoke("get_settings"),
  /** Saves the settings and adds or removes the autostart entry; answers with what is now true. */
  setSettings: (settings: Settings, startAtLogin: boolean): Promise<SettingsView> => invoke("set_settings", { settings, startAtLogin }),
  /** A tunnel's daily totals for the last `days` days, for the usage chart. */
  usage: (name: string, days: number): Promise<UsageReport> => invoke("usage", { name, days }),
  /** Every notice of this run so far: those sent before the page listened are only here. */
  notices: (): Promise<Array<string>> => invoke("notices"),
};

/** The Rust side's events, by name. */
export const EVENTS = {
  onSnapshot: "culvert://snapshot",
  onPackets: "culvert://packets",
  onNotice: "culvert://notice",
} as const;

/** A listener for each event: resolves with the function that stops it. */
export const events = {
  onSnapshot: (handler: (payload: Snapshot) => void): Promise<() => void> =>
    listen<Snapshot>("culvert://snapshot", (e) => handler(e.payload)),
  onPackets: (handler: (payload: PacketBatch) => void): Promise<() => void> =>
    listen<PacketBatch>("culvert://packets", (e) => handler(e.payload)),
  onNotice: (handler: (payload: string) => void): Promise<() => void> =>
    listen<string>("culvert://notice", (e) => handler(e.payload)),
};
