// @vitest-environment happy-dom
// The settings dialog, notices from the Rust side and the usage tab, against a fake Rust side.

import { act } from "preact/test-utils";
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { SettingsView } from "./bindings/SettingsView";
import { USAGE_REFRESH_MS } from "./components/Usage";
import { deferred, fakeSide, type FakeSide } from "./test/fake";
import { appHarness } from "./test/harness";
import { settle, tick } from "./test/timers";
import { profile, snapshot, TODAY, tunnel } from "./test/fixtures";

vi.mock("./components/RateChart", () => ({ RateChart: () => <div id="chart" /> }));

const PROFILES = [profile("lab"), profile("wg0", "wireguard"), profile("flat", "vxlan")];

let side: FakeSide;
const { mount: mountApp, $, $$, click } = appHarness();

beforeEach(() => {
  side = fakeSide(PROFILES);
});

async function mount() {
  await mountApp(side.api);
}

const row = (name: string) => $(`li.profile[data-name="${name}"]`)!;
const check = (sel: string) => $<HTMLInputElement>(sel)!;
const launch = (name: string) => check(`input[data-launch="${name}"]`);

async function key(name: string) {
  const target = document.activeElement ?? document.body;
  await act(async () => void target.dispatchEvent(new KeyboardEvent("keydown", { key: name, bubbles: true, cancelable: true })));
  await settle();
}

function view(v: Partial<SettingsView> & { launch?: string[] } = {}): SettingsView {
  const { launch = [], ...rest } = v;
  return { settings: { start_minimized: false, connect_on_launch: launch, notifications: true }, start_at_login: false, tray: true, ...rest };
}

describe("the settings dialog", () => {
  it("opens from the top bar as a labelled modal and focuses its first control", async () => {
    side.state.settings = view({ launch: ["wg0"], start_at_login: true });
    await mount();
    const button = $("#settings-button")!;
    expect(button.getAttribute("aria-label")).toBe("Settings");
    expect($("#settings")).toBeNull();
    await click(button);
    const dialog = $("#settings")!;
    expect(dialog.getAttribute("role")).toBe("dialog");
    expect(dialog.getAttribute("aria-modal")).toBe("true");
    expect(document.getElementById(dialog.getAttribute("aria-labelledby")!)!.textContent).toBe("Settings");
    expect(button.getAttribute("aria-expanded")).toBe("true");
    expect(side.api.getSettings).toHaveBeenCalledTimes(1);
    expect(document.activeElement).toBe(check("#setting-start-minimized"));
    expect(check("#setting-start-minimized").checked).toBe(false);
    expect(check("#setting-start-minimized").disabled).toBe(false);
    expect(check("#setting-start-at-login").checked).toBe(true);
    // One checkbox per stored profile, in the sidebar's order.
    expect($$("input[data-launch]").map((i) => i.dataset.launch)).toEqual(["flat", "lab", "wg0"]);
    expect($$("input[data-launch]").map((i) => (i as HTMLInputElement).checked)).toEqual([false, false, true]);
  });

  it("saves the launch list in the sidebar's order, without profiles that are gone", async () => {
    side.state.settings = view({ launch: ["wg0", "gone"] });
    await mount();
    await click($("#settings-button"));
    await click(launch("lab"));
    expect(side.api.setSettings).toHaveBeenLastCalledWith({ start_minimized: false, connect_on_launch: ["lab", "wg0"], notifications: true }, false);
    expect(launch("lab").checked).toBe(true);
    await click(launch("wg0"));
    expect(side.api.setSettings).toHaveBeenLastCalledWith({ start_minimized: false, connect_on_launch: ["lab"], notifications: true }, false);
    expect(launch("wg0").checked).toBe(false);
    await click(launch("flat"));
    expect(side.state.settings.settings.connect_on_launch).toEqual(["flat", "lab"]);
    await click(check("#setting-start-minimized"));
    await click(check("#setting-start-at-login"));
    expect(side.api.setSettings).toHaveBeenLastCalledWith({ start_minimized: true, connect_on_launch: ["flat", "lab"], notifications: true }, true);
    expect(check("#setting-notifications").checked).toBe(true);
    await click(check("#setting-notifications"));
    expect(side.api.setSettings).toHaveBeenLastCalledWith({ start_minimized: true, connect_on_launch: ["flat", "lab"], notifications: false }, true);
    expect($("#settings-error")).toBeNull();
  });

  it("shows what the Rust side answered rather than the click", async () => {
    await mount();
    side.api.setSettings.mockImplementationOnce(async (settings) => view({ settings, start_at_login: false }));
    await click($("#settings-button"));
    await click(check("#setting-start-at-login"));
    expect(side.api.setSettings).toHaveBeenLastCalledWith({ start_minimized: false, connect_on_launch: [], notifications: true }, true);
    expect(check("#setting-start-at-login").checked).toBe(false);
  });

  it("saves quick toggles one after another, each on top of the last", async () => {
    await mount();
    const first = deferred<SettingsView>();
    side.api.setSettings.mockImplementationOnce(() => first.promise);
    await click($("#settings-button"));
    await click(launch("wg0"));
    await click(launch("flat"));
    // Both show at once; the second waits for the first's answer.
    expect(launch("wg0").checked).toBe(true);
    expect(launch("flat").checked).toBe(true);
    expect(side.api.setSettings).toHaveBeenCalledTimes(1);
    side.state.settings = view({ launch: ["wg0"] });
    await act(async () => first.resolve(view({ launch: ["wg0"] })));
    await settle();
    expect(side.api.setSettings).toHaveBeenCalledTimes(2);
    expect(side.api.setSettings).toHaveBeenLastCalledWith({ start_minimized: false, connect_on_launch: ["flat", "wg0"], notifications: true }, false);
    expect(launch("wg0").checked).toBe(true);
    expect(launch("flat").checked).toBe(true);
  });

  it("shows a failed save's error in the dialog and puts the checkbox back", async () => {
    side.state.settings = view({ launch: ["lab"] });
    await mount();
    const message = "cannot change whether Culvert starts at login: No such file or directory (os error 2)";
    side.api.setSettings.mockRejectedValueOnce(message);
    await click($("#settings-button"));
    await click(check("#setting-start-at-login"));
    expect(side.api.setSettings).toHaveBeenCalledWith({ start_minimized: false, connect_on_launch: ["lab"], notifications: true }, true);
    expect($("#settings #settings-error")!.textContent).toBe(message);
    expect($("#settings-error")!.getAttribute("role")).toBe("alert");
    expect(check("#setting-start-at-login").checked).toBe(false);
    // What is true was asked again: the file may be written even when the login entry was not.
    expect(side.api.getSettings).toHaveBeenCalledTimes(2);
    expect($("#error")).toBeNull();
    // The next change that works clears the error.
    await click(launch("flat"));
    expect($("#settings-error")).toBeNull();
    expect(launch("flat").checked).toBe(true);
  });

  it("puts the checkbox back to what was true when the truth cannot be read either", async () => {
    await mount();
    await click($("#settings-button"));
    side.api.setSettings.mockRejectedValueOnce("cannot write /home/u/.config/culvert/app.toml: Permission denied");
    side.api.getSettings.mockRejectedValueOnce("no answer");
    await click(launch("lab"));
    expect($("#settings-error")!.textContent).toContain("Permission denied");
    expect(launch("lab").checked).toBe(false);
  });

  it("cannot start minimized without a tray, and says why", async () => {
    side.state.settings = view({ tray: false });
    await mount();
    await click($("#settings-button"));
    const minimized = check("#setting-start-minimized");
    expect(minimized.disabled).toBe(true);
    const note = document.getElementById(minimized.getAttribute("aria-describedby")!)!;
    expect(note.textContent).toContain("no tray");
    expect(note.textContent).toContain("window always shows");
    expect(document.activeElement).toBe(check("#setting-start-at-login"));
  });

  it("closes with Escape and with Close, and gives focus back to the settings button", async () => {
    await mount();
    await click($("#settings-button"));
    expect($(".app")!.inert).toBe(true);
    await key("Escape");
    expect($("#settings")).toBeNull();
    expect($(".app")!.inert).toBe(false);
    expect(document.activeElement).toBe($("#settings-button"));
    expect($("#settings-button")!.getAttribute("aria-expanded")).toBe("false");

    await click($("#settings-button"));
    await click($("#settings-close"));
    expect($("#settings")).toBeNull();
    expect(document.activeElement).toBe($("#settings-button"));
  });

  it("keeps Tab inside the dialog", async () => {
    await mount();
    await click($("#settings-button"));
    const close = $("#settings-close")!;
    const last = launch("wg0");
    last.focus();
    await key("Tab");
    expect(document.activeElement).toBe(close);
    await act(async () => void close.dispatchEvent(new KeyboardEvent("keydown", { key: "Tab", shiftKey: true, bubbles: true, cancelable: true })));
    expect(document.activeElement).toBe(last);
  });

  it("shows why the settings cannot be read", async () => {
    side.api.getSettings.mockRejectedValueOnce("cannot read the settings");
    await mount();
    await click($("#settings-button"));
    expect($("#settings-error")!.textContent).toBe("cannot read the settings");
    expect($("#setting-start-at-login")).toBeNull();
  });
});

describe("notices", () => {
  it("shows a notice in the error banner, and adds the next one to it", async () => {
    await mount();
    expect(side.api.onNotice).toHaveBeenCalledTimes(1);
    await side.notice("Connect on launch: office: there is no profile called office");
    expect($("#error .error-message")!.textContent).toBe("Connect on launch: office: there is no profile called office");
    await side.notice("Connect on launch: lab: culvertd is not running");
    await side.notice("Connect on launch: lab: culvertd is not running");
    expect($("#error .error-message")!.textContent).toBe(
      "Connect on launch: office: there is no profile called office\nConnect on launch: lab: culvertd is not running",
    );
    await click($("#error button.dismiss"));
    expect($("#error")).toBeNull();
    await side.notice("Connect on launch: wg0: no handshake");
    expect($("#error .error-message")!.textContent).toBe("Connect on launch: wg0: no handshake");
  });
});

describe("notices sent before the page listened", () => {
  it("are fetched once the listener is in place, and shown once", async () => {
    side.state.earlyNotices = ["Connect on launch: office: culvertd is not running"];
    await mount();
    await act(async () => undefined);
    expect(side.api.notices).toHaveBeenCalledTimes(1);
    expect($("#error .error-message")!.textContent).toBe("Connect on launch: office: culvertd is not running");
  });
});

describe("the usage tab", () => {
  const days = () => $$("#usage-chart [data-day]");

  it("shows today's and the window's totals and a bar per day, for a tunnel that is down", async () => {
    side.state.usage.lab = [
      { day: "2025-10-26", rx_bytes: 1_000_000, tx_bytes: 500_000 },
      { day: "2025-11-20", rx_bytes: 4_000_000_000, tx_bytes: 2_000_000_000 },
      { day: TODAY, rx_bytes: 1_234_567, tx_bytes: 89_012 },
    ];
    await mount();
    await click(row("lab"));
    expect($("#usage-tab")!.textContent).toBe("Usage");
    await click($("#usage-tab"));
    expect($("#usage-tab")!.getAttribute("aria-selected")).toBe("true");
    expect($("#tab-panel")!.getAttribute("aria-labelledby")).toBe("usage-tab");
    expect(side.api.usage).toHaveBeenCalledWith("lab", 30);

    const today = $("#usage-today")!;
    expect(today.dataset.bytes).toBe("1323579");
    expect(today.textContent).toBe("1.3 MB");
    const total = $("#usage-total")!;
    expect(total.dataset.bytes).toBe(String(1_500_000 + 6_000_000_000 + 1_323_579));
    expect(total.textContent).toBe("6.0 GB");
    expect(total.parentElement!.textContent).toContain("↓ 4.0 GB");
    expect(total.parentElement!.textContent).toContain("↑ 2.0 GB");

    const bars = days();
    expect(bars.length).toBe(30);
    expect(bars[0].dataset.day).toBe("2025-10-26");
    expect(bars[29].dataset.day).toBe(TODAY);
    expect(bars.filter((b) => b.dataset.bytes !== "0").map((b) => b.dataset.day)).toEqual(["2025-10-26", "2025-11-20", TODAY]);
    const busiest = bars.find((b) => b.dataset.day === "2025-11-20")!;
    expect(busiest.querySelector("title")!.textContent).toBe("2025-11-20: 6.0 GB (received 4.0 GB, sent 2.0 GB)");
    expect(Number(busiest.querySelector(".bar-rx")!.getAttribute("height")) + Number(busiest.querySelector(".bar-tx")!.getAttribute("height"))).toBe(100);
    expect(bars[1].querySelector("title")!.textContent).toBe("2025-10-27: 0 B (received 0 B, sent 0 B)");
    expect(bars[1].querySelector(".bar-rx")!.getAttribute("height")).toBe("0");
    expect($(".usage-max")!.textContent).toBe("6.0 GB");
    const labels = $$(".usage-axis span").map((s) => s.textContent);
    expect(labels.length).toBe(30);
    expect(labels.filter(Boolean)).toEqual(["Oct 27", "Nov 3", "Nov 10", "Nov 17", "Today"]);
  });

  it("refreshes every 10 s while open, follows the selection and stops when it closes", async () => {
    side.state.usage.lab = [{ day: TODAY, rx_bytes: 100, tx_bytes: 20 }];
    side.state.usage.wg0 = [{ day: TODAY, rx_bytes: 7, tx_bytes: 0 }];
    await mount();
    await click(row("lab"));
    await click($("#usage-tab"));
    expect($("#usage-today")!.dataset.bytes).toBe("120");
    side.state.usage.lab = [{ day: TODAY, rx_bytes: 5000, tx_bytes: 20 }];
    await tick(USAGE_REFRESH_MS - 1);
    expect($("#usage-today")!.dataset.bytes).toBe("120");
    await tick(1);
    await settle();
    expect($("#usage-today")!.dataset.bytes).toBe("5020");

    await click(row("wg0"));
    expect(side.api.usage).toHaveBeenLastCalledWith("wg0", 30);
    expect($("#usage-tab")!.getAttribute("aria-selected")).toBe("true");
    expect($("#usage-today")!.dataset.bytes).toBe("7");

    await click($("#overview-tab"));
    const calls = side.api.usage.mock.calls.length;
    await tick(USAGE_REFRESH_MS * 3);
    expect(side.api.usage.mock.calls.length).toBe(calls);
  });

  it("says nothing was recorded yet when there are no days", async () => {
    await mount();
    await click(row("flat"));
    await click($("#usage-tab"));
    expect($("#usage-empty")!.textContent).toContain("No traffic recorded yet");
    expect($("#usage-empty")!.textContent).toContain("on this computer");
    expect($("#usage-chart")).toBeNull();
  });

  it("shows a failed read inline", async () => {
    side.api.usage.mockRejectedValueOnce("usage totals are not kept this run: see the app's log for why");
    await mount();
    await click($("#usage-tab"));
    expect($("#usage-error")!.textContent).toBe("usage totals are not kept this run: see the app's log for why");
    expect($("#error")).toBeNull();
    // The next read that works replaces it.
    await tick(USAGE_REFRESH_MS);
    await settle();
    expect($("#usage-error")).toBeNull();
    expect($("#usage-empty")).not.toBeNull();
  });

  it("is not offered for a tunnel that is not stored", async () => {
    await mount();
    await click($("#usage-tab"));
    await side.snapshot(snapshot([tunnel({ name: "adhoc" })]));
    await click($('#unstored-tunnels li[data-name="adhoc"]'));
    expect($("#usage-tab")).toBeNull();
    expect($("#tab-panel")!.getAttribute("aria-labelledby")).toBe("overview-tab");
    expect($("#usage")).toBeNull();
    // Back on a stored profile, the usage tab is still the open one.
    await click(row("lab"));
    expect($("#usage-tab")!.getAttribute("aria-selected")).toBe("true");
  });
});
