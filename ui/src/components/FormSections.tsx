import type { FormError } from "../bindings/FormError";
import type { Kind } from "../bindings/Kind";
import { changeKind, draftName, FIELDS, hasPeers, KIND_LABELS, KINDS, newPeer, PEER_FIELDS, type FormState } from "../forms";
import { Field, FieldErrors } from "./FormFields";
import type { FormMode } from "./ProfileForm";

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

/** A WireGuard profile's keys: this host's public key, to copy for the peers, and a new pair in one click. */
export function KeysSection(props: {
  mode: FormMode;
  form: FormState;
  errors: FormError[] | undefined;
  copied: string | null;
  generating: boolean;
  onCopy(): void;
  onGenerate(): void;
}) {
  const { mode, form, copied, generating } = props;
  return (

          <section class={`card form-section keys${props.errors ? " invalid" : ""}`} aria-labelledby="keys-h" data-field="private_key">
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
                <button type="button" id="copy-public-key" onClick={props.onCopy} title="Copy the public key for your peers">
                  Copy
                </button>
              ) : null}
              <span class="copy-note" aria-live="polite">
                {copied}
              </span>
              <button type="button" id="generate-keys" disabled={generating} onClick={props.onGenerate}>
                {generating ? "Generating…" : "Generate key pair"}
              </button>
            </div>
            <p class="fine-print">{keyNote(mode, form)}</p>
            <FieldErrors id="form-private-key-error" errors={props.errors} />
          </section>
        
  );
}

/** The peers, each a group of the kind's peer fields, added and removed here. */
export function PeersSection(props: {
  form: FormState;
  slot(key: string): FormError[] | undefined;
  update(f: (s: FormState) => FormState): void;
  setPeerValue(id: number, key: string, value: string): void;
}) {
  const { form, slot, update, setPeerValue } = props;
  const kind = form.kind;
  if (!hasPeers(kind)) {
    return (
      <section class="card form-section peers-section" aria-labelledby="peers-form-h" data-field="peer">
        <h2 id="peers-form-h">Peers</h2>
        <p class="fine-print">An overlay's peers are the other hosts of its network: culvertd finds them in etcd.</p>
      </section>
    );
  }
  return (
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
  );
}

/** Errors no input matches, and a failed save's message. */
export function GeneralErrors({ errors, failure }: { errors: FormError[]; failure: string | null }) {
  return (

          errors.length || failure ? (
    <div id="form-error" class="form-error" role="alert">
            {failure ? <p class="error-problem">{failure}</p> : null}
            {errors.map((e, i) => (
              <p key={i}>
                {e.field ? <code class="field-key">{e.field}</code> : null}
                {e.field ? ": " : null}
                <span class="error-problem">{e.problem}</span>
                {e.fix ? <span class="error-fix">: {e.fix}</span> : null}
              </p>
            ))}
          </div>
        
    ) : null
  );
}

/** The profile's name, its kind, and the interface name when the kind has one. */
export function IdentitySection(props: {
  form: FormState;
  slot(key: string): FormError[] | undefined;
  update(f: (s: FormState) => FormState): void;
  setValue(key: string, value: string): void;
}) {
  const { form, slot, update, setValue } = props;
  const kind = form.kind;
  const interfaceDef = FIELDS[kind].find((f) => f.key === "interface");
  const name = draftName(form);
  return (
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
  );
}
