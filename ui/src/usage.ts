// The usage tab's arithmetic. The Rust side lists only the days that had traffic; the chart wants every day of
// the window, oldest first, ending today.

import type { UsageReport } from "./bindings/UsageReport";

/** How many days the usage tab shows. */
export const USAGE_DAYS = 30;

const DAY_MS = 86_400_000;
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

export type UsageDay = { day: string; rx: number; tx: number; total: number };

export type UsageWindow = {
  /** Every day of the window, oldest first; the last one is today. */
  days: UsageDay[];
  today: UsageDay;
  rx: number;
  tx: number;
  total: number;
  /** The largest daily total: the top of the chart. */
  max: number;
};

/** Days since 1970-01-01 of a `YYYY-MM-DD` date, or null when it is no such date (2026-02-30). */
export function dayNumber(day: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (!m) return null;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  // Date.UTC maps years 0-99 to 1900-1999, and rolls over out-of-range days: both show in the round trip.
  return dayString(ms / DAY_MS) === day ? ms / DAY_MS : null;
}

/** The `YYYY-MM-DD` of a day number. */
export function dayString(n: number): string {
  return new Date(n * DAY_MS).toISOString().slice(0, 10);
}

/**
 * The `count` dates ending at `today`, oldest first. The dates are calendar days counted in UTC on the date
 * itself, so no time zone or DST change can skip or repeat one. Empty when `today` is not a date.
 */
export function windowDates(today: string, count: number): string[] {
  const end = dayNumber(today);
  if (end === null) return [];
  return Array.from({ length: Math.max(0, count) }, (_, i) => dayString(end - count + 1 + i));
}

function usageDay(day: string, rx: number, tx: number): UsageDay {
  return { day, rx, tx, total: rx + tx };
}

/** Fills the window with the report's days: the days it does not list moved nothing. */
export function fillWindow(report: UsageReport, count = USAGE_DAYS): UsageWindow {
  const byDay = new Map<string, { rx: number; tx: number }>();
  for (const d of report.days) {
    const seen = byDay.get(d.day) ?? { rx: 0, tx: 0 };
    byDay.set(d.day, { rx: seen.rx + d.rx_bytes, tx: seen.tx + d.tx_bytes });
  }
  let dates = windowDates(report.today, count);
  // A today that is not a date cannot place the window: show the listed days as they are.
  if (dates.length === 0) dates = [...byDay.keys()].sort();
  const days = dates.map((day) => usageDay(day, byDay.get(day)?.rx ?? 0, byDay.get(day)?.tx ?? 0));
  let rx = 0;
  let tx = 0;
  let max = 0;
  for (const d of days) {
    rx += d.rx;
    tx += d.tx;
    max = Math.max(max, d.total);
  }
  const last = days.at(-1);
  const today = last && last.day === report.today ? last : usageDay(report.today, 0, 0);
  return { days, today, rx, tx, total: rx + tx, max };
}

/** A day's stacked bar: received at the bottom, sent on top, in the chart's height units. */
export type Bar = { rx: number; tx: number };

/**
 * Bar heights scaled so the busiest day fills `height`. A day that moved anything gets at least `minHeight`,
 * so a quiet day next to a busy one still shows; a window without traffic is all zeros (never NaN).
 */
export function barHeights(days: readonly UsageDay[], height: number, minHeight = 0): Bar[] {
  const max = days.reduce((m, d) => Math.max(m, d.total), 0);
  return days.map((d) => {
    if (max <= 0 || d.total <= 0) return { rx: 0, tx: 0 };
    const total = Math.min(height, Math.max(minHeight, (d.total / max) * height));
    const rx = (d.rx / d.total) * total;
    return { rx, tx: total - rx };
  });
}

/** "Nov 25", from `2026-11-25`, the same in every locale. */
export function shortDate(day: string): string {
  const n = dayNumber(day);
  if (n === null) return day;
  const [, month, date] = day.split("-").map(Number);
  return `${MONTHS[month - 1]} ${date}`;
}

/**
 * Which days of the window get a date under the chart: today, and every `every` days back from it, so the
 * labels stay on the same weekday as the window moves.
 */
export function labelledDays(count: number, every = 7): number[] {
  const out: number[] = [];
  for (let i = count - 1; i >= 0; i -= every) out.unshift(i);
  return out;
}
