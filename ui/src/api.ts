// The Rust side of the app, through Tauri's invoke and events. Everything the UI asks of it goes through an
// `Api`, so tests can hand the app a fake one.

import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import type { HelperState } from "./bindings/HelperState";
import type { PacketBatch } from "./bindings/PacketBatch";
import type { ProfileSummary } from "./bindings/ProfileSummary";
import type { Snapshot } from "./bindings/Snapshot";
import type { TunnelStatus } from "./bindings/TunnelStatus";

export const SNAPSHOT_EVENT = "culvert://snapshot";
export const PACKETS_EVENT = "culvert://packets";

export type Unlisten = () => void;

export interface Api {
  helperState(): Promise<HelperState>;
  listProfiles(): Promise<ProfileSummary[]>;
  importProfile(fileName: string, text: string): Promise<ProfileSummary>;
  removeProfile(name: string): Promise<void>;
  exportProfile(name: string): Promise<string>;
  connect(name: string): Promise<TunnelStatus>;
  disconnect(name: string): Promise<void>;
  /** Starts sampling the packets of tunnel `name`, or stops with null. */
  watchPackets(name: string | null): Promise<void>;
  onSnapshot(handler: (s: Snapshot) => void): Promise<Unlisten>;
  onPackets(handler: (b: PacketBatch) => void): Promise<Unlisten>;
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
  onSnapshot: (handler) => listen<Snapshot>(SNAPSHOT_EVENT, (e) => handler(e.payload)),
  onPackets: (handler) => listen<PacketBatch>(PACKETS_EVENT, (e) => handler(e.payload)),
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
