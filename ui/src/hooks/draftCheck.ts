import { useEffect, useRef, useState } from "preact/hooks";
import { errorText, type Api } from "../api";
import type { FormError } from "../bindings/FormError";
import { buildDraft, draftName, nameTaken, type FormState } from "../forms";
import { VALIDATE_DELAY_MS } from "../components/ProfileForm";

/**
 * Validate as you type: the draft is checked with the CLI's and the helper's rules once typing pauses; a later
 * check supersedes an earlier one. `pending` until the latest check has answered.
 */
export function useDraftCheck(api: Api, form: FormState, original: string | null, stored: readonly string[]) {
  const [errors, setErrors] = useState<FormError[]>([]);
  const [pending, setPending] = useState(true);
  const checks = useRef(0);
  const alive = useRef(true);
  useEffect(
    () => () => {
      alive.current = false;
    },
    [],
  );
  const storedKey = stored.join("\n");
  useEffect(() => {
    const check = ++checks.current;
    setPending(true);
    const timer = setTimeout(async () => {
      const name = draftName(form);
      const { draft, errors: local } = buildDraft(form);
      const taken = nameTaken(name, original, stored);
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
  }, [form, api, original, storedKey]);
  return { errors, pending };
}
