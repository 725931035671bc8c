import type { TargetedKeyboardEvent } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { errorText, type Api } from "../api";
import type { SettingsView } from "../bindings/SettingsView";
import { setLaunch, setNotifications, setStartAtLogin, setStartMinimized, type SettingsChange } from "../settings";

export type SettingsDialogProps = {
  api: Api;
  /** The stored profiles' names, in the sidebar's order. */
  profiles: readonly string[];
  /** Whether culvertd's lockdown is on; null while culvertd cannot be asked. */
  lockdown: boolean | null;
  onLockdown(on: boolean): Promise<void>;
  onClose(): void;
};

const FOCUSABLE = "button:not(:disabled), input:not(:disabled), [tabindex]:not([tabindex='-1'])";

/**
 * The app's settings, in a modal panel. Each toggle is saved at once; saves run one after another, each on top
 * of what the previous one left true, and the checkboxes show the Rust side's answer, not the click.
 */
export function SettingsDialog({ api, profiles, lockdown, onLockdown, onClose }: SettingsDialogProps) {
  const [shown, setShown] = useState<SettingsView | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [lockdownBusy, setLockdownBusy] = useState(false);
  const dialog = useRef<HTMLDivElement>(null);
  /** What the Rust side last said is true. */
  const truth = useRef<SettingsView | null>(null);
  /** Toggles not yet answered; the first one is being saved. */
  const pending = useRef<SettingsChange[]>([]);
  const saves = useRef<Promise<void>>(Promise.resolve());
  const closeRef = useRef(onClose);
  closeRef.current = onClose;

  // Always a fresh object, so a checkbox the click flipped is set back when the answer says otherwise.
  const show = () => {
    const t = truth.current;
    setShown(t && pending.current.reduce((v, change) => change(v), t));
  };

  useEffect(() => {
    let alive = true;
    dialog.current?.focus();
    api.getSettings().then(
      (v) => {
        if (!alive) return;
        truth.current = v;
        show();
      },
      (e) => alive && setError(errorText(e)),
    );
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== "Escape") return;
      e.preventDefault();
      closeRef.current();
    };
    document.addEventListener("keydown", onKey);
    return () => {
      alive = false;
      document.removeEventListener("keydown", onKey);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [api]);

  // Once the settings are in, the first control takes focus, unless the user has already moved it.
  const loaded = shown !== null;
  useEffect(() => {
    const el = dialog.current;
    if (!loaded || !el) return;
    if (document.activeElement && document.activeElement !== el && el.contains(document.activeElement)) return;
    el.querySelector<HTMLElement>("input:not(:disabled)")?.focus();
  }, [loaded]);

  const change = (c: SettingsChange) => {
    if (!truth.current) return;
    setError(null);
    pending.current.push(c);
    show();
    // Saves go on after the dialog closes: a toggle the user saw take effect is not dropped.
    saves.current = saves.current.then(async () => {
      const before = truth.current!;
      const next = c(before);
      try {
        truth.current = await api.setSettings(next.settings, next.start_at_login);
      } catch (e) {
        setError(errorText(e));
        // The settings file may be written even when the login entry could not be: ask what is true now.
        truth.current = await api.getSettings().catch(() => before);
      }
      pending.current.shift();
      show();
    });
  };

  // Tab and Shift+Tab go round the dialog's controls, never to the window behind it.
  const trapTab = (e: TargetedKeyboardEvent<HTMLDivElement>) => {
    if (e.key !== "Tab") return;
    const items = Array.from(e.currentTarget.querySelectorAll<HTMLElement>(FOCUSABLE));
    if (items.length === 0) return;
    const first = items[0];
    const last = items[items.length - 1];
    const active = document.activeElement;
    if (e.shiftKey && (active === first || active === e.currentTarget)) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && active === last) {
      e.preventDefault();
      first.focus();
    }
  };

  const changeLockdown = async (on: boolean) => {
    setError(null);
    setLockdownBusy(true);
    try {
      await onLockdown(on);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setLockdownBusy(false);
    }
  };

  const launch = new Set(shown?.settings.connect_on_launch ?? []);
  return (
    <div
      class="modal-backdrop"
      onMouseDown={(e) => {
        if (e.target === e.currentTarget) onClose();
      }}
    >
      <div
        id="settings"
        class="modal"
        role="dialog"
        aria-modal="true"
        aria-labelledby="settings-title"
        tabIndex={-1}
        ref={dialog}
        onKeyDown={trapTab}
      >
        <header class="modal-head">
          <h2 id="settings-title">Settings</h2>
          <button type="button" id="settings-close" onClick={onClose} title="Close (Esc)">
            Close
          </button>
        </header>
        <div class="modal-body">
          {error ? (
            <div id="settings-error" class="form-error" role="alert">
              {error}
            </div>
          ) : null}
          {shown ? (
            <>
              <fieldset class="setting-group">
                <legend>Starting</legend>
                <label class="check">
                  <input
                    type="checkbox"
                    id="setting-start-minimized"
                    checked={shown.settings.start_minimized}
                    disabled={!shown.tray}
                    aria-describedby="setting-start-minimized-note"
                    onChange={(e) => change(setStartMinimized(e.currentTarget.checked))}
                  />
                  <span>Start minimized in the tray</span>
                </label>
                <p id="setting-start-minimized-note" class={`check-note${shown.tray ? "" : " unavailable"}`}>
                  {shown.tray
                    ? "The window stays hidden until you open it from the tray icon."
                    : "There is no tray on this desktop, so the window always shows (and closing it quits Culvert)."}
                </p>
                <label class="check">
                  <input
                    type="checkbox"
                    id="setting-start-at-login"
                    checked={shown.start_at_login}
                    onChange={(e) => change(setStartAtLogin(e.currentTarget.checked))}
                  />
                  <span>Start Culvert when I log in</span>
                </label>
                <label class="check">
                  <input
                    type="checkbox"
                    id="setting-notifications"
                    checked={shown.settings.notifications}
                    onChange={(e) => change(setNotifications(e.currentTarget.checked))}
                  />
                  <span>Notify me when a tunnel connects or drops, a handshake fails, or the helper stops</span>
                </label>
              </fieldset>
              <fieldset class="setting-group" aria-describedby="launch-note">
                <legend>Connect on launch</legend>
                <p id="launch-note" class="check-note flush">
                  Bring these profiles up when Culvert starts, in the order of the profile list.
                </p>
                {profiles.length ? (
                  <ul id="launch-list" class="launch-list">
                    {profiles.map((name) => (
                      <li key={name}>
                        <label class="check">
                          <input
                            type="checkbox"
                            data-launch={name}
                            checked={launch.has(name)}
                            onChange={(e) => change(setLaunch(profiles, name, e.currentTarget.checked))}
                          />
                          <span class="launch-name">{name}</span>
                        </label>
                      </li>
                    ))}
                  </ul>
                ) : (
                  <p class="check-note flush">No stored profiles yet.</p>
                )}
              </fieldset>
            </>
          ) : error ? null : (
            <p class="fine-print">Reading the settings…</p>
          )}
          <fieldset class="setting-group" aria-describedby="lockdown-note">
            <legend>This computer</legend>
            <label class="check">
              <input
                type="checkbox"
                id="setting-lockdown"
                checked={lockdown === true}
                disabled={lockdown === null || lockdownBusy}
                onChange={(e) => void changeLockdown(e.currentTarget.checked)}
              />
              <span>Lockdown: nothing leaves this computer outside a WireGuard full tunnel</span>
            </label>
            <p id="lockdown-note" class={`check-note${lockdown === null ? " unavailable" : ""}`}>
              {lockdown === null
                ? "culvertd cannot be asked right now, so lockdown cannot be changed here."
                : "For every user, from boot on, whether a tunnel is up or not, until it is turned off: with no full " +
                  "tunnel up, this computer is offline. It is culvertd's setting, not only this app's."}
            </p>
          </fieldset>
        </div>
      </div>
    </div>
  );
}
