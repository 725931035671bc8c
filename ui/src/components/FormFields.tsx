import type { TargetedEvent } from "preact";
import type { FormError } from "../bindings/FormError";
import type { FieldDef } from "../forms";

/** The errors of one field, beside its input. */
export function FieldErrors({ id, errors }: { id: string; errors: FormError[] | undefined }) {
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

/** What goes under a field's input: its hint, then its errors. */
function FieldFooter(props: { hint: string | undefined; hintId: string; errorId: string; errors: FormError[] | undefined }) {
  return (
    <>
      {props.hint ? (
        <p class="field-hint" id={props.hintId}>
          {props.hint}
        </p>
      ) : null}
      <FieldErrors id={props.errorId} errors={props.errors} />
    </>
  );
}

export type InputProps = {
  id: string;
  def: FieldDef;
  value: string;
  errors: FormError[] | undefined;
  placeholder?: string;
  onInput(value: string): void;
};

/** One input of the form, with its label, the profile key it writes, a hint and its errors. */
export function Field({ id, def, value, errors, placeholder, onInput }: InputProps) {
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
  if (def.type === "switch") {
    return (
      <div class={`field switch${invalid ? " invalid" : ""}`} data-field={def.key}>
        <label for={id}>
          <input
            type="checkbox"
            id={id}
            name={def.key}
            checked={value === "true"}
            aria-invalid={attrs["aria-invalid"]}
            aria-describedby={describedBy}
            onChange={(e: TargetedEvent<HTMLInputElement>) => onInput(e.currentTarget.checked ? "true" : "")}
          />{" "}
          {def.label} <code class="field-key">{def.key}</code>
        </label>
        <FieldFooter hint={def.hint} hintId={hintId} errorId={errorId} errors={errors} />
      </div>
    );
  }
  return (
    <div class={`field${invalid ? " invalid" : ""}${def.type === "list" || def.wide ? " wide" : ""}`} data-field={def.key}>
      <label for={id}>
        {def.label} <code class="field-key">{def.key}</code>
      </label>
      {def.secret ? <input type="password" {...attrs} /> : <input type="text" {...attrs} />}
      <FieldFooter hint={def.hint} hintId={hintId} errorId={errorId} errors={errors} />
    </div>
  );
}
