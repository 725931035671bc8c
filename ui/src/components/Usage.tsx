import { useEffect, useState } from "preact/hooks";
import { errorText, type Api } from "../api";
import type { UsageReport } from "../bindings/UsageReport";
import { formatBytes } from "../format";
import { barHeights, fillWindow, labelledDays, shortDate, USAGE_DAYS, type UsageDay, type UsageWindow } from "../usage";

/** The Rust side writes its counts every 10 s: asking more often would show nothing new. */
export const USAGE_REFRESH_MS = 10_000;

// The chart's own units: the SVG stretches to the card's width, so only the proportions matter here.
const SLOT = 10;
const BAR = 7;
const HEIGHT = 100;
/** A day that moved a few bytes next to one that moved gigabytes still shows as a sliver. */
const MIN_BAR = 1.5;

function dayTitle(d: UsageDay): string {
  return `${d.day}: ${formatBytes(d.total)} (received ${formatBytes(d.rx)}, sent ${formatBytes(d.tx)})`;
}

function Split({ rx, tx }: { rx: number; tx: number }) {
  return (
    <span class="sub">
      <span class="rate rx" title="Received">
        ↓ {formatBytes(rx)}
      </span>{" "}
      <span class="rate tx" title="Sent">
        ↑ {formatBytes(tx)}
      </span>
    </span>
  );
}

function Totals({ win }: { win: UsageWindow }) {
  return (
    <section class="card totals usage-totals" aria-label="Usage totals">
      <dl>
        <div>
          <dt>Today</dt>
          <dd>
            <span id="usage-today" class="usage-figure" data-bytes={String(win.today.total)} title={`${win.today.total} bytes`}>
              {formatBytes(win.today.total)}
            </span>
            <Split rx={win.today.rx} tx={win.today.tx} />
          </dd>
        </div>
        <div>
          <dt>Last {win.days.length} days</dt>
          <dd>
            <span id="usage-total" class="usage-figure" data-bytes={String(win.total)} title={`${win.total} bytes`}>
              {formatBytes(win.total)}
            </span>
            <Split rx={win.rx} tx={win.tx} />
          </dd>
        </div>
      </dl>
    </section>
  );
}

/** Daily bars, oldest left, today right: received at the bottom, sent stacked on it. */
function UsageChart({ win }: { win: UsageWindow }) {
  const n = win.days.length;
  const bars = barHeights(win.days, HEIGHT, MIN_BAR);
  const labelled = new Set(labelledDays(n));
  return (
    <div class="usage-chart">
      <div class="usage-plot">
        <span class="usage-max" title="The busiest day of these">
          {formatBytes(win.max)}
        </span>
        <svg
          id="usage-chart"
          viewBox={`0 0 ${n * SLOT} ${HEIGHT}`}
          preserveAspectRatio="none"
          role="img"
          aria-label={`Daily traffic over the last ${n} days; the busiest day moved ${formatBytes(win.max)}`}
        >
          {win.days.map((d, i) => {
            const bar = bars[i];
            const x = i * SLOT + (SLOT - BAR) / 2;
            return (
              <g key={d.day} class={`usage-day${i === n - 1 ? " today" : ""}`} data-day={d.day} data-bytes={String(d.total)}>
                <title>{dayTitle(d)}</title>
                {/* The whole column answers the pointer, so a quiet day's tooltip is as easy to reach. */}
                <rect class="hit" x={i * SLOT} y={0} width={SLOT} height={HEIGHT} />
                <rect class="bar-rx" x={x} y={HEIGHT - bar.rx} width={BAR} height={bar.rx} />
                <rect class="bar-tx" x={x} y={HEIGHT - bar.rx - bar.tx} width={BAR} height={bar.tx} />
              </g>
            );
          })}
        </svg>
      </div>
      <div class="usage-axis" aria-hidden="true">
        {win.days.map((d, i) => (
          <span key={d.day} class={i === 0 ? "first" : i === n - 1 ? "last" : undefined}>
            {labelled.has(i) ? (i === n - 1 ? "Today" : shortDate(d.day)) : ""}
          </span>
        ))}
      </div>
    </div>
  );
}

/**
 * A stored profile's daily traffic over the last 30 days. It is history, so it shows whether the tunnel is up
 * or not; it is read when the tab opens and every 10 s while it stays open.
 */
export function UsageView({ api, name }: { api: Api; name: string }) {
  const [report, setReport] = useState<UsageReport | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let alive = true;
    let asking = false;
    const load = async () => {
      // A slow answer is not asked for twice.
      if (asking) return;
      asking = true;
      try {
        const r = await api.usage(name, USAGE_DAYS);
        if (!alive) return;
        setReport(r);
        setError(null);
      } catch (e) {
        if (alive) setError(errorText(e));
      } finally {
        asking = false;
      }
    };
    void load();
    const timer = setInterval(() => void load(), USAGE_REFRESH_MS);
    return () => {
      alive = false;
      clearInterval(timer);
    };
  }, [api, name]);

  const win = report ? fillWindow(report) : null;
  return (
    <div id="usage" class="usage" aria-busy={!report && !error}>
      {error ? (
        <p id="usage-error" class="form-error" role="alert">
          {error}
        </p>
      ) : null}
      {win === null ? (
        error ? null : <p class="fine-print">Reading the totals…</p>
      ) : win.total === 0 ? (
        <div id="usage-empty" class="notice">
          <p>No traffic recorded yet for {name} in the last {win.days.length} days.</p>
          <p class="fine-print">
            Culvert keeps a total per day on this computer while the app runs and the tunnel is up; the days show here
            as they fill.
          </p>
        </div>
      ) : (
        <>
          <Totals win={win} />
          <section class="card usage-chart-card" aria-labelledby="usage-chart-h">
            <div class="card-head">
              <h2 id="usage-chart-h">Daily traffic</h2>
              <span class="usage-legend">
                <span class="legend-key rx" aria-hidden="true" />
                Received
                <span class="legend-key tx" aria-hidden="true" />
                Sent
              </span>
            </div>
            <UsageChart win={win} />
          </section>
          <p class="fine-print">Totals per local day, kept on this computer while Culvert runs.</p>
        </>
      )}
    </div>
  );
}
