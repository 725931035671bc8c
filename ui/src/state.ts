// What the app shows as a profile's state, from the latest snapshot.

import type { Kind } from "./bindings/Kind";
import type { PeerStatus } from "./bindings/PeerStatus";
import type { Snapshot } from "./bindings/Snapshot";
import type { TunnelStatus } from "./bindings/TunnelStatus";
import { ageSeconds, formatAge } from "./format";

export type DisplayState = "down" | "up" | "connecting" | "no-handshake" | "stale" | "blocked";

/** A WireGuard peer whose latest handshake is older than this is stale (WireGuard rekeys every 120 s). */
export const STALE_AFTER_S = 180;

export const STATE_LABELS: Record<DisplayState, string> = {
  down: "Down",
  up: "Up",
  connecting: "Connecting",
  "no-handshake": "No handshake",
  stale: "Stale",
  blocked: "Blocked",
};

export type ProfileState = {
  state: DisplayState;
  /** The state in words, for the text next to the colored dot. */
  label: string;
  /** Why the state is not plainly up, when known. */
  reason: string | null;
  /** The tunnel's status, or null when it is down. */
  tunnel: TunnelStatus | null;
};

/** Seconds since a peer's latest handshake at `nowMs` (Unix ms), or null before the first one. */
export function handshakeAge(peer: PeerStatus, nowMs: number): number | null {
  return ageSeconds(peer.last_handshake ?? null, nowMs);
}

/** A WireGuard peer that had a handshake, but none within the last 180 s. */
export function isPeerStale(peer: PeerStatus, nowMs: number): boolean {
  const age = handshakeAge(peer, nowMs);
  return age !== null && age > STALE_AFTER_S;
}

/**
 * The state of the profile called `name`, given the latest snapshot (null before the first one). A profile
 * whose tunnel is not in the snapshot is down. An up WireGuard tunnel is stale when its peers have had
 * handshakes but the newest of them is older than 180 s (one quiet peer of many does not make the tunnel
 * stale: the peers table marks it). `nowMs` is wall-clock Unix milliseconds (`Date.now()`), the clock of
 * `last_handshake`; a snapshot's `at_ms` is the app's monotonic clock and cannot serve here.
 */
export function profileState(
  profile: { name: string },
  snapshot: Pick<Snapshot, "tunnels"> | null,
  nowMs: number,
): ProfileState {
  const tunnel = snapshot?.tunnels.find((t) => t.name === profile.name) ?? null;
  if (!tunnel) return { state: "down", label: STATE_LABELS.down, reason: null, tunnel: null };
  const reason = tunnel.reason ?? null;
  switch (tunnel.state) {
    case "connecting":
      return { state: "connecting", label: STATE_LABELS.connecting, reason, tunnel };
    case "no handshake":
      return { state: "no-handshake", label: STATE_LABELS["no-handshake"], reason, tunnel };
    case "blocked":
      // Not up, and its kill switch keeps everything from leaving around it: the reason says how to lift it.
      return { state: "blocked", label: STATE_LABELS.blocked, reason, tunnel };
    case "up":
      break;
  }
  if (tunnel.kind === "wireguard") {
    const newest = newestHandshake(tunnel.peers);
    if (newest !== null) {
      const age = nowMs / 1000 - newest;
      if (age > STALE_AFTER_S) {
        return {
          state: "stale",
          label: STATE_LABELS.stale,
          reason:
            reason ??
            `Latest handshake ${formatAge(age)}: no peer has answered for over 3 minutes ` +
              `(an idle tunnel without PersistentKeepalive looks like this too).`,
          tunnel,
        };
      }
    }
  }
  return { state: "up", label: STATE_LABELS.up, reason, tunnel };
}

function newestHandshake(peers: ReadonlyArray<PeerStatus>): number | null {
  let newest: number | null = null;
  for (const p of peers) {
    const h = p.last_handshake;
    if (h !== null && h !== undefined && (newest === null || h > newest)) newest = h;
  }
  return newest;
}

/** Kinds whose packets pass through culvertd, so a packet view can show them. */
export function hasPacketView(kind: Kind | null | undefined): boolean {
  return kind === "udp" || kind === "wireguard" || kind === "tap";
}

/** Every kind but WireGuard sends its packets in the clear. */
export function isUnencrypted(kind: Kind | null | undefined): boolean {
  return kind !== null && kind !== undefined && kind !== "wireguard";
}

/**
 * What a connect or disconnect call just did, shown until the snapshots catch up (so the row does not flip
 * back for a moment): `tunnel` is connect's answer, or null after a disconnect; `since_ms` is when the call
 * returned, by `Date.now()`.
 */
export type Pending = { tunnel: TunnelStatus | null; since_ms: number };

/** How long a pending result may stand in for the snapshots at most. */
export const PENDING_MS = 3000;
/**
 * A snapshot received this long after a call returned was surely taken after it too (they come about once a
 * second), so where it disagrees with the call's answer it wins.
 */
export const PENDING_GRACE_MS = 1200;

/**
 * Whether a pending result still stands, given whether the latest snapshot holds the tunnel and when that
 * snapshot was received (`Date.now()` on arrival; `at_ms` is another clock). It ends once a snapshot agrees,
 * once a snapshot clearly newer than the call disagrees, and after 3 s in any case.
 */
export function pendingApplies(p: Pending, inSnapshot: boolean, receivedMs: number, nowMs: number): boolean {
  if (nowMs - p.since_ms >= PENDING_MS) return false;
  if (inSnapshot === (p.tunnel !== null)) return false;
  return receivedMs - p.since_ms < PENDING_GRACE_MS;
}

/** The snapshot's tunnels with the pending results that still stand laid over them. */
export function withPending(
  tunnels: ReadonlyArray<TunnelStatus>,
  receivedMs: number,
  pending: ReadonlyMap<string, Pending>,
  nowMs: number,
): TunnelStatus[] {
  if (pending.size === 0) return tunnels.slice();
  const out: TunnelStatus[] = [];
  const present = new Set(tunnels.map((t) => t.name));
  for (const t of tunnels) {
    const p = pending.get(t.name);
    // Only a disconnect can disagree with a tunnel that is present: hide it while that stands.
    if (!(p && pendingApplies(p, true, receivedMs, nowMs))) out.push(t);
  }
  for (const [name, p] of pending) {
    if (!present.has(name) && p.tunnel && pendingApplies(p, false, receivedMs, nowMs)) out.push(p.tunnel);
  }
  return out;
}

/**
 * A switch of culvertd's (a profile's Always on, lockdown) as a call just set it: shown instead of the
 * snapshots' word until they agree, as `Pending` is for connects.
 */
export type PendingSwitch = { on: boolean; since_ms: number };

/** What a switch shows: the snapshots' word, or the call's while that still stands (see `pendingApplies`). */
export function switchShows(snapshotOn: boolean, p: PendingSwitch | undefined, receivedMs: number, nowMs: number): boolean {
  if (!p || snapshotOn === p.on || nowMs - p.since_ms >= PENDING_MS) return snapshotOn;
  return receivedMs - p.since_ms < PENDING_GRACE_MS ? p.on : snapshotOn;
}
