import { useRef, useState } from "preact/hooks";
import type { TunnelStatus } from "../bindings/TunnelStatus";
import type { Busy } from "../components/Sidebar";
import { PENDING_MS, type Pending } from "../state";

/**
 * What the rows' buttons are doing: which row is busy with what (one action a row at a time), and the answers of
 * connects and disconnects that snapshots have not caught up with yet.
 */
export function useRowActions(showError: (e: unknown) => void) {
  const [busy, setBusy] = useState<Record<string, Busy | undefined>>({});
  const [pending, setPending] = useState<ReadonlyMap<string, Pending>>(() => new Map());
  const busyNow = useRef<Record<string, Busy | undefined>>({});

  const setRowBusy = (name: string, b: Busy | undefined) => {
    busyNow.current = { ...busyNow.current, [name]: b };
    if (b === undefined) delete busyNow.current[name];
    setBusy(busyNow.current);
  };

  const addPending = (name: string, tunnel: TunnelStatus | null) => {
    const since = Date.now();
    setPending((m) => new Map(m).set(name, { tunnel, since_ms: since }));
    setTimeout(() => {
      setPending((m) => {
        if (m.get(name)?.since_ms !== since) return m;
        const next = new Map(m);
        next.delete(name);
        return next;
      });
    }, PENDING_MS + 50);
  };

  /** Runs `work` for row `name` unless the row is busy already: marked busy meanwhile, a failure shown. */
  const rowAction = async (name: string, what: Busy, work: () => Promise<void>) => {
    if (busyNow.current[name]) return;
    setRowBusy(name, what);
    try {
      await work();
    } catch (e) {
      showError(e);
    } finally {
      setRowBusy(name, undefined);
    }
  };

  return { busy, pending, addPending, rowAction };
}
