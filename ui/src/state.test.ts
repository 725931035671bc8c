import { describe, expect, it } from "vitest";
import {
  hasPacketView,
  isPeerStale,
  isUnencrypted,
  PENDING_GRACE_MS,
  PENDING_MS,
  pendingApplies,
  profileState,
  STALE_AFTER_S,
  switchShows,
  withPending,
  type Pending,
} from "./state";
import { NOW_MS, NOW_S, peer, snapshot, tunnel, wgPeer } from "./test/fixtures";

describe("profileState", () => {
  it("is down before any snapshot", () => {
    expect(profileState({ name: "lab" }, null, NOW_MS)).toEqual({ state: "down", label: "Down", reason: null, tunnel: null });
  });

  it("is down when the snapshot does not hold the tunnel", () => {
    const s = profileState({ name: "lab" }, snapshot([tunnel({ name: "other" })]), NOW_MS);
    expect(s.state).toBe("down");
    expect(s.tunnel).toBeNull();
  });

  it("is up for an up tunnel, with the tunnel", () => {
    const t = tunnel({ name: "lab" });
    const s = profileState({ name: "lab" }, snapshot([t]), NOW_MS);
    expect(s).toEqual({ state: "up", label: "Up", reason: null, tunnel: t });
  });

  it("maps connecting and no handshake, with the reason", () => {
    const c = profileState(
      { name: "wg0" },
      snapshot([tunnel({ name: "wg0", kind: "wireguard", state: "connecting", peers: [wgPeer(null)] })]),
      NOW_MS,
    );
    expect(c.state).toBe("connecting");
    expect(c.label).toBe("Connecting");
    const reason = "no handshake with any peer within 15 s: check the peer's endpoint and that its port is reachable";
    const n = profileState(
      { name: "wg0" },
      snapshot([tunnel({ name: "wg0", kind: "wireguard", state: "no handshake", reason, peers: [wgPeer(null)] })]),
      NOW_MS,
    );
    expect(n).toMatchObject({ state: "no-handshake", label: "No handshake", reason });
  });

  it("shows a tunnel whose kill switch holds as blocked, with how to lift it", () => {
    const reason = "culvertd restarted while wg0 was up: its kill switch holds until `culvert up wg0` or `culvert down wg0`";
    const b = profileState(
      { name: "wg0" },
      snapshot([tunnel({ name: "wg0", kind: "wireguard", state: "blocked", reason, peers: [] })]),
      NOW_MS,
    );
    expect(b).toMatchObject({ state: "blocked", label: "Blocked", reason });
  });

  it("marks a WireGuard tunnel stale only past 180 s since its newest handshake", () => {
    const at = (age: number) =>
      profileState({ name: "wg0" }, snapshot([tunnel({ name: "wg0", kind: "wireguard", peers: [wgPeer(NOW_S - age)] })]), NOW_MS);
    expect(at(0).state).toBe("up");
    expect(at(STALE_AFTER_S).state).toBe("up"); // exactly 180 s: not older than 180 s
    expect(at(STALE_AFTER_S + 1).state).toBe("stale");
    expect(at(STALE_AFTER_S + 1).label).toBe("Stale");
    expect(at(240).reason).toContain("4 min ago");
  });

  it("measures ages by the wall clock it is given, never by the snapshot's monotonic at_ms", () => {
    const snap = snapshot([tunnel({ name: "wg0", kind: "wireguard", peers: [wgPeer(NOW_S - 100)] })], { at_ms: 5_000 });
    expect(profileState({ name: "wg0" }, snap, NOW_MS).state).toBe("up");
    expect(profileState({ name: "wg0" }, snap, NOW_MS + 100_000).state).toBe("stale");
  });

  it("is not stale while one peer of several is fresh", () => {
    const s = profileState(
      { name: "wg0" },
      snapshot([tunnel({ name: "wg0", kind: "wireguard", peers: [wgPeer(NOW_S - 3600), wgPeer(NOW_S - 10), wgPeer(null)] })]),
      NOW_MS,
    );
    expect(s.state).toBe("up");
  });

  it("is not stale for peers that never had a handshake, nor for other kinds", () => {
    const wg = snapshot([tunnel({ name: "wg0", kind: "wireguard", peers: [wgPeer(null)] })]);
    expect(profileState({ name: "wg0" }, wg, NOW_MS).state).toBe("up");
    const udp = snapshot([tunnel({ name: "lab", peers: [peer({ last_handshake: NOW_S - 9999 })] })]);
    expect(profileState({ name: "lab" }, udp, NOW_MS).state).toBe("up");
  });

  it("keeps a reason the helper gave for an up tunnel", () => {
    const s = profileState(
      { name: "wg0" },
      snapshot([tunnel({ name: "wg0", kind: "wireguard", peers: [wgPeer(NOW_S - 999)], reason: "peer moved" })]),
      NOW_MS,
    );
    expect(s).toMatchObject({ state: "stale", reason: "peer moved" });
  });
});

describe("isPeerStale", () => {
  it("has its boundary at 180 s", () => {
    expect(isPeerStale(wgPeer(NOW_S - 180), NOW_MS)).toBe(false);
    expect(isPeerStale(wgPeer(NOW_S - 180.5), NOW_MS)).toBe(true);
    expect(isPeerStale(wgPeer(null), NOW_MS)).toBe(false);
    expect(isPeerStale(peer(), NOW_MS)).toBe(false);
  });
});

describe("kinds", () => {
  it("has packet views for udp, wireguard and tap only", () => {
    expect(["udp", "wireguard", "tap", "vxlan", "hostgw"].map((k) => hasPacketView(k as never))).toEqual([true, true, true, false, false]);
    expect(hasPacketView(null)).toBe(false);
  });
  it("calls every kind but wireguard unencrypted", () => {
    expect(["udp", "wireguard", "tap", "vxlan", "hostgw"].map((k) => isUnencrypted(k as never))).toEqual([true, false, true, true, true]);
    expect(isUnencrypted(null)).toBe(false);
  });
});

describe("withPending", () => {
  const lab = tunnel({ name: "lab" });
  const connected = tunnel({ name: "new", state: "connecting" });
  const T = NOW_MS; // when the call returned

  it("shows a connect's answer until a snapshot has the tunnel", () => {
    const pending = new Map<string, Pending>([["new", { tunnel: connected, since_ms: T }]]);
    // A snapshot that arrived just before or just after the call may have been taken before it.
    expect(withPending([lab], T - 500, pending, T + 10).map((t) => t.name)).toEqual(["lab", "new"]);
    expect(withPending([lab], T + 300, pending, T + 310).map((t) => t.name)).toEqual(["lab", "new"]);
    // Once a snapshot has it, the snapshot's status is shown.
    const fresh = tunnel({ name: "new", state: "up" });
    expect(withPending([lab, fresh], T + 900, pending, T + 910)).toEqual([lab, fresh]);
  });

  it("yields to a snapshot clearly newer than the call that disagrees", () => {
    const pending = new Map<string, Pending>([["new", { tunnel: connected, since_ms: T }]]);
    expect(withPending([lab], T + PENDING_GRACE_MS, pending, T + PENDING_GRACE_MS).map((t) => t.name)).toEqual(["lab"]);
  });

  it("hides a disconnected tunnel that an older snapshot still shows", () => {
    const pending = new Map<string, Pending>([["lab", { tunnel: null, since_ms: T }]]);
    expect(withPending([lab], T - 200, pending, T + 10)).toEqual([]);
    expect(withPending([lab], T + 2000, pending, T + 2000)).toEqual([lab]); // up again, by someone else
  });

  it("gives up after 3 s whatever the snapshots say", () => {
    const pending = new Map<string, Pending>([["lab", { tunnel: null, since_ms: T }]]);
    expect(withPending([lab], T - 1, pending, T + PENDING_MS)).toEqual([lab]);
  });

  it("leaves tunnels alone without pending calls", () => {
    expect(withPending([lab], T, new Map(), T)).toEqual([lab]);
  });
});

describe("pendingApplies", () => {
  it("ends when the snapshot agrees", () => {
    expect(pendingApplies({ tunnel: null, since_ms: NOW_MS }, false, NOW_MS - 100, NOW_MS)).toBe(false);
    expect(pendingApplies({ tunnel: tunnel({ name: "x" }), since_ms: NOW_MS }, true, NOW_MS - 100, NOW_MS)).toBe(false);
    expect(pendingApplies({ tunnel: tunnel({ name: "x" }), since_ms: NOW_MS }, false, NOW_MS - 100, NOW_MS)).toBe(true);
  });
});

describe("switchShows", () => {
  const call = { on: true, since_ms: 10_000 };
  it("shows a call's answer until a snapshot taken after it agrees, disagrees or 3 s pass", () => {
    expect(switchShows(false, undefined, 9_000, 10_100)).toBe(false);
    // The snapshot in hand is older than the call: the call stands.
    expect(switchShows(false, call, 9_500, 10_100)).toBe(true);
    // A snapshot received well after the call (over 1.2 s) was taken after it too, and wins.
    expect(switchShows(false, call, 11_300, 11_400)).toBe(false);
    // After 3 s, only the snapshots count.
    expect(switchShows(false, call, 9_500, 13_000)).toBe(false);
    expect(switchShows(true, call, 9_500, 10_100)).toBe(true);
  });
});
