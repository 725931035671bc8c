import { useEffect, useRef, useState } from "preact/hooks";
import "../locale-guard"; // before uPlot, which reads navigator.language when it loads
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { formatRate } from "../format";
import { SERIES_WINDOW_S, type SeriesData } from "../series";

const HEIGHT = 190;

/** The x axis: seconds relative to the newest point. */
function axisTime(s: number): string {
  if (s === 0) return "now";
  return `−${Math.round(Math.abs(s) / 60)} min`;
}

/** Points only while there are too few to draw a line through (right after a tunnel comes up). */
function fewPoints(_u: uPlot, _sidx: number, idx0: number, idx1: number): boolean {
  return idx1 - idx0 < 2;
}

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

function prefersDark(): boolean {
  return typeof matchMedia === "function" && matchMedia("(prefers-color-scheme: dark)").matches;
}

function options(width: number): uPlot.Options {
  const axis = cssVar("--chart-axis", "#666");
  const grid = cssVar("--chart-grid", "rgba(0,0,0,0.08)");
  const rx = cssVar("--chart-rx", "#1a7f37");
  const tx = cssVar("--chart-tx", "#0969da");
  const font = `11px ${cssVar("--chart-font", "system-ui, sans-serif")}`;
  const axisCommon = { stroke: axis, font, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1, size: 4 } };
  // The legend shows the values under the cursor, and the latest ones when the cursor is elsewhere.
  const rate = (u: uPlot, v: number | null, sidx: number, idx: number | null) => {
    if (idx === null || idx === undefined) {
      const d = u.data[sidx];
      v = d && d.length ? (d[d.length - 1] ?? null) : null;
    }
    return v === null || v === undefined ? "—" : formatRate(v);
  };
  const time = (_u: uPlot, v: number | null, _sidx: number, idx: number | null) =>
    idx === null || idx === undefined || v === null || v === undefined || v >= 0 ? "now" : `${Math.round(-v)} s ago`;
  return {
    width,
    height: HEIGHT,
    class: "rate-chart",
    cursor: { drag: { x: false, y: false }, points: { size: 6 } },
    legend: { show: true, live: true },
    scales: {
      x: { time: false, range: [-SERIES_WINDOW_S, 0] },
      y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1000] },
    },
    axes: [
      { ...axisCommon, space: 60, incrs: [60, 120, 300], values: (_u, splits) => splits.map(axisTime) },
      { ...axisCommon, size: 76, values: (_u, splits) => splits.map((v) => formatRate(v)) },
    ],
    series: [
      { label: "Time", value: time },
      { label: "Received", stroke: rx, width: 1.5, fill: `${rx}22`, points: { show: fewPoints }, value: rate },
      { label: "Sent", stroke: tx, width: 1.5, fill: `${tx}22`, points: { show: fewPoints }, value: rate },
    ],
  };
}

/**
 * The live chart of a tunnel's receive and transmit rates over the last 5 minutes. `data` is read again
 * whenever `version` changes (a new snapshot), so the parent need not copy the series on every render.
 */
export function RateChart({ data, version }: { data: () => SeriesData; version: number }) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const [dark, setDark] = useState(prefersDark());

  useEffect(() => {
    if (typeof matchMedia !== "function") return;
    const mq = matchMedia("(prefers-color-scheme: dark)");
    const onChange = () => setDark(mq.matches);
    mq.addEventListener("change", onChange);
    return () => mq.removeEventListener("change", onChange);
  }, []);

  // (Re)build the chart on mount and when the color scheme changes: uPlot draws with fixed colors.
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const u = new uPlot(options(Math.max(200, el.clientWidth)), data(), el);
    plot.current = u;
    const ro = new ResizeObserver(() => {
      const w = Math.max(200, el.clientWidth);
      if (w !== u.width) u.setSize({ width: w, height: HEIGHT });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [dark]);

  useEffect(() => {
    plot.current?.setData(data());
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [version]);

  return <div id="chart" ref={host} role="figure" aria-label="Receive and send rates over the last 5 minutes" />;
}
