import { useCallback, useState } from "preact/hooks";

const SELECTED_KEY = "culvert.selected";

function readSelected(): string | null {
  try {
    return localStorage.getItem(SELECTED_KEY);
  } catch {
    return null;
  }
}

function writeSelected(name: string | null) {
  try {
    if (name === null) localStorage.removeItem(SELECTED_KEY);
    else localStorage.setItem(SELECTED_KEY, name);
  } catch {
    // private mode or no storage: the selection is simply not remembered
  }
}

/** The selected profile or tunnel, remembered across starts. */
export function useSelection() {
  const [selected, setSelected] = useState<string | null>(readSelected);
  const select = useCallback((name: string | null) => {
    setSelected(name);
    writeSelected(name);
  }, []);
  return { selected, select };
}
