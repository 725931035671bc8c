import type { Ref } from "preact";
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

export type TopBarProps = {
  helper: HelperState | null;
  health: HelperHealth | null;
  settingsOpen: boolean;
  /** Lockdown is on: nothing leaves the computer but through a WireGuard full tunnel. */
  lockdown: boolean;
  onSettings(): void;
  /** The settings button, which takes focus back when the dialog closes. */
  settingsButton?: Ref<HTMLButtonElement>;
};

export function TopBar({ helper, health, lockdown, settingsOpen, onSettings, settingsButton }: TopBarProps) {
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
      {lockdown ? (
        <button
          type="button"
          id="lockdown-state"
          class="lockdown-pill"
          title="Nothing leaves this computer but through a WireGuard full tunnel, from boot on. Settings turns it off."
          onClick={onSettings}
        >
          Lockdown on
        </button>
      ) : null}
      <div id="helper-health" class="health" hidden={!health} title={health ? `culvertd, pid ${health.pid}` : undefined}>
        {health ? `culvertd: ${formatHealth(health.cpu_percent, health.rss_bytes)}` : ""}
      </div>
      <button
        type="button"
        id="settings-button"
        class="settings-button"
        ref={settingsButton}
        aria-label="Settings"
        aria-haspopup="dialog"
        aria-expanded={settingsOpen}
        title="Settings: starting, profiles to connect on launch, and lockdown"
        onClick={onSettings}
      >
        <svg class="gear" viewBox="0 0 16 16" aria-hidden="true" focusable="false">
          <path d="M6.6 1h2.8l.4 1.9c.4.2.8.4 1.2.7l1.8-.6 1.4 2.4-1.4 1.3v1.4l1.4 1.3-1.4 2.4-1.8-.6c-.4.3-.8.5-1.2.7L9.4 15H6.6l-.4-1.9c-.4-.2-.8-.4-1.2-.7l-1.8.6-1.4-2.4 1.4-1.3V7.9L1.8 6.6l1.4-2.4 1.8.6c.4-.3.8-.5 1.2-.7z" />
          <circle cx="8" cy="8" r="2.2" />
        </svg>
        <span>Settings</span>
      </button>
    </header>
  );
}
