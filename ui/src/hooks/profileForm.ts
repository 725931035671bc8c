import { useCallback, useRef, useState } from "preact/hooks";
import type { FormMode } from "../components/ProfileForm";
import type { FormState } from "../forms";

/** The profile form, open in the main panel. */
export type OpenForm = {
  mode: FormMode;
  /** The stored profile being edited, or null for a new one. */
  original: string | null;
  /** The profile a duplicate was made from. */
  source: string | null;
  initial: FormState;
  /** Tells one opening of the form from the next, so each starts afresh. */
  seq: number;
};

/** Whether the profile form is open (and on what), and whether it holds anything typed. */
export function useProfileForm() {
  const [form, setForm] = useState<OpenForm | null>(null);
  const seq = useRef(0);
  const dirty = useRef(false);
  const openForm = (f: Omit<OpenForm, "seq">) => {
    dirty.current = false;
    seq.current += 1;
    setForm({ ...f, seq: seq.current });
  };
  const closeForm = () => {
    dirty.current = false;
    setForm(null);
  };
  const onDirty = useCallback((d: boolean) => {
    dirty.current = d;
  }, []);
  return { form, setForm, openForm, closeForm, dirty, onDirty };
}
