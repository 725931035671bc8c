import { describe, expect, it } from "vitest";
import type { SettingsView } from "./bindings/SettingsView";
import { launchList, setLaunch, setStartAtLogin, setStartMinimized, setNotifications } from "./settings";

const STORED = ["flat", "lab", "wg0"];

describe("launchList", () => {
  it("keeps the sidebar's order among the checked profiles", () => {
    expect(launchList(STORED, ["wg0"], "flat", true)).toEqual(["flat", "wg0"]);
    expect(launchList(STORED, ["wg0", "flat"], "lab", true)).toEqual(["flat", "lab", "wg0"]);
  });

  it("takes a profile out", () => {
    expect(launchList(STORED, ["flat", "wg0"], "flat", false)).toEqual(["wg0"]);
    expect(launchList(STORED, ["flat"], "lab", false)).toEqual(["flat"]);
  });

  it("leaves out names that are no longer stored profiles", () => {
    expect(launchList(STORED, ["gone", "lab"], "wg0", true)).toEqual(["lab", "wg0"]);
  });
});

describe("changes", () => {
  const view: SettingsView = { settings: { start_minimized: false, connect_on_launch: ["lab"], notifications: true }, start_at_login: false, tray: true };

  it("change one thing and keep the rest", () => {
    expect(setStartMinimized(true)(view)).toEqual({ ...view, settings: { ...view.settings, start_minimized: true } });
    expect(setStartAtLogin(true)(view)).toEqual({ ...view, start_at_login: true });
    expect(setNotifications(false)(view)).toEqual({ ...view, settings: { ...view.settings, notifications: false } });
    expect(setLaunch(STORED, "flat", true)(view).settings).toEqual({ start_minimized: false, connect_on_launch: ["flat", "lab"], notifications: true });
    expect(view.settings.connect_on_launch).toEqual(["lab"]);
  });
});
