import { describe, expect, it } from "vitest";
import { RateSeries, SeriesBook } from "./series";

const T0 = 1_764_000_000_000;
const c = (rx: number, tx: number) => ({ rx_bytes: rx, tx_bytes: tx });

describe("RateSeries", () => {
  it("gives no rate for the first snapshot", () => {
    const s = new RateSeries();
    s.push(T0, c(5000, 7000));
    expect(s.length).toBe(0);
    expect(s.latest()).toBeNull();
    expect(s.data()).toEqual([[], [], []]);
  });

  it("computes bytes per second from at_ms differences", () => {
    const s = new RateSeries();
    s.push(T0, c(0, 0));
    s.push(T0 + 1000, c(1000, 500));
    s.push(T0 + 3000, c(5000, 500)); // 2 s later: 4000 B in 2 s
    s.push(T0 + 3500, c(5500, 1500)); // half a second: 500 B and 1000 B
    expect(s.data()).toEqual([
      [(T0 + 1000) / 1000, (T0 + 3000) / 1000, (T0 + 3500) / 1000],
      [1000, 2000, 1000],
      [500, 0, 2000],
    ]);
    expect(s.latest()).toEqual({ rx: 1000, tx: 2000 });
  });

  it("gives x values relative to the newest point", () => {
    const s = new RateSeries();
    for (let i = 0; i <= 3; i++) s.push(T0 + i * 1000, c(i * 100, i * 10));
    expect(s.relativeData()[0]).toEqual([-2, -1, 0]);
    expect(s.relativeData()[1]).toEqual([100, 100, 100]);
  });

  it("resets when a counter goes backwards", () => {
    const s = new RateSeries();
    s.push(T0, c(1000, 1000));
    s.push(T0 + 1000, c(3000, 2000));
    expect(s.length).toBe(1);
    s.push(T0 + 2000, c(100, 5000)); // rx went back: the tunnel was restarted
    expect(s.length).toBe(0);
    s.push(T0 + 3000, c(600, 5100)); // rated against the new baseline
    expect(s.data()[1]).toEqual([500]);
    expect(s.data()[2]).toEqual([100]);
  });

  it("resets on a tx decrease alone too", () => {
    const s = new RateSeries();
    s.push(T0, c(0, 1000));
    s.push(T0 + 1000, c(10, 2000));
    s.push(T0 + 2000, c(20, 5));
    expect(s.length).toBe(0);
  });

  it("resets when the tunnel goes down, and needs a new baseline after", () => {
    const s = new RateSeries();
    s.push(T0, c(0, 0));
    s.push(T0 + 1000, c(100, 100));
    s.push(T0 + 2000, null);
    expect(s.length).toBe(0);
    s.push(T0 + 3000, c(500, 500)); // up again with higher counters: only a baseline
    expect(s.length).toBe(0);
    s.push(T0 + 4000, c(700, 900));
    expect(s.data()[1]).toEqual([200]);
  });

  it("ignores a repeated or out-of-order snapshot", () => {
    const s = new RateSeries();
    s.push(T0, c(0, 0));
    s.push(T0 + 1000, c(100, 100));
    s.push(T0 + 1000, c(100, 100));
    s.push(T0 + 500, c(100, 100));
    expect(s.length).toBe(1);
  });

  it("keeps 300 points", () => {
    const s = new RateSeries();
    for (let i = 0; i <= 400; i++) s.push(T0 + i * 1000, c(i * 1000, 0));
    expect(s.length).toBe(300);
    const [x] = s.data();
    expect(x[0]).toBe((T0 + 101_000) / 1000);
    expect(x[299]).toBe((T0 + 400_000) / 1000);
  });

  it("drops points older than 5 minutes after a gap", () => {
    const s = new RateSeries();
    for (let i = 0; i <= 10; i++) s.push(T0 + i * 1000, c(i * 1000, 0));
    expect(s.length).toBe(10);
    s.push(T0 + 200_000, c(20_000, 0));
    expect(s.length).toBe(11);
    s.push(T0 + 305_500, c(30_000, 0)); // points from T0+1 s..T0+5 s are now over 300 s old
    const [x] = s.relativeData();
    expect(Math.min(...x)).toBeGreaterThanOrEqual(-300);
    expect(s.length).toBe(7);
  });
});

describe("SeriesBook", () => {
  it("feeds every tunnel of a snapshot and resets the ones that went away", () => {
    const b = new SeriesBook();
    b.feed(T0, [{ name: "a", ...c(0, 0) }, { name: "b", ...c(0, 0) }]);
    b.feed(T0 + 1000, [{ name: "a", ...c(1000, 0) }, { name: "b", ...c(2000, 0) }]);
    expect(b.get("a").latest()).toEqual({ rx: 1000, tx: 0 });
    b.feed(T0 + 2000, [{ name: "a", ...c(3000, 0) }]); // b went down
    expect(b.get("b").length).toBe(0);
    expect(b.get("a").length).toBe(2);
    b.feed(T0 + 3000, [{ name: "a", ...c(4000, 0) }, { name: "b", ...c(50, 0) }]);
    expect(b.get("b").length).toBe(0); // back up: a baseline only
  });

  it("forgets names it is not told to keep", () => {
    const b = new SeriesBook();
    b.feed(T0, [{ name: "a", ...c(0, 0) }]);
    b.feed(T0 + 1000, [{ name: "a", ...c(10, 0) }]);
    b.retain(new Set(["other"]));
    expect(b.get("a").length).toBe(0);
  });
});
