// The Rust side of the app, through Tauri's invoke and events. Everything the UI asks of it goes through an
// `Api`, so tests can hand the app a fake one.

import { commands, events } from "./bindings/commands";

/**
 * The Rust side: its commands and event listeners, generated from the Rust signatures (src-tauri/src/bindings.rs),
 * with their documentation there. Tests hand the app a fake one.
 */
export type Api = typeof commands & typeof events;

export const tauriApi: Api = { ...commands, ...events };

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
