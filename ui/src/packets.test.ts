import { describe, expect, it } from "vitest";
import { addBatch, clearRows, emptyPacketList, matchesFilter, relativeTime, setFilter, setPaused, visibleRows } from "./packets";
import { sample } from "./test/fixtures";

const batch = (samples: ReturnType<typeof sample>[], missed = 0) => ({ samples, missed });

describe("addBatch", () => {
  it("puts new samples on top, newest first", () => {
    let l = emptyPacketList();
    l = addBatch(l, batch([sample({ at_ms: 1 }), sample({ at_ms: 2 })]));
    l = addBatch(l, batch([sample({ at_ms: 3 }), sample({ at_ms: 5 }), sample({ at_ms: 4 })]));
    expect(l.rows.map((r) => r.at_ms)).toEqual([5, 4, 3, 2, 1]);
    expect(new Set(l.rows.map((r) => r.id)).size).toBe(5);
  });

  it("keeps samples with the same time in arrival order, the later on top", () => {
    const l = addBatch(emptyPacketList(), batch([sample({ at_ms: 7, len: 1 }), sample({ at_ms: 7, len: 2 })]));
    expect(l.rows.map((r) => r.len)).toEqual([2, 1]);
  });

  it("keeps at most 500 rows, dropping the oldest", () => {
    let l = emptyPacketList();
    for (let b = 0; b < 6; b++) l = addBatch(l, batch(Array.from({ length: 100 }, (_, i) => sample({ at_ms: b * 100 + i }))));
    expect(l.rows.length).toBe(500);
    expect(l.rows[0].at_ms).toBe(599);
    expect(l.rows[499].at_ms).toBe(100);
  });

  it("caps a single batch larger than the list", () => {
    const l = addBatch(emptyPacketList(10), batch(Array.from({ length: 25 }, (_, i) => sample({ at_ms: i }))));
    expect(l.rows.map((r) => r.at_ms)).toEqual([24, 23, 22, 21, 20, 19, 18, 17, 16, 15]);
  });

  it("drops samples while paused, and counts them", () => {
    let l = addBatch(emptyPacketList(), batch([sample({ at_ms: 1 })]));
    l = setPaused(l, true);
    l = addBatch(l, batch([sample({ at_ms: 2 }), sample({ at_ms: 3 })]));
    expect(l.rows.map((r) => r.at_ms)).toEqual([1]);
    expect(l.droppedWhilePaused).toBe(2);
    l = setPaused(l, false);
    l = addBatch(l, batch([sample({ at_ms: 4 })]));
    expect(l.rows.map((r) => r.at_ms)).toEqual([4, 1]);
  });

  it("adds up what the helper missed, even in empty batches", () => {
    let l = addBatch(emptyPacketList(), batch([], 3));
    l = addBatch(l, batch([sample()], 2));
    expect(l.missed).toBe(5);
  });

  it("formats addresses with ports, IPv6 in brackets", () => {
    const l = addBatch(
      emptyPacketList(),
      batch([
        sample({ src: "fe80::1", src_port: 546, dst: "ff02::1:2", dst_port: 547 }),
        sample({ protocol: "icmp", src: "10.0.0.1", src_port: null, dst: "10.0.0.2", dst_port: undefined }),
        sample({ protocol: "arp", src: null, dst: null }),
      ]),
    );
    expect(l.rows.map((r) => [r.source, r.destination])).toEqual([
      ["", ""],
      ["10.0.0.1", "10.0.0.2"],
      ["[fe80::1]:546", "[ff02::1:2]:547"],
    ]);
  });

  it("measures time from the first sample of the view", () => {
    const l = addBatch(emptyPacketList(), batch([sample({ at_ms: 10_000 }), sample({ at_ms: 12_345 })]));
    expect(relativeTime(l, 12_345)).toBe("2.345");
    expect(relativeTime(l, 10_000)).toBe("0.000");
  });

  it("clears rows but keeps pause and filter", () => {
    let l = addBatch(emptyPacketList(), batch([sample()], 4));
    l = setFilter(setPaused(l, true), "tcp");
    l = clearRows(l);
    expect(l.rows).toEqual([]);
    expect(l.missed).toBe(0);
    expect(l.paused).toBe(true);
    expect(l.filter).toBe("tcp");
  });
});

describe("filter", () => {
  const rows = addBatch(
    emptyPacketList(),
    batch([
      sample({ at_ms: 1, protocol: "udp", src: "10.9.0.1", src_port: 40000, dst: "10.9.0.53", dst_port: 53 }),
      sample({ at_ms: 2, protocol: "tcp", src: "10.9.0.1", src_port: 51234, dst: "10.9.0.2", dst_port: 443 }),
      sample({ at_ms: 3, protocol: "udp", src: "fe80::1", src_port: 546, dst: "ff02::1:2", dst_port: 547 }),
      sample({ at_ms: 4, protocol: "icmpv6", src: "2001:db8::5", src_port: null, dst: "2001:db8::1", dst_port: null }),
      sample({ at_ms: 5, protocol: "icmp", src: "10.9.0.2", src_port: null, dst: "10.9.0.1", dst_port: null }),
    ]),
  );
  const shown = (f: string) => visibleRows(setFilter(rows, f)).map((r) => r.at_ms);

  it("shows everything without a filter", () => {
    expect(shown("")).toEqual([5, 4, 3, 2, 1]);
    expect(shown("   ")).toEqual([5, 4, 3, 2, 1]);
  });

  it("matches ports", () => {
    expect(shown(":53")).toEqual([1]);
    expect(shown(":443")).toEqual([2]);
    expect(shown("]:547")).toEqual([3]);
  });

  it("matches IPv6 addresses, with or without brackets", () => {
    expect(shown("fe80::1")).toEqual([3]);
    expect(shown("[fe80::1]:546")).toEqual([3]);
    expect(shown("2001:DB8::")).toEqual([4]);
    expect(shown("ff02::1:2")).toEqual([3]);
  });

  it("matches protocols, case-insensitively, as substrings", () => {
    expect(shown("TCP")).toEqual([2]);
    expect(shown("icmp")).toEqual([5, 4]);
    expect(shown("icmpv6")).toEqual([4]);
  });

  it("needs every word to match", () => {
    expect(shown("udp 10.9.0.53")).toEqual([1]);
    expect(shown("icmp 10.9.0.2")).toEqual([5]);
    expect(shown("tcp fe80")).toEqual([]);
  });

  it("does not look at the length or direction", () => {
    expect(matchesFilter({ protocol: "udp", source: "10.0.0.1:1", destination: "10.0.0.2:2" }, "84")).toBe(false);
    expect(shown("out")).toEqual([]);
  });
});
