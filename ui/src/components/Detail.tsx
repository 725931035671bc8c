import type { ComponentChildren } from "preact";
import type { Api } from "../api";
import type { HelperState } from "../bindings/HelperState";
import type { PeerStatus } from "../bindings/PeerStatus";
import type { OverlayStatus } from "../bindings/OverlayStatus";
import type { TunnelStatus } from "../bindings/TunnelStatus";
import { formatAge, formatBytes, formatCount, formatDuration, formatRate, shortKey } from "../format";
import type { PacketList } from "../packets";
import type { RateSeries } from "../series";
import { handshakeAge, hasPacketView, isPeerStale } from "../state";
import { PacketsView } from "./Packets";
import { RateChart } from "./RateChart";
import { KindBadge, StateDot, UnencryptedTag, type Row } from "./Sidebar";
import { helperLabel } from "./TopBar";
import { UsageView } from "./Usage";

export type Tab = "overview" | "packets" | "usage";

const TAB_IDS: Record<Tab, string> = { overview: "overview-tab", packets: "packets-tab", usage: "usage-tab" };

export type DetailProps = {
  api: Api;
  row: Row | null;
  helper: HelperState | null;
  /** Wall-clock Unix ms (Date.now()): the "now" of handshake ages and uptimes. */
  nowMs: number;
  series: RateSeries | null;
  /** Changes with every snapshot, so the chart redraws. */
  version: number;
  tab: Tab;
  onTab(tab: Tab): void;
  packets: PacketList;
  onPause(paused: boolean): void;
  onFilter(filter: string): void;
  onClear(): void;
  onImport(): void;
  onNew(): void;
  /** Whether the row's Always on is being changed now. */
  alwaysOnBusy: boolean;
  onAlwaysOn(on: boolean): void;
};

export function Detail(props: DetailProps) {
  const { row } = props;
  if (!row) {
    return (
      <main id="detail" class="detail empty-detail">
        <div class="placeholder">
          <h1>No profile selected</h1>
          <p>
            Write a new profile, import a wg-quick <code>.conf</code> or a Culvert <code>.toml</code> file to add a tunnel,
            or drop the file onto this window.
          </p>
          <div class="placeholder-actions">
            <button type="button" class="new-from-placeholder" onClick={props.onNew}>
              New profile…
            </button>
            <button type="button" onClick={props.onImport}>
              Import…
            </button>
          </div>
        </div>
      </main>
    );
  }
  const { state } = row;
  const tunnel = state.tunnel;
  // Usage is kept for stored profiles only: a tunnel brought up from a file shows its overview instead.
  const tab: Tab = props.tab === "usage" && !row.profile ? "overview" : props.tab;
  return (
    <main id="detail" class="detail" data-name={row.name}>
      <header class="detail-head">
        <div class="title-line">
          <h1 class="detail-name">{row.name}</h1>
          <KindBadge kind={row.kind} />
          <UnencryptedTag kind={row.kind} />
          {row.killSwitch ? (
            <span class="tag kill-switch" title="Nothing leaves this computer around the tunnel while it is meant to be up, even when it or culvertd fails">
              kill switch
            </span>
          ) : null}
          {row.profile ? null : <span class="tag" title="Brought up from a file, not from the profile store">not stored</span>}
        </div>
        <div id="tunnel-state" class={`tunnel-state ${state.state}`}>
          <StateDot state={state.state} label={state.label} />
          <span class="state-label">{state.label}</span>
          {state.reason ? <span class="state-reason">{state.reason}</span> : null}
        </div>
        {tunnel ? <Meta tunnel={tunnel} nowMs={props.nowMs} /> : null}
        {row.profile ? (
          <AlwaysOnSwitch
            on={row.alwaysOn}
            busy={props.alwaysOnBusy}
            cannot={helperBlocks(props.helper) ? props.helper.message : row.kind === null ? row.profile.problem : null}
            onChange={props.onAlwaysOn}
          />
        ) : null}
        {row.profile?.problem ? <p class="problem-line">{row.profile.problem}</p> : null}
      </header>
      <div class="tabs" role="tablist" aria-label="Views">
        <TabButton tab="overview" current={tab} onClick={() => props.onTab("overview")}>
          Overview
        </TabButton>
        <TabButton
          tab="packets"
          current={tab}
          onClick={() => props.onTab(tab === "packets" ? "overview" : "packets")}
          title={tab === "packets" ? "Close the packet view" : "Watch sampled packet headers"}
        >
          Packets
        </TabButton>
        {row.profile ? (
          <TabButton
            tab="usage"
            current={tab}
            onClick={() => props.onTab("usage")}
            title="Traffic per day over the last 30 days"
          >
            Usage
          </TabButton>
        ) : null}
      </div>
      <section id="tab-panel" class="tab-panel" role="tabpanel" aria-labelledby={TAB_IDS[tab]}>
        {tab === "packets" ? (
          <PacketsPanel {...props} row={row} />
        ) : tab === "usage" ? (
          <UsageView key={row.name} api={props.api} name={row.name} />
        ) : (
          <Overview {...props} row={row} />
        )}
      </section>
    </main>
  );
}

/** A stored profile as a system tunnel of culvertd's, kept up at boot and after a crash, or not. */
function AlwaysOnSwitch(props: { on: boolean; busy: boolean; cannot: string | null; onChange(on: boolean): void }) {
  const { on, busy, cannot } = props;
  const label = busy ? (on ? "Turning Always on off…" : "Turning Always on on…") : "Always on";
  return (
    <div class="always-on-line">
      <label class="check" title={cannot ?? undefined}>
        <input
          type="checkbox"
          id="always-on"
          checked={on}
          disabled={busy || cannot !== null}
          aria-describedby="always-on-note"
          onChange={(e) => props.onChange(e.currentTarget.checked)}
        />
        <span>{label}</span>
      </label>
      <span id="always-on-note" class="check-note inline">
        {on
          ? "culvertd keeps it up at boot and after a crash, even with Culvert closed. Turning this off disconnects it."
          : "Have culvertd keep it up at boot and after a crash, even with Culvert closed (its keys are kept root-only by culvertd)."}
      </span>
    </div>
  );
}

function HelperHelp({ helper }: { helper: HelperState }) {
  return (
    <div class={`notice helper-help state-${helper.kind}`} role="status">
      <strong>{helperLabel(helper)}</strong>
      <p class="helper-message">{helper.message}</p>
      <p class="fine-print">Socket: {helper.socket}</p>
    </div>
  );
}

function helperBlocks(helper: HelperState | null): helper is HelperState {
  return helper !== null && helper.kind !== "ok";
}

function Meta({ tunnel, nowMs }: { tunnel: TunnelStatus; nowMs: number }) {
  const parts: string[] = [`interface ${tunnel.interface}`];
  if (tunnel.listen_port) parts.push(`port ${tunnel.listen_port}`);
  if (tunnel.up_since) parts.push(`up ${formatDuration(nowMs / 1000 - tunnel.up_since)}`);
  return <div class="meta">{parts.join(" · ")}</div>;
}

function Overview(props: DetailProps & { row: Row }) {
  const { row, helper } = props;
  if (helperBlocks(helper)) return <HelperHelp helper={helper} />;
  const tunnel = row.state.tunnel;
  if (!tunnel) {
    return (
      <div class="notice">
        <p>
          This tunnel is down. {row.profile ? "Connect it to see its live rates, totals and peers." : ""}
        </p>
      </div>
    );
  }
  const latest = props.series?.latest() ?? null;
  const series = props.series;
  return (
    <div class="overview">
      <section class="card throughput" aria-labelledby="throughput-h">
        <div class="card-head">
          <h2 id="throughput-h">Throughput</h2>
          {tunnel.kind !== "hostgw" ? (
            <span class="rates">
              <span class="rate rx" title="Receiving now">
                ↓ {latest ? formatRate(latest.rx) : "—"}
              </span>
              <span class="rate tx" title="Sending now">
                ↑ {latest ? formatRate(latest.tx) : "—"}
              </span>
            </span>
          ) : null}
        </div>
        {tunnel.kind === "hostgw" ? (
          <p class="fine-print">hostgw routes share their interfaces' counters, so Culvert reports none for them.</p>
        ) : series ? (
          <RateChart key={row.name} data={() => series.relativeData()} version={props.version} />
        ) : null}
      </section>
      <section class="card totals" aria-label="Totals">
        <dl>
          <div>
            <dt>Received</dt>
            <dd>
              <span id="rx-total" data-bytes={String(tunnel.rx_bytes)} title={`${formatCount(tunnel.rx_bytes)} bytes`}>
                {formatBytes(tunnel.rx_bytes)}
              </span>
              <span class="sub">{formatCount(tunnel.rx_packets)} packets</span>
            </dd>
          </div>
          <div>
            <dt>Sent</dt>
            <dd>
              <span id="tx-total" data-bytes={String(tunnel.tx_bytes)} title={`${formatCount(tunnel.tx_bytes)} bytes`}>
                {formatBytes(tunnel.tx_bytes)}
              </span>
              <span class="sub">{formatCount(tunnel.tx_packets)} packets</span>
            </dd>
          </div>
          <div>
            <dt>Dropped</dt>
            <dd>
              <Drops tunnel={tunnel} />
            </dd>
          </div>
        </dl>
      </section>
      {tunnel.overlay ? <OverlayCard overlay={tunnel.overlay} /> : null}
      <section class="card peers-card" aria-labelledby="peers-h">
        <h2 id="peers-h">Peers</h2>
        <Peers tunnel={tunnel} nowMs={props.nowMs} />
      </section>
    </div>
  );
}

/** An overlay's network, its lease, and every host etcd lists, with why one is not a peer. */
function OverlayCard({ overlay }: { overlay: OverlayStatus }) {
  return (
    <section class="card overlay-card" aria-labelledby="overlay-h">
      <h2 id="overlay-h">Overlay network</h2>
      <dl class="overlay-facts">
        <div>
          <dt>Network</dt>
          <dd id="overlay-network" class="mono">{overlay.network}</dd>
        </div>
        <div>
          <dt>This host</dt>
          <dd id="overlay-subnet" class="mono">{overlay.subnet}</dd>
        </div>
        <div>
          <dt>Backend</dt>
          <dd>{overlay.backend}</dd>
        </div>
        <div>
          <dt>etcd</dt>
          <dd id="overlay-registry" data-state={overlay.registry}>
            {overlay.registry === "ok" ? "watching" : "unreachable: peers kept as they were"}
          </dd>
        </div>
      </dl>
      {overlay.nodes.length === 0 ? (
        <p class="table-empty">No other host has leased a subnet yet.</p>
      ) : (
        <table id="overlay-nodes">
          <thead>
            <tr>
              <th>Host</th>
              <th>Subnet</th>
              <th>State</th>
            </tr>
          </thead>
          <tbody>
            {overlay.nodes.map((n) => (
              <tr key={n.subnet + n.public_ip} class={n.skipped_reason ? "skipped" : ""}>
                <td class="mono">{n.public_ip || "—"}</td>
                <td class="mono">{n.subnet}</td>
                <td>{n.skipped_reason ? `skipped: ${n.skipped_reason}` : "peer"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function TabButton(props: {
  tab: Tab;
  current: Tab;
  onClick(): void;
  title?: string;
  children: ComponentChildren;
}) {
  return (
    <button
      type="button"
      role="tab"
      id={TAB_IDS[props.tab]}
      aria-selected={props.current === props.tab}
      aria-controls="tab-panel"
      onClick={props.onClick}
      title={props.title}
    >
      {props.children}
    </button>
  );
}

function Drops({ tunnel }: { tunnel: TunnelStatus }) {
  const reasons = Object.entries(tunnel.drops)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  if (reasons.length === 0) {
    return (
      <span id="dropped" class="drops none" data-count={String(tunnel.dropped)}>
        {tunnel.dropped ? formatCount(tunnel.dropped) : "None"}
      </span>
    );
  }
  return (
    <ul id="dropped" class="drops" data-count={String(tunnel.dropped)}>
      {reasons.map(([reason, n]) => (
        <li key={reason} data-reason={reason}>
          <span class="drop-reason mono">{reason}</span> <span class="drop-count">{formatCount(n)}</span>
        </li>
      ))}
    </ul>
  );
}

function noPeerCounters(kind: TunnelStatus["kind"]): string | null {
  if (kind === "vxlan") return "The kernel keeps no counters per VXLAN peer";
  if (kind === "hostgw") return "hostgw routes share their interfaces' counters";
  if (kind === "overlay") return "The kernel keeps no counters per overlay host";
  return null;
}

function Peers({ tunnel, nowMs }: { tunnel: TunnelStatus; nowMs: number }) {
  const wg = tunnel.kind === "wireguard";
  const noCounters = noPeerCounters(tunnel.kind);
  return (
    <div class="table-scroll">
      <table class="peer-table">
        <thead>
          <tr>
            {wg ? <th>Public key</th> : null}
            <th>Endpoint</th>
            <th>Allowed IPs</th>
            {wg ? <th>Handshake</th> : null}
            <th class="num">Received</th>
            <th class="num">Sent</th>
          </tr>
        </thead>
        <tbody id="peers">
          {tunnel.peers.map((p, i) => (
            <PeerRow key={p.public_key ?? p.endpoint ?? i} peer={p} wg={wg} nowMs={nowMs} noCounters={noCounters} />
          ))}
        </tbody>
      </table>
      {tunnel.peers.length === 0 ? <p class="table-empty">No peers.</p> : null}
    </div>
  );
}

function PeerRow({ peer, wg, nowMs, noCounters }: { peer: PeerStatus; wg: boolean; nowMs: number; noCounters: string | null }) {
  const stale = wg && isPeerStale(peer, nowMs);
  const age = wg ? handshakeAge(peer, nowMs) : null;
  return (
    <tr class={`peer${stale ? " stale" : ""}`}>
      {wg ? (
        <td class="mono key" title={peer.public_key ?? ""}>
          {peer.public_key ? shortKey(peer.public_key) : "—"}
        </td>
      ) : null}
      <td class="mono endpoint" title={peer.endpoint ? undefined : "No address known yet"}>
        {peer.endpoint ?? "unknown"}
      </td>
      <td class="mono allowed">{peer.allowed_ips.length ? peer.allowed_ips.join(", ") : "—"}</td>
      {wg ? (
        <td class={`handshake${stale ? " stale" : ""}${age === null ? " never" : ""}`}>
          {formatAge(age)}
          {stale ? <span class="tag stale-tag" title="No handshake for over 3 minutes">stale</span> : null}
        </td>
      ) : null}
      {noCounters ? (
        <>
          <td class="num muted" title={noCounters}>—</td>
          <td class="num muted" title={noCounters}>—</td>
        </>
      ) : (
        <>
          <td class="num" title={`${formatCount(peer.rx_packets)} packets`}>{formatBytes(peer.rx_bytes)}</td>
          <td class="num" title={`${formatCount(peer.tx_packets)} packets`}>{formatBytes(peer.tx_bytes)}</td>
        </>
      )}
    </tr>
  );
}

function PacketsPanel(props: DetailProps & { row: Row }) {
  const { row, helper } = props;
  if (!hasPacketView(row.kind)) {
    return (
      <div class="notice packets-unavailable">
        <p>
          {row.kind === null
            ? "Packets show once the profile can be read."
            : "vxlan and hostgw packets never pass through culvertd, so there are none to show here."}
        </p>
      </div>
    );
  }
  if (helperBlocks(helper)) return <HelperHelp helper={helper} />;
  if (!row.state.tunnel) {
    return (
      <div class="notice">
        <p>This tunnel is down. Connect it to watch its packets.</p>
      </div>
    );
  }
  return <PacketsView list={props.packets} onPause={props.onPause} onFilter={props.onFilter} onClear={props.onClear} />;
}
