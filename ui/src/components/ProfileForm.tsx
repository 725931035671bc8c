import type { TargetedEvent } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { errorText, type Api } from "../api";
import type { FormError } from "../bindings/FormError";
import type { Kind } from "../bindings/Kind";
import type { ProfileSummary } from "../bindings/ProfileSummary";
import {
  buildDraft,
  changeKind,
  draftName,
  FIELDS,
  KIND_LABELS,
  KINDS,
  nameTaken,
  newPeer,
  PEER_FIELDS,
  placeErrors,
  sameForm,
  type FieldDef,
  type FormState,
} from "../forms";
import { isUnencrypted } from "../state";
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
  onSaved(summary: ProfileSummary): void;
  onCancel(): void;
  /** Whether the form differs from what it opened with. */
  onDirty?(dirty: boolean): void;
};

function title(mode: FormMode, original: string | null, source: string | null | undefined): string {
  if (mode === "edit") return `Edit ${original ?? ""}`;
  if (mode === "duplicate") return source ? `Duplicate ${source}` : "Duplicate profile";
  return "New profile";
}

function FieldErrors({ id, errors }: { id: string; errors: FormError[] | undefined }) {
  if (!errors?.length) return null;
  return (
    <div class="field-error" id={id} role="alert">
      {errors.map((e, i) => (
        <p key={i}>
          <span class="error-problem">{e.problem}</span>
          {e.fix ? <span class="error-fix">: {e.fix}</span> : null}
        </p>
      ))}
    </div>
  );
}

type InputProps = {
  id: string;
  def: FieldDef;
  value: string;
  errors: FormError[] | undefined;
  placeholder?: string;
  onInput(value: string): void;
};

function Field({ id, def, value, errors, placeholder, onInput }: InputProps) {
  const errorId = `${id}-error`;
  const hintId = `${id}-hint`;
  const invalid = !!errors?.length;
  const describedBy = [invalid ? errorId : null, def.hint ? hintId : null].filter(Boolean).join(" ") || undefined;
  const attrs = {
    id,
    name: def.key,
    class: "mono",
    value,
    placeholder: placeholder ?? def.placeholder,
    inputMode: def.type === "int" ? ("numeric" as const) : undefined,
    spellcheck: false,
    autoComplete: "off",
    "aria-invalid": invalid ? ("true" as const) : undefined,
    "aria-describedby": describedBy,
    onInput: (e: TargetedEvent<HTMLInputElement>) => onInput(e.currentTarget.value),
  };
  return (
    <div class={`field${invalid ? " invalid" : ""}${def.type === "list" || def.wide ? " wide" : ""}`} data-field={def.key}>
      <label for={id}>
        {def.label} <code class="field-key">{def.key}</code>
      </label>
      {def.secret ? <input type="password" {...attrs} /> : <input type="text" {...attrs} />}
      {def.hint ? (
        <p class="field-hint" id={hintId}>
          {def.hint}
        </p>
      ) : null}
      <FieldErrors id={errorId} errors={errors} />
    </div>
  );
}

function keyNote(mode: FormMode, form: FormState): string {
  if (form.privateKey) {
    return mode === "edit"
      ? "Saving replaces the stored private key: give your peers this new public key."
      : "The private key goes to your keyring when you save; give your peers this public key.";
  }
  if (mode === "edit") return "The stored private key stays in your keyring unless you generate a new pair.";
  if (mode === "duplicate") return "A copy needs a key pair of its own: generate one.";
  return "Generate this host's key pair; the private key goes to your keyring when you save.";
}

export function ProfileForm(props: ProfileFormProps) {
  const { api, mode, original } = props;
  const [form, setForm] = useState<FormState>(props.initial);
  const [errors, setErrors] = useState<FormError[]>([]);
  const [pending, setPending] = useState(true);
  const [saving, setSaving] = useState(false);
  const [generating, setGenerating] = useState(false);
  const [failure, setFailure] = useState<string | null>(null);
  const [copied, setCopied] = useState<string | null>(null);
  const checks = useRef(0);
  const alive = useRef(true);
  const copyTimer = useRef<ReturnType<typeof setTimeout> | null>(null);

  useEffect(
    () => () => {
      alive.current = false;
      if (copyTimer.current) clearTimeout(copyTimer.current);
    },
    [],
  );

  const dirty = !sameForm(form, props.initial);
  const onDirty = props.onDirty;
  useEffect(() => onDirty?.(dirty), [dirty, onDirty]);

  // Validate as you type: the draft is checked once typing pauses; a later check supersedes an earlier one.
  const stored = props.stored.join("\n");
  useEffect(() => {
    const check = ++checks.current;
    setPending(true);
    const timer = setTimeout(async () => {
      const name = draftName(form);
      const { draft, errors: local } = buildDraft(form);
      const taken = nameTaken(name, original, props.stored);
      let found: FormError[];
      if (local.length) {
        found = taken ? [taken, ...local] : local;
      } else {
        try {
          const e = await api.validateProfile(name, draft, original);
          found = [taken, e].filter((x): x is FormError => x !== null);
        } catch (err) {
          found = [{ field: null, problem: `The profile could not be checked: ${errorText(err)}`, fix: "" }];
        }
      }
      if (!alive.current || check !== checks.current) return;
      setErrors(found);
      setPending(false);
    }, VALIDATE_DELAY_MS);
    return () => clearTimeout(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [form, api, original, stored]);

  const update = (f: (s: FormState) => FormState) => {
    setFailure(null);
    setForm(f);
  };
  const setValue = (key: string, value: string) => update((s) => ({ ...s, values: { ...s.values, [key]: value } }));
  const setPeerValue = (id: number, key: string, value: string) =>
    update((s) => ({ ...s, peers: s.peers.map((p) => (p.id === id ? { ...p, values: { ...p.values, [key]: value } } : p)) }));

  const generate = async () => {
    setGenerating(true);
    try {
      const pair = await api.generateKeypair();
      if (!alive.current) return;
      setCopied(null);
      update((s) => ({ ...s, privateKey: pair.private_key, publicKey: pair.public_key }));
    } catch (e) {
      if (alive.current) setFailure(errorText(e));
    } finally {
      if (alive.current) setGenerating(false);
    }
  };

  const copy = async () => {
    if (!form.publicKey) return;
    if (copyTimer.current) clearTimeout(copyTimer.current);
    try {
      await navigator.clipboard.writeText(form.publicKey);
      if (!alive.current) return;
      setCopied("Copied");
    } catch {
      if (!alive.current) return;
      setCopied("Could not copy: select the key and copy it");
    }
    copyTimer.current = setTimeout(() => alive.current && setCopied(null), 2000);
  };

  const canSave = !pending && !saving && errors.length === 0;
  const save = async () => {
    if (!canSave) return;
    const { draft, errors: local } = buildDraft(form);
    if (local.length) return;
    setSaving(true);
    setFailure(null);
    try {
      const summary = await api.saveProfile(draftName(form), draft, original);
      if (alive.current) props.onSaved(summary);
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
  const interfaceDef = FIELDS[kind].find((f) => f.key === "interface");
  const name = draftName(form);
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
            <p class="meta">This tunnel is up: saved changes apply when it next connects.</p>
          ) : null}
        </header>

        {isUnencrypted(kind) ? (
          <div class="notice form-warning unencrypted-warning" role="note">
            <strong>Unencrypted.</strong> A {kind} tunnel sends its packets in the clear: use it on networks you
            trust, or inside another tunnel. WireGuard encrypts.
          </div>
        ) : null}

        {placed.general.length || failure ? (
          <div id="form-error" class="form-error" role="alert">
            {failure ? <p class="error-problem">{failure}</p> : null}
            {placed.general.map((e, i) => (
              <p key={i}>
                {e.field ? <code class="field-key">{e.field}</code> : null}
                {e.field ? ": " : null}
                <span class="error-problem">{e.problem}</span>
                {e.fix ? <span class="error-fix">: {e.fix}</span> : null}
              </p>
            ))}
          </div>
        ) : null}

        <section class="card form-section" aria-label="Profile">
          <div class="form-grid">
            <div class={`field${slot("name") ? " invalid" : ""}`} data-field="name">
              <label for="form-name">Name</label>
              <input
                id="form-name"
                type="text"
                name="name"
                class="mono"
                value={form.name}
                placeholder={kind === "wireguard" ? "wg0" : "lab"}
                spellcheck={false}
                autoComplete="off"
                aria-invalid={slot("name") ? "true" : undefined}
                aria-describedby={slot("name") ? "form-name-error" : "form-name-hint"}
                onInput={(e) => {
                  const value = e.currentTarget.value;
                  update((s) => ({ ...s, name: value }));
                }}
              />
              <p class="field-hint" id="form-name-hint">
                {interfaceDef ? "Also the interface's name, unless Interface is set." : "Letters, digits, '_', '.' or '-'."}
              </p>
              <FieldErrors id="form-name-error" errors={slot("name")} />
            </div>
            <div class={`field${slot("kind") ? " invalid" : ""}`} data-field="kind">
              <label for="form-kind">Kind</label>
              <select
                id="form-kind"
                name="kind"
                value={kind}
                onChange={(e) => {
                  const next = e.currentTarget.value as Kind;
                  update((s) => changeKind(s, next));
                }}
              >
                {KINDS.map((k) => (
                  <option key={k} value={k}>
                    {KIND_LABELS[k]}
                  </option>
                ))}
              </select>
              <FieldErrors id="form-kind-error" errors={slot("kind")} />
            </div>
            {interfaceDef ? (
              <Field
                id="field-interface"
                def={interfaceDef}
                value={form.values.interface ?? ""}
                placeholder={name || undefined}
                errors={slot("interface")}
                onInput={(v) => setValue("interface", v)}
              />
            ) : null}
          </div>
        </section>

        {kind === "wireguard" ? (
          <section class={`card form-section keys${slot("private_key") ? " invalid" : ""}`} aria-labelledby="keys-h" data-field="private_key">
            <h2 id="keys-h">Keys</h2>
            <input type="hidden" name="private_key" value={form.privateKey ?? ""} />
            <div class="key-line">
              <span class="key-label">Public key</span>
              {form.publicKey ? (
                <code id="form-public-key" class="public-key">
                  {form.publicKey}
                </code>
              ) : (
                <span class="muted no-key">No key pair yet</span>
              )}
              {form.publicKey ? (
                <button type="button" id="copy-public-key" onClick={() => void copy()} title="Copy the public key for your peers">
                  Copy
                </button>
              ) : null}
              <span class="copy-note" aria-live="polite">
                {copied}
              </span>
              <button type="button" id="generate-keys" disabled={generating} onClick={() => void generate()}>
                {generating ? "Generating…" : "Generate key pair"}
              </button>
            </div>
            <p class="fine-print">{keyNote(mode, form)}</p>
            <FieldErrors id="form-private-key-error" errors={slot("private_key")} />
          </section>
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

        <section class={`card form-section peers-section${slot("peer") ? " invalid" : ""}`} aria-labelledby="peers-form-h" data-field="peer">
          <div class="card-head">
            <h2 id="peers-form-h">Peers</h2>
            <button type="button" id="add-peer" onClick={() => update((s) => ({ ...s, peers: [...s.peers, newPeer()] }))}>
              Add peer
            </button>
          </div>
          <FieldErrors id="form-peer-error" errors={slot("peer")} />
          {form.peers.length === 0 ? <p class="table-empty">No peers: add one.</p> : null}
          {form.peers.map((p, i) => (
            <div
              key={p.id}
              class={`peer${slot(`peer[${i}]`) ? " invalid" : ""}`}
              data-index={i}
              role="group"
              aria-labelledby={`peer-${p.id}-h`}
            >
              <div class="peer-head">
                <h3 id={`peer-${p.id}-h`}>Peer {i + 1}</h3>
                <button
                  type="button"
                  class="remove-peer subtle"
                  title="Remove this peer"
                  onClick={() => update((s) => ({ ...s, peers: s.peers.filter((q) => q.id !== p.id) }))}
                >
                  Remove
                </button>
              </div>
              <FieldErrors id={`peer-${p.id}-error`} errors={slot(`peer[${i}]`)} />
              <div class="form-grid">
                {PEER_FIELDS[kind].map((def) => (
                  <Field
                    key={`${kind}-${def.key}`}
                    id={`peer-${p.id}-${def.key}`}
                    def={def}
                    value={p.values[def.key] ?? ""}
                    errors={slot(`peer[${i}].${def.key}`)}
                    onInput={(v) => setPeerValue(p.id, def.key, v)}
                  />
                ))}
              </div>
            </div>
          ))}
        </section>

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
