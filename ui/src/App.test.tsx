// @vitest-environment happy-dom
// The whole app against a fake Rust side: what the user sees and which calls it makes.

import { render } from "preact";
import { act } from "preact/test-utils";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { App } from "./App";
import type { HelperState } from "./bindings/HelperState";
import type { TunnelStatus } from "./bindings/TunnelStatus";
import { deferred, fakeSide } from "./test/fake";
import { AT_MS, NOW_MS, NOW_S, profile, sample, snapshot, tunnel, wgPeer } from "./test/fixtures";

// uPlot needs a real canvas; the chart is tested by looking at it in the app.
vi.mock("./components/RateChart", () => ({ RateChart: () => <div id="chart" /> }));

let root: HTMLElement;

beforeEach(() => {
  // Only the wall clock is fixed (handshake ages); timers run for real.
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(NOW_MS);
  localStorage.clear();
  root = document.createElement("div");
  document.body.appendChild(root);
});

afterEach(() => {
  vi.useRealTimers();
  render(null, root);
  root.remove();
  document.body.innerHTML = "";
});

async function flush() {
  await act(async () => {
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
  });
}

async function mount(side: ReturnType<typeof fakeSide>, save?: (f: string, t: string) => void) {
  await act(async () => render(<App api={side.api} save={save} />, root));
  await flush();
}

const $ = <T extends Element = HTMLElement>(sel: string) => root.querySelector<T>(sel) ?? document.querySelector<T>(sel);
const $$ = (sel: string) => Array.from(root.querySelectorAll<HTMLElement>(sel));
const row = (name: string) => $(`li.profile[data-name="${name}"]`)!;

async function click(el: Element | null) {
  expect(el).not.toBeNull();
  await act(async () => (el as HTMLElement).click());
  await flush();
}

const PROFILES = [profile("lab"), profile("wg0", "wireguard"), profile("flat", "vxlan")];

describe("the window", () => {
  it("lists profiles with kind, encryption and state, and selects the first", async () => {
    const side = fakeSide(PROFILES);
    await mount(side);
    expect($$("#profiles li.profile").map((li) => li.dataset.name)).toEqual(["flat", "lab", "wg0"]);
    expect(row("lab").querySelector(".kind")!.textContent).toBe("udp");
    expect(row("lab").querySelector(".unencrypted")).not.toBeNull();
    expect(row("flat").querySelector(".unencrypted")).not.toBeNull();
    expect(row("wg0").querySelector(".unencrypted")).toBeNull();
    expect(row("lab").querySelector(".dot")!.classList.contains("down")).toBe(true);
    expect(row("lab").querySelector(".toggle")!.textContent).toBe("Connect");
    expect(row("flat").classList.contains("selected")).toBe(true);
    expect($("#detail .detail-name")!.textContent).toBe("flat");
  });

  it("lists other users' tunnels with only what culvertd shows of them", async () => {
    const side = fakeSide(PROFILES);
    await mount(side);
    expect($("#others-tunnels")).toBeNull();
    await side.snapshot(snapshot([], { others: [{ name: "office", kind: "wireguard", state: "up", owner_uid: 0 }] }));
    const other = $('#others-tunnels li[data-name="office"]')!;
    expect(other.textContent).toContain("wireguard");
    expect(other.textContent).toContain("up, uid 0");
    expect(other.querySelector("button")).toBeNull();
  });

  it("shows the helper's state and health in the top bar", async () => {
    const side = fakeSide(PROFILES);
    await mount(side);
    await side.snapshot(snapshot([]));
    expect($("#helper-state")!.classList.contains("state-ok")).toBe(true);
    expect($("#helper-health")!.textContent).toBe("culvertd: 1.2% CPU, 14 MB");
    expect($("#helper-health")!.hidden).toBe(false);
    await side.snapshot(snapshot([], { health: null, at_ms: AT_MS + 1000 }));
    expect($("#helper-health")!.hidden).toBe(true);
  });

  it("says what to do when the helper is not usable, instead of numbers", async () => {
    const message = "culvertd is not running: start it with `sudo systemctl start culvertd`.";
    const notRunning: HelperState = { kind: "not_running", message, socket: "/run/culvert/culvertd.sock", helper_version: null };
    const side = fakeSide(PROFILES, notRunning);
    await mount(side);
    await side.snapshot(snapshot([], { helper: notRunning, health: null }));
    const state = $("#helper-state")!;
    expect(state.classList.contains("state-not_running")).toBe(true);
    expect(state.textContent).toContain(message);
    await click(row("lab"));
    expect($("#detail")!.textContent).toContain(message);
    expect($("#rx-total")).toBeNull();
    expect(row("lab").querySelector<HTMLButtonElement>(".toggle")!.disabled).toBe(true);
  });
});

describe("connecting", () => {
  it("disables the button and says Connecting… while the call runs", async () => {
    const side = fakeSide(PROFILES);
    const call = deferred<TunnelStatus>();
    side.api.connect.mockImplementationOnce(() => call.promise);
    await mount(side);
    await side.snapshot(snapshot([]));
    const toggle = () => row("lab").querySelector<HTMLButtonElement>(".toggle")!;
    await click(toggle());
    expect(side.api.connect).toHaveBeenCalledWith("lab");
    expect(toggle().disabled).toBe(true);
    expect(toggle().textContent).toBe("Connecting…");
    expect(row("lab").classList.contains("selected")).toBe(true);
    await act(async () => call.resolve(tunnel({ name: "lab", state: "up" })));
    await flush();
    // The answer shows at once, before the next snapshot.
    expect(toggle().disabled).toBe(false);
    expect(toggle().textContent).toBe("Disconnect");
    expect(row("lab").querySelector(".dot")!.classList.contains("up")).toBe(true);
  });

  it("disconnects a tunnel that is up", async () => {
    const side = fakeSide(PROFILES);
    await mount(side);
    await side.snapshot(snapshot([tunnel({ name: "lab" })]));
    await click(row("lab").querySelector(".toggle"));
    expect(side.api.disconnect).toHaveBeenCalledWith("lab");
    expect(row("lab").querySelector(".toggle")!.textContent).toBe("Connect");
  });

  it("shows a failed call's message as is, until dismissed", async () => {
    const side = fakeSide(PROFILES);
    const message = "lab.toml: peer[0].allowed_ips[0]: 10.9.0.1/24 has host bits set; write the network as 10.9.0.0/24";
    side.api.connect.mockRejectedValueOnce(message);
    await mount(side);
    await click(row("lab").querySelector(".toggle"));
    expect($("#error .error-message")!.textContent).toBe(message);
    expect(row("lab").querySelector(".toggle")!.textContent).toBe("Connect");
    await click($("#error button.dismiss"));
    expect($("#error")).toBeNull();
  });
});

describe("the detail panel", () => {
  it("shows state, totals, drops and peers of an up tunnel", async () => {
    const side = fakeSide(PROFILES);
    await mount(side);
    const t = tunnel({
      name: "wg0",
      kind: "wireguard",
      state: "up",
      interface: "wg0",
      listen_port: 51820,
      peers: [
        wgPeer(NOW_S - 12, { rx_bytes: 1_200_000, tx_bytes: 3400 }),
        wgPeer(NOW_S - 200, { public_key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" }),
        wgPeer(null, { endpoint: null, public_key: "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=" }),
      ],
      rx_bytes: 1_234_567,
      tx_bytes: 999,
      dropped: 3,
      drops: { no_route: 2, spoofed_source: 1, bad_crypto: 0 },
    });
    await side.snapshot(snapshot([t], { at_ms: AT_MS - 1000 }));
    await side.snapshot(snapshot([{ ...t, rx_bytes: t.rx_bytes + 5000 }]));
    await click(row("wg0"));
    expect($("#tunnel-state")!.textContent).toContain("Up");
    expect($("#tunnel-state")!.classList.contains("up")).toBe(true);
    expect($("#chart")).not.toBeNull();
    // 5000 B more in 1000 ms of the snapshots' own clock.
    expect($(".rate.rx")!.textContent).toBe("↓ 5.0 kB/s");
    expect($(".rate.tx")!.textContent).toBe("↑ 0 B/s");
    const rx = $("#rx-total")!;
    expect(rx.textContent).toBe("1.2 MB");
    expect(rx.dataset.bytes).toBe("1239567");
    expect($("#tx-total")!.textContent).toBe("999 B");
    expect($("#tx-total")!.dataset.bytes).toBe("999");
    const drops = $$("#dropped li").map((li) => li.textContent);
    expect(drops).toEqual(["no_route 2", "spoofed_source 1"]);
    const peers = $$("#peers tr");
    expect(peers.length).toBe(3);
    expect(peers[0].querySelector(".key")!.textContent).toBe("xTIBA5rb…");
    expect(peers[0].querySelector(".key")!.getAttribute("title")).toBe("xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=");
    expect(peers[0].textContent).toContain("12 s ago");
    expect(peers[0].textContent).toContain("198.51.100.7:51820");
    expect(peers[0].textContent).toContain("10.8.0.2/32, 192.168.50.0/24");
    expect(peers[0].textContent).toContain("1.2 MB");
    expect(peers[0].classList.contains("stale")).toBe(false);
    expect(peers[1].classList.contains("stale")).toBe(true);
    expect(peers[1].textContent).toContain("3 min ago");
    expect(peers[1].textContent).toContain("stale");
    expect(peers[2].textContent).toContain("never");
    expect(peers[2].textContent).toContain("unknown");
  });

  it("shows the reason of a tunnel without a handshake", async () => {
    const side = fakeSide(PROFILES);
    await mount(side);
    const reason = "no handshake within 15 s: is the peer's endpoint right and its port open?";
    await side.snapshot(snapshot([tunnel({ name: "wg0", kind: "wireguard", state: "no handshake", reason, peers: [wgPeer(null)] })]));
    await click(row("wg0"));
    expect(row("wg0").querySelector(".dot")!.classList.contains("no-handshake")).toBe(true);
    expect($("#tunnel-state")!.textContent).toContain("No handshake");
    expect($("#tunnel-state")!.textContent).toContain(reason);
  });

  it("lists no drops as None", async () => {
    const side = fakeSide(PROFILES);
    await mount(side);
    await side.snapshot(snapshot([tunnel({ name: "lab", drops: { no_route: 0 } })]));
    await click(row("lab"));
    expect($("#dropped")!.textContent).toBe("None");
  });

  it("shows an overlay's network, its lease and every host etcd lists, with why one is skipped", async () => {
    const side = fakeSide(PROFILES);
    await mount(side);
    const overlay = {
      network: "10.5.0.0/16",
      subnet: "10.5.7.0/24",
      backend: "vxlan",
      lease_expires: NOW_S + 3600,
      registry: "unreachable" as const,
      nodes: [
        { public_ip: "172.31.0.2", subnet: "10.5.9.0/24", backend: "vxlan" },
        { public_ip: "172.31.0.99", subnet: "10.6.0.0/24", backend: "vxlan", skipped_reason: "10.6.0.0/24 lies outside the network 10.5.0.0/16" },
      ],
    };
    await side.snapshot(snapshot([tunnel({ name: "ov", kind: "overlay", overlay })]));
    await click($('#unstored-tunnels li[data-name="ov"]'));
    expect($("#overlay-network")!.textContent).toBe("10.5.0.0/16");
    expect($("#overlay-subnet")!.textContent).toBe("10.5.7.0/24");
    expect($("#overlay-registry")!.dataset.state).toBe("unreachable");
    const hosts = $$("#overlay-nodes tbody tr");
    expect(hosts.length).toBe(2);
    expect(hosts[0].textContent).toContain("peer");
    expect(hosts[1].classList.contains("skipped")).toBe(true);
    expect(hosts[1].textContent).toContain("skipped: 10.6.0.0/24 lies outside the network");
  });

  it("lists tunnels that are up but not stored", async () => {
    const side = fakeSide(PROFILES);
    await mount(side);
    await side.snapshot(snapshot([tunnel({ name: "adhoc" })]));
    expect($$("li.profile").length).toBe(3);
    const li = $('#unstored-tunnels li[data-name="adhoc"]')!;
    expect(li.querySelector(".toggle")!.textContent).toBe("Disconnect");
    expect(li.querySelector(".export")).toBeNull();
  });
});

describe("packets", () => {
  it("watches the selected tunnel while the tab is open, newest first, at most 500", async () => {
    const side = fakeSide(PROFILES);
    await mount(side);
    await side.snapshot(snapshot([tunnel({ name: "lab" }), tunnel({ name: "wg0", kind: "wireguard", peers: [wgPeer(NOW_S)] })]));
    await click(row("lab"));
    expect(side.api.watchPackets).not.toHaveBeenCalled();
    await click($("#packets-tab"));
    expect(side.api.watchPackets).toHaveBeenLastCalledWith("lab");

    await side.packets({ name: "lab", missed: 0, samples: [sample({ at_ms: 1, dst_port: 53 }), sample({ at_ms: 2, protocol: "tcp", dst_port: 443 })] });
    await side.packets({ name: "other", missed: 0, samples: [sample({ at_ms: 3 })] });
    let rows = $$("#packet-rows tr");
    expect(rows.length).toBe(2);
    expect(rows[0].textContent).toContain("tcp");
    expect(rows[0].textContent).toContain("10.9.0.2:443");
    expect(rows[0].textContent).toContain("10.9.0.1:40000");
    expect(rows[0].textContent).toContain("84 B");

    // Filtering.
    const filter = $<HTMLInputElement>("#packets-filter")!;
    await act(async () => {
      filter.value = ":53";
      filter.dispatchEvent(new Event("input", { bubbles: true }));
    });
    rows = $$("#packet-rows tr");
    expect(rows.length).toBe(1);
    expect(rows[0].textContent).toContain("10.9.0.2:53");
    await act(async () => {
      filter.value = "";
      filter.dispatchEvent(new Event("input", { bubbles: true }));
    });

    // Pausing drops what arrives.
    await click($("#packets-pause"));
    expect($("#packets-pause")!.textContent).toBe("Resume");
    await side.packets({ name: "lab", missed: 0, samples: [sample({ at_ms: 4 })] });
    expect($$("#packet-rows tr").length).toBe(2);
    await click($("#packets-pause"));
    await side.packets({ name: "lab", missed: 0, samples: Array.from({ length: 600 }, (_, i) => sample({ at_ms: 10 + i })) });
    expect($$("#packet-rows tr").length).toBe(500);

    // Switching profile stops this watch and starts the next.
    side.api.watchPackets.mockClear();
    await click(row("wg0"));
    expect(side.api.watchPackets.mock.calls).toEqual([[null], ["wg0"]]);
    expect($$("#packet-rows tr").length).toBe(0);

    // Closing the tab stops it.
    side.api.watchPackets.mockClear();
    await click($("#overview-tab"));
    expect(side.api.watchPackets.mock.calls).toEqual([[null]]);
  });

  it("says vxlan and hostgw packets never pass through culvertd, and watches nothing", async () => {
    const side = fakeSide(PROFILES);
    await mount(side);
    await side.snapshot(snapshot([tunnel({ name: "flat", kind: "vxlan" })]));
    await click(row("flat"));
    await click($("#packets-tab"));
    expect($("#detail")!.textContent).toContain("vxlan and hostgw packets never pass through culvertd");
    expect(side.api.watchPackets).not.toHaveBeenCalled();
    expect($("#packet-rows")).toBeNull();
  });

  it("stops watching when the tunnel goes down", async () => {
    const side = fakeSide(PROFILES);
    await mount(side);
    await side.snapshot(snapshot([tunnel({ name: "lab" })]));
    await click(row("lab"));
    await click($("#packets-tab"));
    expect(side.api.watchPackets).toHaveBeenLastCalledWith("lab");
    await side.snapshot(snapshot([], { at_ms: AT_MS + 1000 }));
    await flush();
    expect(side.api.watchPackets).toHaveBeenLastCalledWith(null);
    expect($("#detail")!.textContent).toContain("down");
  });
});

describe("the profile store", () => {
  it("imports a chosen file and selects it", async () => {
    const side = fakeSide(PROFILES);
    await mount(side);
    const input = $<HTMLInputElement>("#import-file")!;
    expect(input.accept).toBe(".conf,.toml,.nmconnection");
    expect(input.hidden).toBe(true);
    const file = new File(["[Interface]\nPrivateKey = x\n"], "office.conf");
    Object.defineProperty(input, "files", { value: [file], configurable: true });
    await act(async () => void input.dispatchEvent(new Event("change", { bubbles: true })));
    await flush();
    expect(side.api.importProfile).toHaveBeenCalledWith("office.conf", "[Interface]\nPrivateKey = x\n");
    expect(row("office")).not.toBeNull();
    expect(row("office").classList.contains("selected")).toBe(true);
  });

  it("imports files dropped onto the window, and shows what to fix", async () => {
    const side = fakeSide(PROFILES);
    const message = "bad.toml: kind: unknown kind \"gre\"; use udp, wireguard, vxlan, hostgw or tap";
    side.api.importProfile.mockImplementation(async (fileName: string) => {
      if (fileName === "bad.toml") throw message;
      const p = profile(fileName.replace(".toml", ""));
      side.store.push(p);
      return p;
    });
    await mount(side);
    const drop = new Event("drop", { bubbles: true, cancelable: true });
    const files = [new File(['kind = "udp"\n'], "site.toml"), new File(['kind = "gre"\n'], "bad.toml")];
    Object.defineProperty(drop, "dataTransfer", { value: { types: ["Files"], files } });
    await act(async () => void document.body.dispatchEvent(drop));
    await flush();
    expect(drop.defaultPrevented).toBe(true);
    expect(side.api.importProfile).toHaveBeenCalledWith("site.toml", 'kind = "udp"\n');
    expect(row("site")).not.toBeNull();
    expect($("#error .error-message")!.textContent).toBe(message);
  });

  it("removes a profile only after the confirm step", async () => {
    const side = fakeSide(PROFILES);
    await mount(side);
    await click(row("lab"));
    await click(row("lab").querySelector(".remove"));
    expect(side.api.removeProfile).not.toHaveBeenCalled();
    expect(row("lab").textContent).toContain("Remove “lab”?");
    await click(row("lab").querySelector(".cancel-remove"));
    expect(row("lab").querySelector(".confirm-remove")).toBeNull();
    await click(row("lab").querySelector(".remove"));
    await click(row("lab").querySelector(".confirm-remove"));
    expect(side.api.removeProfile).toHaveBeenCalledWith("lab");
    expect($$("li.profile").map((li) => li.dataset.name)).toEqual(["flat", "wg0"]);
    expect(row("wg0").classList.contains("selected")).toBe(true);
  });

  it("exports a WireGuard profile as a .conf file", async () => {
    const side = fakeSide(PROFILES);
    const save = vi.fn();
    await mount(side, save);
    await click(row("wg0").querySelector(".export"));
    expect(side.api.exportProfile).toHaveBeenCalledWith("wg0");
    expect(save).toHaveBeenCalledWith("wg0.conf", "[Interface]\nAddress = 10.8.0.1/24\n# wg0\n");
  });

  it("shows a WireGuard profile's QR code only after saying that it holds the private key", async () => {
    const side = fakeSide(PROFILES);
    await mount(side);
    expect(row("lab").querySelector(".qr")).toBeNull();
    await click(row("wg0").querySelector(".qr"));
    expect(document.querySelector("#qr-warning")!.textContent).toContain("private key of wg0");
    expect(side.api.profileQr).not.toHaveBeenCalled();
    expect(document.querySelector("#qr-code")).toBeNull();
    await click(document.querySelector("#qr-show"));
    expect(side.api.profileQr).toHaveBeenCalledWith("wg0");
    const svg = document.querySelector<SVGElement>("#qr-code")!;
    expect(svg.dataset.size).toBe("29");
    expect(svg.querySelectorAll("rect.m").length).toBe(21);
    await click(document.querySelector("#qr-close"));
    expect(document.querySelector("#qr-dialog")).toBeNull();
  });

  it("says why when a QR code cannot be made", async () => {
    const side = fakeSide(PROFILES);
    side.api.profileQr.mockRejectedValueOnce("wg0 is too large for a QR code");
    await mount(side);
    await click(row("wg0").querySelector(".qr"));
    await click(document.querySelector("#qr-show"));
    expect(document.querySelector("#qr-dialog [role=alert]")!.textContent).toContain("too large");
  });

  it("saves an export through a download link to a blob URL by default", async () => {
    const side = fakeSide(PROFILES);
    side.api.exportProfile.mockResolvedValueOnce('kind = "udp"\n');
    await mount(side);
    await click(row("lab").querySelector(".export"));
    const a = document.querySelector<HTMLAnchorElement>("a[download]")!;
    expect(a).not.toBeNull();
    expect(a.getAttribute("download")).toBe("lab.toml");
    expect(a.href.startsWith("blob:")).toBe(true);
  });
});
