// Human-readable numbers, as the app shows them. Units are decimal (1 kB = 1000 B), like the CLI's.

const UNITS = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];

/** "0 B", "999 B", "1.2 kB", "14 MB": one decimal below 10 of a unit, none above. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return "—";
  const sign = bytes < 0 ? "-" : "";
  let value = Math.abs(bytes);
  if (value < 1000) return `${sign}${Math.round(value)} B`;
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit += 1;
  }
  let text = value < 10 ? value.toFixed(1) : value.toFixed(0);
  // 999.6 kB rounds to "1000 kB": say "1.0 MB" instead.
  if (Number(text) >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit += 1;
    text = value.toFixed(1);
  }
  return `${sign}${text} ${UNITS[unit]}`;
}

/** A rate in bytes per second: "1.2 MB/s". */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** A plain count with thousands separators: "12,345". */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/**
 * How long ago something happened, from an age in seconds: "12 s ago", "3 min ago", "5 h ago", "2 d ago",
 * or "never" for null. A negative age (clocks a little apart) reads as "0 s ago".
 */
export function formatAge(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "never";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** A duration without "ago": "45 s", "12 min", "3 h 5 min", "2 d 4 h". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) {
    const m = Math.floor((s % 3600) / 60);
    return m ? `${Math.floor(s / 3600)} h ${m} min` : `${Math.floor(s / 3600)} h`;
  }
  const h = Math.floor((s % 86400) / 3600);
  return h ? `${Math.floor(s / 86400)} d ${h} h` : `${Math.floor(s / 86400)} d`;
}

/** Seconds since a Unix time in seconds, measured at `nowMs` (Unix milliseconds); null stays null. */
export function ageSeconds(unixSeconds: number | null | undefined, nowMs: number): number | null {
  if (unixSeconds === null || unixSeconds === undefined) return null;
  return nowMs / 1000 - unixSeconds;
}

/** A WireGuard public key shortened for a table: its first 8 characters and an ellipsis. */
export function shortKey(key: string, keep = 8): string {
  return key.length <= keep + 1 ? key : `${key.slice(0, keep)}…`;
}

/** "1.2% CPU, 14 MB", the helper's own footprint. */
export function formatHealth(cpuPercent: number, rssBytes: number): string {
  const cpu = cpuPercent < 10 ? cpuPercent.toFixed(1) : cpuPercent.toFixed(0);
  return `${cpu}% CPU, ${formatBytes(rssBytes)}`;
}

/** `ip:port`, with IPv6 addresses in brackets (`[fe80::1]:546`); the bare address when there is no port. */
export function formatEndpoint(ip: string | null | undefined, port: number | null | undefined): string {
  if (!ip) return "";
  if (port === null || port === undefined) return ip;
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}
