// The live rate series of one tunnel: receive and transmit rates in bytes per second, computed from the
// counters of successive snapshots and the snapshots' `at_ms`.

/** What the series needs from a tunnel's status (a TunnelStatus fits). */
export type ByteCounters = { rx_bytes: number; tx_bytes: number };

/** uPlot's data: x values, then one array per series (rx, tx). */
export type SeriesData = [number[], number[], number[]];

/** 5 minutes at 1-second resolution. */
export const SERIES_POINTS = 300;
export const SERIES_WINDOW_S = 300;

export class RateSeries {
  private readonly capacity: number;
  private readonly windowMs: number;
  private prev: { at_ms: number; rx: number; tx: number } | null = null;
  private at: number[] = [];
  private rx: number[] = [];
  private tx: number[] = [];

  constructor(capacity = SERIES_POINTS, windowSeconds = SERIES_WINDOW_S) {
    this.capacity = capacity;
    this.windowMs = windowSeconds * 1000;
  }

  /**
   * Feeds one snapshot: the tunnel's counters at `at_ms`, or null when the tunnel is down (which ends the
   * series). The first counters after a (re)start only set the baseline; each later one adds a point. A counter
   * that goes backwards (the tunnel was brought down and up again between snapshots) starts the series over.
   */
  push(atMs: number, counters: ByteCounters | null): void {
    if (counters === null) {
      this.reset();
      return;
    }
    const { rx_bytes: rx, tx_bytes: tx } = counters;
    const prev = this.prev;
    if (prev === null || rx < prev.rx || tx < prev.tx) {
      this.reset();
      this.prev = { at_ms: atMs, rx, tx };
      return;
    }
    const dtMs = atMs - prev.at_ms;
    if (dtMs <= 0) return; // the same snapshot twice, or one out of order: nothing to learn
    this.prev = { at_ms: atMs, rx, tx };
    this.at.push(atMs);
    this.rx.push(((rx - prev.rx) * 1000) / dtMs);
    this.tx.push(((tx - prev.tx) * 1000) / dtMs);
    this.trim();
  }

  reset(): void {
    this.prev = null;
    this.at = [];
    this.rx = [];
    this.tx = [];
  }

  get length(): number {
    return this.at.length;
  }

  /** The latest rates, or null before the second snapshot. */
  latest(): { rx: number; tx: number } | null {
    const n = this.at.length;
    return n ? { rx: this.rx[n - 1], tx: this.tx[n - 1] } : null;
  }

  /** Absolute x values (Unix seconds if `at_ms` is Unix milliseconds), rx and tx rates. */
  data(): SeriesData {
    return [this.at.map((ms) => ms / 1000), this.rx.slice(), this.tx.slice()];
  }

  /**
   * x values in seconds relative to the latest point (so the newest is 0 and the oldest about -300), which
   * makes the chart independent of the clock `at_ms` comes from.
   */
  relativeData(): SeriesData {
    const n = this.at.length;
    const last = n ? this.at[n - 1] : 0;
    return [this.at.map((ms) => (ms - last) / 1000), this.rx.slice(), this.tx.slice()];
  }

  private trim(): void {
    const last = this.at[this.at.length - 1];
    let drop = Math.max(0, this.at.length - this.capacity);
    while (drop < this.at.length && last - this.at[drop] > this.windowMs) drop += 1;
    if (drop > 0) {
      this.at.splice(0, drop);
      this.rx.splice(0, drop);
      this.tx.splice(0, drop);
    }
  }
}

/** One series per tunnel name, fed from whole snapshots. */
export class SeriesBook {
  private readonly byName = new Map<string, RateSeries>();

  /**
   * Feeds a snapshot: every tunnel in it gets a point; every other known series (a tunnel that went down)
   * is reset.
   */
  feed(atMs: number, tunnels: ReadonlyArray<ByteCounters & { name: string }>): void {
    const seen = new Set<string>();
    for (const t of tunnels) {
      seen.add(t.name);
      this.get(t.name).push(atMs, t);
    }
    for (const [name, series] of this.byName) if (!seen.has(name)) series.push(atMs, null);
  }

  get(name: string): RateSeries {
    let s = this.byName.get(name);
    if (!s) {
      s = new RateSeries();
      this.byName.set(name, s);
    }
    return s;
  }

  /** Drops series whose names are not in `keep`, so removed profiles do not linger. */
  retain(keep: ReadonlySet<string>): void {
    for (const name of this.byName.keys()) if (!keep.has(name)) this.byName.delete(name);
  }
}
