import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import type { Api } from "../api";
import { addBatch, emptyPacketList, type PacketList } from "../packets";

/**
 * The packet view's list, fed while `name` is watched (null: none). Starts and stops are chained, so that a stop
 * never overtakes the start that follows it; batches of another tunnel are ignored.
 */
export function usePacketWatch(api: Api, name: string | null, showError: (e: unknown) => void) {
  const [packets, setPackets] = useState<PacketList>(emptyPacketList);
  const watching = useRef<string | null>(null);
  const chain = useRef<Promise<void>>(Promise.resolve());

  useEffect(() => {
    let alive = true;
    const batches = api.onPackets((batch) => {
      if (!alive || batch.name !== watching.current) return;
      setPackets((list) => addBatch(list, batch));
    });
    batches.catch((e) => alive && showError(e));
    return () => {
      alive = false;
      batches.then((unlisten) => unlisten(), () => undefined);
    };
  }, [api, showError]);

  const setWatch = useCallback(
    (watched: string | null) => {
      chain.current = chain.current.then(() => api.watchPackets(watched)).catch(showError);
    },
    [api, showError],
  );
  useEffect(() => {
    if (name === null) return;
    watching.current = name;
    setPackets((list) => ({ ...emptyPacketList(), filter: list.filter }));
    setWatch(name);
    return () => {
      watching.current = null;
      setWatch(null);
    };
  }, [name, setWatch]);

  return { packets, setPackets };
}
