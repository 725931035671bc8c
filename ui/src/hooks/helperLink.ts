import { useEffect, useRef, useState } from "preact/hooks";
import type { Api } from "../api";
import type { HelperState } from "../bindings/HelperState";
import type { Snapshot } from "../bindings/Snapshot";
import { SeriesBook } from "../series";

/**
 * The link to culvertd as the window sees it: the helper's state, the latest snapshot (and when it arrived, by
 * Date.now(): its own `at_ms` is the app's monotonic clock), the rate series fed from the snapshots, and the
 * notices the Rust side sends, early ones included.
 */
export function useHelperLink(api: Api, showError: (e: unknown) => void, showNotice: (message: string) => void) {
  const [helper, setHelper] = useState<HelperState | null>(null);
  const [snapshot, setSnapshot] = useState<Snapshot | null>(null);
  const [receivedMs, setReceivedMs] = useState(-Infinity);
  const seriesBook = useRef(new SeriesBook());
  const snapshotSeen = useRef(false);

  useEffect(() => {
    let alive = true;
    const snapshots = api.onSnapshot((s) => {
      if (!alive) return;
      snapshotSeen.current = true;
      seriesBook.current.feed(s.at_ms, s.tunnels);
      setSnapshot(s);
      setReceivedMs(Date.now());
      setHelper(s.helper);
    });
    const notices = api.onNotice((message) => alive && showNotice(message));
    for (const s of [snapshots, notices]) s.catch((e) => alive && showError(e));
    // Notices sent before the listener above was in place (connect on launch starts at once).
    notices.then(() => api.notices()).then((early) => alive && early.forEach(showNotice), () => undefined);
    api.helperState().then(
      (h) => alive && !snapshotSeen.current && setHelper(h),
      (e) => alive && showError(e),
    );
    return () => {
      alive = false;
      for (const s of [snapshots, notices]) s.then((unlisten) => unlisten(), () => undefined);
    };
  }, [api, showError, showNotice]);

  return { helper, snapshot, receivedMs, seriesBook: seriesBook.current };
}
