import { useCallback, useState } from "preact/hooks";
import { errorText } from "../api";

/** The two lines under the top bar: what went wrong (and notices), and good news to see once. */
export function useBanners() {
  const [error, setError] = useState<string | null>(null);
  const [info, setInfo] = useState<string | null>(null);
  const showError = useCallback((e: unknown) => setError(errorText(e)), []);
  // Notices come unasked and may come several at once (one per profile that failed to connect on launch): each
  // is added to what the banner shows rather than replacing it.
  const showNotice = useCallback((message: string) => {
    setError((shown) => (!shown ? message : shown.split("\n").includes(message) ? shown : `${shown}\n${message}`));
  }, []);
  return { error, setError, info, setInfo, showError, showNotice };
}
