import { useEffect, useRef, useState } from "preact/hooks";
import { errorText, type Api } from "../api";
import type { Saved } from "../bindings/Saved";
import {
  buildDraft,
  draftName,
  FIELDS,
  placeErrors,
  sameForm,
  type FormState,
} from "../forms";
import { useDraftCheck } from "../hooks/draftCheck";
import { useKeyPair } from "../hooks/keyPair";
import { isUnencrypted } from "../state";
import { Field } from "./FormFields";
import { GeneralErrors, IdentitySection, KeysSection, PeersSection } from "./FormSections";
import { KindBadge, UnencryptedTag } from "./Sidebar";

export type FormMode = "new" | "edit" | "duplicate";

/** How long typing must pause before the draft is checked. */
export const VALIDATE_DELAY_MS = 300;

export type ProfileFormProps = {
  api: Api;
  mode: FormMode;
  /** The stored profile being edited (its name when the form opened), or null for a new one. */
  original: string | null;
  /** The profile a duplicate was made from. */
  source?: string | null;
  initial: FormState;
  /** Names of the stored profiles: a new name must not be one of them. */
  stored: readonly string[];
  /** The edited profile's tunnel is up: changes apply when it next connects. */
  running?: boolean;
  onSaved(saved: Saved): void;
  onCancel(): void;
  /** Whether the form differs from what it opened with. */
  onDirty?(dirty: boolean): void;
};

function title(mode: FormMode, original: string | null, source: string | null | undefined): string {
  if (mode === "edit") return `Edit ${original ?? ""}`;
  if (mode === "duplicate") return source ? `Duplicate ${source}` : "Duplicate profile";
  return "New profile";
}

export function ProfileForm(props: ProfileFormProps) {
  const { api, mode, original } = props;
  const [form, setForm] = useState<FormState>(props.initial);
  const [saving, setSaving] = useState(false);
  const [failure, setFailure] = useState<string | null>(null);
  const alive = useRef(true);
  useEffect(
    () => () => {
      alive.current = false;
    },
    [],
  );

  const dirty = !sameForm(form, props.initial);
  const onDirty = props.onDirty;
  useEffect(() => onDirty?.(dirty), [dirty, onDirty]);

  const { errors, pending } = useDraftCheck(api, form, original, props.stored);

  const update = (f: (s: FormState) => FormState) => {
    setFailure(null);
    setForm(f);
  };
  const setValue = (key: string, value: string) => update((s) => ({ ...s, values: { ...s.values, [key]: value } }));
  const setPeerValue = (id: number, key: string, value: string) =>
    update((s) => ({ ...s, peers: s.peers.map((p) => (p.id === id ? { ...p, values: { ...p.values, [key]: value } } : p)) }));

  const { generate, generating, copy, copied } = useKeyPair(api, form.publicKey, alive, (pair) =>
    update((st) => ({ ...st, privateKey: pair.private_key, publicKey: pair.public_key })), setFailure);

  const canSave = !pending && !saving && errors.length === 0;
  const save = async () => {
    if (!canSave) return;
    const { draft, errors: local } = buildDraft(form);
    if (local.length) return;
    setSaving(true);
    setFailure(null);
    try {
      const saved = await api.saveProfile(draftName(form), draft, original);
      if (alive.current) props.onSaved(saved);
    } catch (e) {
      if (!alive.current) return;
      setFailure(errorText(e));
      setSaving(false);
    }
  };

  const kind = form.kind;
  const placed = placeErrors(errors, kind, form.peers.length);
  const slot = (key: string) => placed.bySlot[key];
  const fields = FIELDS[kind].filter((f) => f.key !== "interface");
  const status = saving ? "Saving…" : pending ? "Checking…" : errors.length ? "Fix what is marked to save." : "Ready to save.";

  return (
    <main id="form-panel" class="detail form-panel">
      <form
        id="profile-form"
        class="profile-form"
        data-mode={mode}
        noValidate
        autoComplete="off"
        onSubmit={(e) => {
          e.preventDefault();
          void save();
        }}
      >
        <header class="detail-head">
          <div class="title-line">
            <h1 class="detail-name">{title(mode, original, props.source)}</h1>
            <KindBadge kind={kind} />
            <UnencryptedTag kind={kind} />
          </div>
          {mode === "edit" && props.running ? (
            <p class="meta">This tunnel is up: saving changes it without reconnecting, where it can.</p>
          ) : null}
        </header>

        {isUnencrypted(kind) ? (
          <div class="notice form-warning unencrypted-warning" role="note">
            <strong>Unencrypted.</strong> A {kind} tunnel sends its packets in the clear: use it on networks you
            trust, or inside another tunnel. WireGuard encrypts.
          </div>
        ) : null}

        <GeneralErrors errors={placed.general} failure={failure} />

        <IdentitySection form={form} slot={slot} update={update} setValue={setValue} />

        {kind === "wireguard" ? (
          <KeysSection
            mode={mode}
            form={form}
            errors={slot("private_key")}
            copied={copied}
            generating={generating}
            onCopy={() => void copy()}
            onGenerate={() => void generate()}
          />
        ) : null}

        {fields.length ? (
          <section class="card form-section" aria-labelledby="tunnel-h">
            <h2 id="tunnel-h">Tunnel</h2>
            <div class="form-grid">
              {fields.map((def) => (
                <Field
                  key={`${kind}-${def.key}`}
                  id={`field-${def.key}`}
                  def={def}
                  value={form.values[def.key] ?? ""}
                  errors={slot(def.key)}
                  onInput={(v) => setValue(def.key, v)}
                />
              ))}
            </div>
          </section>
        ) : null}

        <PeersSection form={form} slot={slot} update={update} setPeerValue={setPeerValue} />

        <div class="form-actions">
          <span class={`form-status${errors.length && !pending ? " has-errors" : ""}`} aria-live="polite">
            {status}
          </span>
          <button type="button" id="form-cancel" onClick={props.onCancel} disabled={saving}>
            Cancel
          </button>
          <button type="submit" id="form-save" class="primary" disabled={!canSave}>
            {saving ? "Saving…" : "Save"}
          </button>
        </div>
      </form>
    </main>
  );
}
