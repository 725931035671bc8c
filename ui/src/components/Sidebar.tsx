import type { TargetedKeyboardEvent } from "preact";
import type { Kind } from "../bindings/Kind";
import type { OtherTunnel } from "../bindings/OtherTunnel";
import type { ProfileSummary } from "../bindings/ProfileSummary";
import { isUnencrypted, type ProfileState } from "../state";

/** What a row's buttons are doing right now. */
export type Busy = "connect" | "disconnect" | "export" | "remove" | "edit" | "duplicate" | "always-on";

export type Row = {
  name: string;
  /** The stored profile, or null for a running tunnel that is not in the profile store. */
  profile: ProfileSummary | null;
  kind: Kind | null;
  state: ProfileState;
  /** A system tunnel of culvertd's (`culvert enable`): up at boot and after a crash, until turned off. */
  alwaysOn: boolean;
  /** Nothing leaves the computer around it while it is meant to be up (its profile's kill switch). */
  killSwitch: boolean;
};

export type SidebarProps = {
  rows: Row[];
  unstored: Row[];
  /** Other users' tunnels: culvertd shows only their name, kind, state and owner. */
  others?: OtherTunnel[];
  loading: boolean;
  selected: string | null;
  busy: Record<string, Busy | undefined>;
  confirmRemove: string | null;
  /** Why connecting is impossible right now (the helper is not usable), or null. */
  connectBlocked: string | null;
  onSelect(name: string): void;
  onToggle(name: string): void;
  onExport(name: string): void;
  /** Shows a WireGuard profile's QR code, after a warning. */
  onQr(name: string): void;
  onAskRemove(name: string | null): void;
  onRemove(name: string): void;
  onImport(): void;
  /** Opens the form for a new profile. */
  onNew(): void;
  onEdit(name: string): void;
  onDuplicate(name: string): void;
};

export function KindBadge({ kind }: { kind: Kind | null }) {
  return kind ? <span class={`kind kind-${kind}`}>{kind}</span> : <span class="kind kind-unknown">unknown</span>;
}

export function UnencryptedTag({ kind }: { kind: Kind | null }) {
  return isUnencrypted(kind) ? (
    <span class="tag unencrypted" title="Packets cross the network in the clear: use it on networks you trust, or inside another tunnel">
      unencrypted
    </span>
  ) : null;
}

export function AlwaysOnTag({ on }: { on: boolean }) {
  return on ? (
    <span class="tag always-on" title="A system tunnel: culvertd brings it up at boot and after a crash, even with Culvert closed">
      always on
    </span>
  ) : null;
}

/** The colored dot of a state; the state's label is always written next to it, so the dot is not announced. */
export function StateDot({ state, label }: { state: ProfileState["state"]; label: string }) {
  return <span class={`dot ${state}`} title={label} aria-hidden="true" />;
}

function toggleText(up: boolean, busy: Busy | undefined): string {
  if (busy === "connect") return "Connecting…";
  if (busy === "disconnect") return "Disconnecting…";
  return up ? "Disconnect" : "Connect";
}

function ProfileRow(props: SidebarProps & { row: Row; focusable: boolean }) {
  const { row, selected, busy, confirmRemove, connectBlocked } = props;
  const b = busy[row.name];
  const up = row.state.state !== "down";
  const isSelected = selected === row.name;
  const confirming = confirmRemove === row.name;
  const cannotConnect = !up && (connectBlocked ?? (row.profile && row.kind === null ? row.profile.problem : null));
  const stop = (e: Event) => e.stopPropagation();
  return (
    <li
      class={`${row.profile ? "profile" : "tunnel unstored"}${isSelected ? " selected" : ""}`}
      data-name={row.name}
      tabIndex={props.focusable ? 0 : -1}
      aria-current={isSelected ? "true" : undefined}
      onClick={() => props.onSelect(row.name)}
    >
      <div class="row-main">
        <StateDot state={row.state.state} label={row.state.label} />
        <span class="name" title={row.name}>
          {row.name}
        </span>
        <KindBadge kind={row.kind} />
        <UnencryptedTag kind={row.kind} />
        <AlwaysOnTag on={row.alwaysOn} />
      </div>
      <div class="row-sub">
        <span class={`state-text ${row.state.state}`}>{row.state.label}</span>
        {row.profile?.problem ? (
          <span class="problem" title={row.profile.problem}>
            {row.profile.problem}
          </span>
        ) : null}
      </div>
      {confirming ? (
        <div class="row-actions confirm" role="group" aria-label={`Remove ${row.name}?`} onClick={stop}>
          <span class="confirm-text">Remove “{row.name}”?</span>
          <button type="button" class="danger confirm-remove" disabled={!!b} onClick={() => props.onRemove(row.name)}>
            {b === "remove" ? "Removing…" : "Remove"}
          </button>
          <button type="button" class="cancel-remove" disabled={b === "remove"} onClick={() => props.onAskRemove(null)}>
            Cancel
          </button>
        </div>
      ) : (
        <div class="row-actions">
          <button
            type="button"
            class={`toggle${up ? " is-up" : ""}`}
            disabled={!!b || !!cannotConnect}
            title={cannotConnect || undefined}
            onClick={(e) => {
              stop(e);
              props.onSelect(row.name);
              props.onToggle(row.name);
            }}
          >
            {toggleText(up, b)}
          </button>
          {row.profile ? (
            <>
              <button type="button" class="edit subtle" disabled={!!b} title="Change this profile" onClick={(e) => { stop(e); props.onEdit(row.name); }}>
                {b === "edit" ? "Opening…" : "Edit"}
              </button>
              <button type="button" class="duplicate subtle" disabled={!!b} title="Make a new profile from this one" onClick={(e) => { stop(e); props.onDuplicate(row.name); }}>
                {b === "duplicate" ? "Opening…" : "Duplicate"}
              </button>
              <button type="button" class="export subtle" disabled={!!b} title="Save this profile as a file" onClick={(e) => { stop(e); props.onExport(row.name); }}>
                {b === "export" ? "Exporting…" : "Export"}
              </button>
              {row.kind === "wireguard" ? (
                <button type="button" class="qr subtle" disabled={!!b} title="Show a QR code for the WireGuard app on a phone" onClick={(e) => { stop(e); props.onQr(row.name); }}>
                  QR
                </button>
              ) : null}
              <button type="button" class="remove subtle" disabled={!!b} title="Remove this profile from the store" onClick={(e) => { stop(e); props.onAskRemove(row.name); }}>
                Remove
              </button>
            </>
          ) : null}
        </div>
      )}
    </li>
  );
}

/** Arrow keys move the selection within a list of rows, Home and End jump to its ends. */
function onListKey(e: TargetedKeyboardEvent<HTMLUListElement>, names: string[], props: SidebarProps) {
  const target = e.target as HTMLElement;
  if (!target.matches("li[data-name]")) return;
  const i = names.indexOf(target.dataset.name ?? "");
  let next = -1;
  if (e.key === "ArrowDown") next = Math.min(names.length - 1, i + 1);
  else if (e.key === "ArrowUp") next = Math.max(0, i - 1);
  else if (e.key === "Home") next = 0;
  else if (e.key === "End") next = names.length - 1;
  else return;
  e.preventDefault();
  const name = names[next];
  props.onSelect(name);
  const li = Array.from(e.currentTarget.querySelectorAll<HTMLElement>("li[data-name]")).find((el) => el.dataset.name === name);
  li?.focus();
}

/** One row of each list takes Tab focus: the selected one, else the first. */
function focusable(names: string[], selected: string | null, i: number): boolean {
  const at = selected === null ? -1 : names.indexOf(selected);
  return at === -1 ? i === 0 : at === i;
}

export function Sidebar(props: SidebarProps) {
  const names = props.rows.map((r) => r.name);
  const unstoredNames = props.unstored.map((r) => r.name);
  return (
    <nav class="sidebar" aria-label="Profiles">
      <div class="sidebar-head">
        <h2>Profiles</h2>
        <div class="sidebar-head-actions">
          <button type="button" id="new-profile" onClick={props.onNew} title="Write a new profile in a form">
            New
          </button>
          <button type="button" id="import-button" onClick={props.onImport} title="Import a wg-quick .conf or a Culvert .toml file">
            Import…
          </button>
        </div>
      </div>
      <ul id="profiles" onKeyDown={(e) => onListKey(e, names, props)}>
        {props.rows.map((row, i) => (
          <ProfileRow key={row.name} {...props} row={row} focusable={focusable(names, props.selected, i)} />
        ))}
      </ul>
      {props.rows.length === 0 && !props.loading ? (
        <p class="sidebar-empty">
          No profiles yet. Write one with New, import a wg-quick <code>.conf</code> or a Culvert <code>.toml</code> file, or
          drop one onto this window.
        </p>
      ) : null}
      {props.others?.length ? (
        <>
          <h3 class="sidebar-sub" title="Tunnels other users brought up: only they and root see their peers and traffic">
            Other users' tunnels
          </h3>
          <ul id="others-tunnels">
            {props.others.map((t) => (
              <li key={t.name} class="other" data-name={t.name}>
                <span class="name">{t.name}</span> <KindBadge kind={t.kind} />{" "}
                <span class="other-state">
                  {t.state}, uid {t.owner_uid}
                </span>
              </li>
            ))}
          </ul>
        </>
      ) : null}
      {props.unstored.length ? (
        <>
          <h3 class="sidebar-sub" title="Tunnels brought up from a file (culvert up FILE), not from the profile store">
            Running, not stored
          </h3>
          <ul id="unstored-tunnels" onKeyDown={(e) => onListKey(e, unstoredNames, props)}>
            {props.unstored.map((row, i) => (
              <ProfileRow key={row.name} {...props} row={row} focusable={focusable(unstoredNames, props.selected, i)} />
            ))}
          </ul>
        </>
      ) : null}
    </nav>
  );
}
