// @vitest-environment happy-dom
// Always on, the kill switch's tag and lockdown: culvertd's switches as the window shows and changes them,
// against a fake Rust side.

import { act } from "preact/test-utils";
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { HelperState } from "./bindings/HelperState";
import { deferred, fakeSide, type FakeSide } from "./test/fake";
import { appHarness } from "./test/harness";
import { settle } from "./test/timers";
import { profile, snapshot, tunnel } from "./test/fixtures";

vi.mock("./components/RateChart", () => ({ RateChart: () => <div id="chart" /> }));

const PROFILES = [profile("lab"), profile("vpn", "wireguard")];
const VPN_SYSTEM = { name: "vpn", kind: "wireguard" as const, owner_uid: 1000, kill_switch: true };

let side: FakeSide;
const { mount: mountApp, $, click, later } = appHarness();

beforeEach(() => {
  side = fakeSide(PROFILES);
});

const mount = () => mountApp(side.api);
const row = (name: string) => $(`li.profile[data-name="${name}"]`)!;
const alwaysOn = () => $<HTMLInputElement>("#always-on")!;

describe("Always on", () => {
  it("makes a stored profile a system tunnel, shows it as one, and turns it off again", async () => {
    await mount();
    await side.snapshot(snapshot([]));
    await click(row("vpn"));
    expect(alwaysOn().checked).toBe(false);
    expect($("#always-on-note")!.textContent).toContain("at boot and after a crash");
    expect(row("vpn").querySelector(".tag.always-on")).toBeNull();

    // On: culvertd is asked, and the switch stays on while the snapshots catch up.
    await click(alwaysOn());
    expect(side.api.setAlwaysOn).toHaveBeenCalledWith("vpn", true);
    expect(alwaysOn().checked).toBe(true);
    await side.snapshot(snapshot([tunnel({ name: "vpn", kind: "wireguard", system: true, kill_switch: true })], { system_tunnels: [VPN_SYSTEM] }));
    expect(alwaysOn().checked).toBe(true);
    expect(row("vpn").querySelector(".tag.always-on")).not.toBeNull();
    expect($("#detail .tag.kill-switch")).not.toBeNull();
    expect($("#always-on-note")!.textContent).toContain("Turning this off disconnects it");

    // Off: culvertd forgets it and brings it down.
    await click(alwaysOn());
    expect(side.api.setAlwaysOn).toHaveBeenLastCalledWith("vpn", false);
    await side.snapshot(snapshot([]));
    expect(alwaysOn().checked).toBe(false);
    expect(row("vpn").querySelector(".tag.always-on")).toBeNull();
  });

  it("says it is busy while culvertd works, and a refusal leaves it as it was with the reason", async () => {
    const call = deferred<undefined>();
    side.api.setAlwaysOn.mockImplementationOnce(() => call.promise);
    await mount();
    await side.snapshot(snapshot([]));
    await click(row("lab"));
    await click(alwaysOn());
    expect(alwaysOn().disabled).toBe(true);
    expect(alwaysOn().parentElement!.textContent).toContain("Turning Always on on…");
    await act(async () => call.reject("lab: address 10.9.0.1/24 is in use by tunnel x"));
    await settle();
    expect(alwaysOn().disabled).toBe(false);
    expect(alwaysOn().checked).toBe(false);
    expect(document.body.textContent).toContain("address 10.9.0.1/24 is in use");
  });

  it("follows culvertd when the snapshots say otherwise after a while", async () => {
    await mount();
    await side.snapshot(snapshot([]));
    await click(row("lab"));
    await click(alwaysOn());
    expect(alwaysOn().checked).toBe(true);
    // Another client disabled it: a snapshot clearly newer than the call wins.
    await later(2000);
    await side.snapshot(snapshot([]));
    expect(alwaysOn().checked).toBe(false);
  });

  it("cannot be changed while culvertd cannot be used, and says why", async () => {
    const down: HelperState = { kind: "not_running", message: "culvertd is not running: sudo culvertd", socket: "/s", helper_version: null };
    await mount();
    await side.snapshot(snapshot([], { helper: down, health: null }));
    await click(row("lab"));
    expect(alwaysOn().disabled).toBe(true);
    expect(alwaysOn().parentElement!.getAttribute("title")).toContain("sudo culvertd");
  });
});

describe("lockdown", () => {
  it("is switched in Settings, shows in the top bar while on, and is culvertd's to say", async () => {
    await mount();
    await side.snapshot(snapshot([]));
    expect($("#lockdown-state")).toBeNull();
    await click($("#settings-button"));
    const box = () => $<HTMLInputElement>("#setting-lockdown")!;
    expect(box().checked).toBe(false);
    expect($("#lockdown-note")!.textContent).toContain("this computer is offline");

    await click(box());
    expect(side.api.setLockdown).toHaveBeenCalledWith(true);
    expect(box().checked).toBe(true);
    expect($("#lockdown-state")!.textContent).toBe("Lockdown on");
    await side.snapshot(snapshot([], { lockdown: true }));
    expect(box().checked).toBe(true);

    // Turned off elsewhere (`culvert lockdown off`): the window follows.
    await later(2000);
    await side.snapshot(snapshot([], { lockdown: false }));
    expect(box().checked).toBe(false);
    expect($("#lockdown-state")).toBeNull();
  });

  it("shows culvertd's refusal and stays as it was", async () => {
    side.api.setLockdown.mockRejectedValueOnce("turning lockdown on: nftables: install the nftables package");
    await mount();
    await side.snapshot(snapshot([]));
    await click($("#settings-button"));
    await click($("#setting-lockdown"));
    expect($<HTMLInputElement>("#setting-lockdown")!.checked).toBe(false);
    expect($("#settings-error")!.textContent).toContain("install the nftables package");
  });

  it("cannot be changed while culvertd cannot be asked", async () => {
    const denied: HelperState = { kind: "not_authorized", message: "join group culvert", socket: "/s", helper_version: null };
    await mount();
    await side.snapshot(snapshot([], { helper: denied, health: null }));
    await click($("#settings-button"));
    expect($<HTMLInputElement>("#setting-lockdown")!.disabled).toBe(true);
    expect($("#lockdown-note")!.textContent).toContain("cannot be asked");
  });
});
