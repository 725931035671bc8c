import { afterEach, describe, expect, it, vi } from "vitest";
import type { DayUsage } from "./bindings/DayUsage";
import { barHeights, dayNumber, fillWindow, labelledDays, shortDate, windowDates, type UsageDay } from "./usage";

const d = (day: string, rx: number, tx: number): DayUsage => ({ day, rx_bytes: rx, tx_bytes: tx });
const ud = (day: string, rx: number, tx: number): UsageDay => ({ day, rx, tx, total: rx + tx });

afterEach(() => {
  vi.unstubAllEnvs();
});

describe("windowDates", () => {
  it("ends at today, oldest first, across a month end", () => {
    expect(windowDates("2026-12-02", 4)).toEqual(["2026-11-29", "2026-11-30", "2026-12-01", "2026-12-02"]);
  });

  it("crosses a year end", () => {
    expect(windowDates("2027-01-01", 3)).toEqual(["2026-12-30", "2026-12-31", "2027-01-01"]);
  });

  it("holds the leap day, and no February 29 in other years", () => {
    expect(windowDates("2028-03-01", 3)).toEqual(["2028-02-28", "2028-02-29", "2028-03-01"]);
    expect(windowDates("2027-03-01", 2)).toEqual(["2027-02-28", "2027-03-01"]);
  });

  it("gives 30 distinct consecutive days, whatever the time zone and its DST changes", () => {
    // Europe/Berlin leaves DST on 2026-10-25; a day counted in local milliseconds would repeat there.
    for (const tz of ["Europe/Berlin", "America/New_York", "Pacific/Auckland", "UTC"]) {
      vi.stubEnv("TZ", tz);
      const dates = windowDates("2026-11-10", 30);
      expect(dates.length).toBe(30);
      expect(new Set(dates).size).toBe(30);
      expect(dates[0]).toBe("2026-10-12");
      expect(dates.at(-1)).toBe("2026-11-10");
      expect(dates).toContain("2026-10-25");
    }
  });

  it("is empty for a today that is not a date", () => {
    expect(windowDates("yesterday", 30)).toEqual([]);
    expect(windowDates("2026-02-30", 30)).toEqual([]);
    expect(dayNumber("2026-13-01")).toBeNull();
    expect(dayNumber("1970-01-02")).toBe(1);
  });
});

describe("fillWindow", () => {
  it("fills the days the report leaves out with zeros", () => {
    const w = fillWindow({ name: "office", today: "2026-11-25", days: [d("2026-11-20", 100, 10), d("2026-11-25", 7, 3)] }, 7);
    expect(w.days.map((x) => x.day)).toEqual([
      "2026-11-19",
      "2026-11-20",
      "2026-11-21",
      "2026-11-22",
      "2026-11-23",
      "2026-11-24",
      "2026-11-25",
    ]);
    expect(w.days.map((x) => x.total)).toEqual([0, 110, 0, 0, 0, 0, 10]);
    expect(w.days[1]).toEqual(ud("2026-11-20", 100, 10));
    expect(w.today).toEqual(ud("2026-11-25", 7, 3));
  });

  it("adds up the window's totals and finds its busiest day", () => {
    const w = fillWindow({
      name: "office",
      today: "2027-01-02",
      days: [d("2026-12-31", 5_000_000_000, 1_000_000_000), d("2027-01-01", 1, 2), d("2027-01-02", 300, 400)],
    });
    expect(w.days.length).toBe(30);
    expect(w.days[0].day).toBe("2026-12-04");
    expect(w.rx).toBe(5_000_000_301);
    expect(w.tx).toBe(1_000_000_402);
    expect(w.total).toBe(6_000_000_703);
    expect(w.max).toBe(6_000_000_000);
    expect(w.today.total).toBe(700);
  });

  it("says today moved nothing when the report has no day for it", () => {
    const w = fillWindow({ name: "lab", today: "2028-02-29", days: [d("2028-02-28", 9, 1)] }, 2);
    expect(w.days).toEqual([ud("2028-02-28", 9, 1), ud("2028-02-29", 0, 0)]);
    expect(w.today).toEqual(ud("2028-02-29", 0, 0));
  });

  it("is all zeros for an empty report", () => {
    const w = fillWindow({ name: "lab", today: "2026-11-25", days: [] });
    expect(w.days.length).toBe(30);
    expect(w.days.every((x) => x.total === 0)).toBe(true);
    expect([w.rx, w.tx, w.total, w.max]).toEqual([0, 0, 0, 0]);
  });

  it("leaves out days outside the window and adds up a day listed twice", () => {
    const w = fillWindow({ name: "lab", today: "2026-11-25", days: [d("2026-10-01", 50, 50), d("2026-11-25", 1, 1), d("2026-11-25", 2, 2)] }, 3);
    expect(w.total).toBe(6);
    expect(w.today).toEqual(ud("2026-11-25", 3, 3));
  });
});

describe("barHeights", () => {
  it("scales to the busiest day and stacks sent on received", () => {
    const bars = barHeights([ud("a", 50, 50), ud("b", 150, 50), ud("c", 0, 0)], 100);
    expect(bars).toEqual([
      { rx: 25, tx: 25 },
      { rx: 75, tx: 25 },
      { rx: 0, tx: 0 },
    ]);
  });

  it("is all zeros when nothing moved", () => {
    const bars = barHeights([ud("a", 0, 0), ud("b", 0, 0)], 100, 2);
    expect(bars).toEqual([
      { rx: 0, tx: 0 },
      { rx: 0, tx: 0 },
    ]);
    expect(barHeights([], 100)).toEqual([]);
  });

  it("keeps a quiet day visible next to a busy one", () => {
    const [busy, quiet] = barHeights([ud("a", 1_000_000_000, 0), ud("b", 0, 10)], 100, 2);
    expect(busy).toEqual({ rx: 100, tx: 0 });
    expect(quiet).toEqual({ rx: 0, tx: 2 });
  });
});

describe("labels", () => {
  it("writes dates the same in every locale", () => {
    expect(shortDate("2026-11-05")).toBe("Nov 5");
    expect(shortDate("2028-02-29")).toBe("Feb 29");
    expect(shortDate("soon")).toBe("soon");
  });

  it("labels today and every week back from it", () => {
    expect(labelledDays(30)).toEqual([1, 8, 15, 22, 29]);
    expect(labelledDays(3)).toEqual([2]);
  });
});
