// The packet list of the Packets tab: sampled packet headers, newest first, at most 500 kept.

import type { PacketBatch } from "./bindings/PacketBatch";
import type { PacketSample } from "./bindings/PacketSample";
import { formatEndpoint } from "./format";

export const MAX_PACKET_ROWS = 500;

export type PacketRow = PacketSample & {
  /** A key for the UI, unique within one list. */
  id: number;
  /** `ip:port` (IPv6 in brackets), or the bare address. */
  source: string;
  destination: string;
};

export type PacketList = {
  /** Newest first. */
  rows: PacketRow[];
  paused: boolean;
  filter: string;
  /** Samples the helper could not deliver (the app fell behind), as its batches reported. */
  missed: number;
  /** Samples that arrived while paused and were dropped. */
  droppedWhilePaused: number;
  /** `at_ms` of the first sample seen, the zero of the time column. */
  t0: number | null;
  nextId: number;
  cap: number;
};

export function emptyPacketList(cap = MAX_PACKET_ROWS): PacketList {
  return { rows: [], paused: false, filter: "", missed: 0, droppedWhilePaused: 0, t0: null, nextId: 1, cap };
}

/**
 * Adds a batch. Its samples go on top, newest first (by `at_ms`; a batch in arrival order stays in order),
 * and the oldest rows beyond the cap fall off. While paused the samples are dropped (and counted), the list
 * stays as it is.
 */
export function addBatch(list: PacketList, batch: Pick<PacketBatch, "samples" | "missed">): PacketList {
  const missed = list.missed + (batch.missed || 0);
  if (batch.samples.length === 0) return missed === list.missed ? list : { ...list, missed };
  if (list.paused) return { ...list, missed, droppedWhilePaused: list.droppedWhilePaused + batch.samples.length };
  let nextId = list.nextId;
  // Only the newest `cap` can be shown; a batch arrives in the helper's order, oldest first.
  const recent = batch.samples.length > list.cap ? batch.samples.slice(batch.samples.length - list.cap) : batch.samples;
  const fresh: PacketRow[] = recent.map((s) => ({
    ...s,
    id: nextId++,
    source: formatEndpoint(s.src, s.src_port),
    destination: formatEndpoint(s.dst, s.dst_port),
  }));
  // Newest first; ties keep the later-arrived sample on top.
  fresh.reverse();
  fresh.sort((a, b) => b.at_ms - a.at_ms);
  let t0 = list.t0;
  for (const s of batch.samples) if (t0 === null || s.at_ms < t0) t0 = s.at_ms;
  const rows = fresh.length >= list.cap ? fresh.slice(0, list.cap) : fresh.concat(list.rows.slice(0, list.cap - fresh.length));
  return { ...list, rows, missed, t0, nextId };
}

export function setPaused(list: PacketList, paused: boolean): PacketList {
  return list.paused === paused ? list : { ...list, paused };
}

export function setFilter(list: PacketList, filter: string): PacketList {
  return list.filter === filter ? list : { ...list, filter };
}

/** Empties the list, keeping pause and filter. */
export function clearRows(list: PacketList): PacketList {
  return { ...list, rows: [], missed: 0, droppedWhilePaused: 0, t0: null };
}

/**
 * Whether a row matches a filter: every word of the filter (case-insensitive) must be a substring of the
 * protocol, the source or the destination, where addresses read as `ip:port` and IPv6 ones as `[ip]:port`.
 * So `:53` finds DNS either way, `fe80::` any link-local IPv6 address, `tcp 10.0.0.2` TCP to or from that host.
 */
export function matchesFilter(row: Pick<PacketRow, "protocol" | "source" | "destination">, filter: string): boolean {
  const words = filter.trim().toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return true;
  const fields = [row.protocol.toLowerCase(), row.source.toLowerCase(), row.destination.toLowerCase()];
  return words.every((w) => fields.some((f) => f.includes(w)));
}

/** The rows to show: all of them, or those matching the filter. */
export function visibleRows(list: PacketList): PacketRow[] {
  return list.filter.trim() ? list.rows.filter((r) => matchesFilter(r, list.filter)) : list.rows;
}

/** The time column: seconds since the first sample of the view, "12.345". */
export function relativeTime(list: Pick<PacketList, "t0">, atMs: number): string {
  return ((atMs - (list.t0 ?? atMs)) / 1000).toFixed(3);
}
