import { useCallback, useEffect, useState } from "preact/hooks";
import type { Api } from "../api";
import type { ProfileSummary } from "../bindings/ProfileSummary";

/** The stored profiles (null until first listed), listed again on focus: `culvert import` may add some behind the app's back. */
export function useProfiles(api: Api, showError: (e: unknown) => void) {
  const [profiles, setProfiles] = useState<ProfileSummary[] | null>(null);
  const refreshProfiles = useCallback(async (): Promise<ProfileSummary[] | null> => {
    try {
      const list = await api.listProfiles();
      setProfiles(list);
      return list;
    } catch (e) {
      showError(e);
      setProfiles((p) => p ?? []);
      return null;
    }
  }, [api, showError]);
  useEffect(() => {
    void refreshProfiles();
    const onFocus = () => void refreshProfiles();
    window.addEventListener("focus", onFocus);
    return () => window.removeEventListener("focus", onFocus);
  }, [refreshProfiles]);
  return { profiles, refreshProfiles };
}
