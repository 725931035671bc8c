// The settings dialog's logic, apart from its markup.

import type { SettingsView } from "./bindings/SettingsView";

/**
 * The launch list after `name` is switched on or off: the checked profiles in the sidebar's order. Names that
 * are no longer stored profiles drop out, so the list never asks the app to bring up what is gone.
 */
export function launchList(stored: readonly string[], current: readonly string[], name: string, on: boolean): string[] {
  const wanted = new Set(current);
  if (on) wanted.add(name);
  else wanted.delete(name);
  return stored.filter((n) => wanted.has(n));
}

/** A change the user made in the dialog, applied to whatever is true when its turn to be saved comes. */
export type SettingsChange = (view: SettingsView) => SettingsView;

export const setStartMinimized =
  (on: boolean): SettingsChange =>
  (v) => ({ ...v, settings: { ...v.settings, start_minimized: on } });

export const setNotifications =
  (on: boolean): SettingsChange =>
  (v) => ({ ...v, settings: { ...v.settings, notifications: on } });

export const setStartAtLogin =
  (on: boolean): SettingsChange =>
  (v) => ({ ...v, start_at_login: on });

export const setLaunch =
  (stored: readonly string[], name: string, on: boolean): SettingsChange =>
  (v) => ({ ...v, settings: { ...v.settings, connect_on_launch: launchList(stored, v.settings.connect_on_launch, name, on) } });
