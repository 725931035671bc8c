import type { HelperHealth } from "../bindings/HelperHealth";
import type { HelperState } from "../bindings/HelperState";
import { formatHealth } from "../format";

export const HELPER_LABELS: Record<HelperState["kind"], string> = {
  ok: "culvertd running",
  not_running: "culvertd is not running",
  not_authorized: "Not allowed to use culvertd",
  not_installed: "culvertd is not installed",
  incompatible: "culvertd does not match this app",
  error: "culvertd cannot be reached",
};

export function helperLabel(h: HelperState): string {
  if (h.kind === "ok" && h.helper_version) return `culvertd ${h.helper_version} running`;
  return HELPER_LABELS[h.kind] ?? h.kind;
}

export function TopBar({ helper, health }: { helper: HelperState | null; health: HelperHealth | null }) {
  return (
    <header class="topbar">
      <div class="brand">Culvert</div>
      {helper ? (
        <div id="helper-state" class={`helper state-${helper.kind}`} role="status" title={`Socket: ${helper.socket}`}>
          <span class="helper-dot" aria-hidden="true" />
          <span class="helper-label">{helperLabel(helper)}</span>
          {helper.kind !== "ok" && helper.message ? <span class="helper-message">{helper.message}</span> : null}
        </div>
      ) : (
        <div id="helper-state" class="helper state-unknown" role="status">
          <span class="helper-dot" aria-hidden="true" />
          <span class="helper-label">Looking for culvertd…</span>
        </div>
      )}
      <div id="helper-health" class="health" hidden={!health} title={health ? `culvertd, pid ${health.pid}` : undefined}>
        {health ? `culvertd: ${formatHealth(health.cpu_percent, health.rss_bytes)}` : ""}
      </div>
    </header>
  );
}
