import { formatCount } from "../format";
import { relativeTime, visibleRows, type PacketList } from "../packets";

export type PacketsProps = {
  list: PacketList;
  onPause(paused: boolean): void;
  onFilter(filter: string): void;
  onClear(): void;
};

/** The packet view of a tunnel that is up and whose packets pass through culvertd. */
export function PacketsView({ list, onPause, onFilter, onClear }: PacketsProps) {
  const rows = visibleRows(list);
  const filtering = list.filter.trim() !== "";
  return (
    <div class="packets">
      <div class="packets-toolbar">
        <button
          type="button"
          id="packets-pause"
          aria-pressed={list.paused}
          class={list.paused ? "is-paused" : undefined}
          title={list.paused ? "Show new packets again" : "Stop adding packets to the list"}
          onClick={() => onPause(!list.paused)}
        >
          {list.paused ? "Resume" : "Pause"}
        </button>
        <input
          type="search"
          id="packets-filter"
          placeholder="Filter: protocol, address or port"
          aria-label="Filter packets by protocol, address or port"
          spellcheck={false}
          autoComplete="off"
          value={list.filter}
          onInput={(e) => onFilter(e.currentTarget.value)}
        />
        <button type="button" id="packets-clear" onClick={onClear} disabled={list.rows.length === 0}>
          Clear
        </button>
        <span class="packets-status" aria-live="polite">
          {filtering ? `${formatCount(rows.length)} of ${formatCount(list.rows.length)} shown` : `${formatCount(list.rows.length)} shown`}
          {list.paused ? <span class="paused-note"> · paused{list.droppedWhilePaused ? `, ${formatCount(list.droppedWhilePaused)} not shown` : ""}</span> : null}
          {list.missed ? (
            <span class="missed-note" title="Samples culvertd dropped because the app did not read them in time">
              {" "}
              · {formatCount(list.missed)} missed
            </span>
          ) : null}
        </span>
      </div>
      <div class="table-scroll">
        <table class="packet-table">
          <thead>
            <tr>
              <th class="num" title="Seconds since the first packet in this view">Time (s)</th>
              <th>Direction</th>
              <th>Protocol</th>
              <th>Source</th>
              <th>Destination</th>
              <th class="num">Length</th>
            </tr>
          </thead>
          <tbody id="packet-rows">
            {rows.map((r) => (
              <tr key={r.id} class={`dir-${r.direction}`}>
                <td class="num mono">{relativeTime(list, r.at_ms)}</td>
                <td class="dir">{r.direction === "in" ? "← in" : "→ out"}</td>
                <td class="proto">{r.protocol}</td>
                <td class="mono addr">{r.source || "—"}</td>
                <td class="mono addr">{r.destination || "—"}</td>
                <td class="num">{formatCount(r.len)} B</td>
              </tr>
            ))}
          </tbody>
        </table>
        {rows.length === 0 ? (
          <p class="table-empty">
            {list.rows.length ? "No packet matches the filter." : list.paused ? "Paused." : "Waiting for packets…"}
          </p>
        ) : null}
      </div>
      <p class="fine-print">Headers of sampled packets only (never payloads); the newest 500 are kept.</p>
    </div>
  );
}
