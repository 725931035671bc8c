import { describe, expect, it } from "vitest";
import { ageSeconds, formatAge, formatBytes, formatDuration, formatEndpoint, formatHealth, formatRate, shortKey } from "./format";

describe("formatBytes", () => {
  it("counts in bytes below 1000", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1)).toBe("1 B");
    expect(formatBytes(999)).toBe("999 B");
  });
  it("uses 1000-based units, one decimal below 10", () => {
    expect(formatBytes(1000)).toBe("1.0 kB");
    expect(formatBytes(1234)).toBe("1.2 kB");
    expect(formatBytes(1_200_000)).toBe("1.2 MB");
    expect(formatBytes(14_000_000)).toBe("14 MB");
    expect(formatBytes(123_456_789)).toBe("123 MB");
    expect(formatBytes(5.5e9)).toBe("5.5 GB");
    expect(formatBytes(2e12)).toBe("2.0 TB");
  });
  it("moves up a unit rather than showing 1000", () => {
    expect(formatBytes(999_600)).toBe("1.0 MB");
    expect(formatBytes(999_499)).toBe("999 kB");
  });
  it("copes with odd input", () => {
    expect(formatBytes(Number.NaN)).toBe("—");
    expect(formatBytes(-1500)).toBe("-1.5 kB");
  });
});

describe("formatRate", () => {
  it("is bytes per second", () => {
    expect(formatRate(1_200_000)).toBe("1.2 MB/s");
    expect(formatRate(0)).toBe("0 B/s");
    expect(formatRate(512.4)).toBe("512 B/s");
  });
});

describe("formatAge", () => {
  it("says never without a time", () => {
    expect(formatAge(null)).toBe("never");
    expect(formatAge(undefined)).toBe("never");
  });
  it("uses seconds, minutes, hours and days", () => {
    expect(formatAge(0)).toBe("0 s ago");
    expect(formatAge(12)).toBe("12 s ago");
    expect(formatAge(12.9)).toBe("12 s ago");
    expect(formatAge(59)).toBe("59 s ago");
    expect(formatAge(60)).toBe("1 min ago");
    expect(formatAge(180)).toBe("3 min ago");
    expect(formatAge(3599)).toBe("59 min ago");
    expect(formatAge(3600)).toBe("1 h ago");
    expect(formatAge(86400 * 2 + 5)).toBe("2 d ago");
  });
  it("reads a slightly future time as now", () => {
    expect(formatAge(-2)).toBe("0 s ago");
  });
});

describe("ageSeconds", () => {
  it("measures from Unix seconds to Unix milliseconds", () => {
    expect(ageSeconds(1_700_000_000, 1_700_000_012_000)).toBe(12);
    expect(ageSeconds(null, 1_700_000_012_000)).toBeNull();
    expect(ageSeconds(undefined, 5)).toBeNull();
  });
});

describe("formatDuration", () => {
  it("reads naturally", () => {
    expect(formatDuration(45)).toBe("45 s");
    expect(formatDuration(720)).toBe("12 min");
    expect(formatDuration(3 * 3600)).toBe("3 h");
    expect(formatDuration(3 * 3600 + 5 * 60)).toBe("3 h 5 min");
    expect(formatDuration(2 * 86400 + 4 * 3600)).toBe("2 d 4 h");
  });
});

describe("shortKey", () => {
  it("keeps the first 8 characters of a WireGuard key", () => {
    const key = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
    expect(shortKey(key)).toBe("xTIBA5rb…");
  });
  it("leaves short strings alone", () => {
    expect(shortKey("abc")).toBe("abc");
    expect(shortKey("123456789")).toBe("123456789");
  });
});

describe("formatHealth", () => {
  it("is what the top bar shows", () => {
    expect(formatHealth(1.234, 14_000_000)).toBe("1.2% CPU, 14 MB");
    expect(formatHealth(0, 9_800_000)).toBe("0.0% CPU, 9.8 MB");
    expect(formatHealth(37.6, 21_000_000)).toBe("38% CPU, 21 MB");
  });
});

describe("formatEndpoint", () => {
  it("writes ip:port, IPv6 in brackets", () => {
    expect(formatEndpoint("10.0.0.1", 53)).toBe("10.0.0.1:53");
    expect(formatEndpoint("fe80::1", 546)).toBe("[fe80::1]:546");
    expect(formatEndpoint("10.0.0.1", null)).toBe("10.0.0.1");
    expect(formatEndpoint("fe80::1", undefined)).toBe("fe80::1");
    expect(formatEndpoint(null, 53)).toBe("");
  });
});
