// Builders of the Rust side's types, for tests.
import type { HelperState } from "../bindings/HelperState";
import type { PacketSample } from "../bindings/PacketSample";
import type { PeerStatus } from "../bindings/PeerStatus";
import type { ProfileSummary } from "../bindings/ProfileSummary";
import type { Snapshot } from "../bindings/Snapshot";
import type { TunnelStatus } from "../bindings/TunnelStatus";

/** Wall-clock time (Unix ms) of the tests: Date.now() and the "now" of handshake ages. */
export const NOW_MS = 1_764_000_000_000;
export const NOW_S = NOW_MS / 1000;
/** What the fake usage book calls today: the date of NOW_MS in UTC. */
export const TODAY = "2025-11-24";
/** A snapshot's `at_ms`: the app's monotonic clock, milliseconds since it started. */
export const AT_MS = 60_000;

export function peer(p: Partial<PeerStatus> = {}): PeerStatus {
  return { endpoint: "172.31.0.2:8285", allowed_ips: ["10.9.0.0/24"], rx_bytes: 0, tx_bytes: 0, rx_packets: 0, tx_packets: 0, ...p };
}

export function wgPeer(lastHandshake: number | null, p: Partial<PeerStatus> = {}): PeerStatus {
  return peer({
    endpoint: "198.51.100.7:51820",
    allowed_ips: ["10.8.0.2/32", "192.168.50.0/24"],
    public_key: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
    last_handshake: lastHandshake,
    ...p,
  });
}

export function tunnel(t: Partial<TunnelStatus> & { name: string }): TunnelStatus {
  return {
    kind: "udp",
    state: "up",
    reason: null,
    interface: t.name,
    listen_port: 8285,
    owner_uid: 1000,
    up_since: NOW_S - 600,
    peers: [peer()],
    rx_bytes: 0,
    tx_bytes: 0,
    rx_packets: 0,
    tx_packets: 0,
    dropped: 0,
    drops: {},
    cookie_replies: 0,
    ...t,
  };
}

export const OK: HelperState = { kind: "ok", message: "", socket: "/run/culvert/culvertd.sock", helper_version: "0.4.0" };

export function snapshot(tunnels: TunnelStatus[], s: Partial<Snapshot> = {}): Snapshot {
  return {
    helper: OK,
    tunnels,
    others: [],
    system_tunnels: [],
    lockdown: false,
    health: { pid: 42, cpu_percent: 1.2, rss_bytes: 14_000_000 },
    at_ms: AT_MS,
    ...s,
  };
}

export function profile(name: string, kind: ProfileSummary["kind"] = "udp", p: Partial<ProfileSummary> = {}): ProfileSummary {
  return { name, kind, encrypted: kind === "wireguard", problem: null, ...p };
}

export function sample(p: Partial<PacketSample> = {}): PacketSample {
  return { at_ms: 1000, direction: "out", protocol: "udp", src: "10.9.0.1", dst: "10.9.0.2", src_port: 40000, dst_port: 53, len: 84, ...p };
}

/** A WireGuard key pair, as generate_keypair answers. */
export const KEYPAIR = {
  private_key: "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=",
  public_key: "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
};
