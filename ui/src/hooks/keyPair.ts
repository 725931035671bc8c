import { useEffect, useRef, useState } from "preact/hooks";
import { errorText, type Api } from "../api";
import type { KeyPair } from "../bindings/KeyPair";

/** A WireGuard key pair made on the Rust side (`generate`), and the public key copied for the peers (`copy`). */
export function useKeyPair(
  api: Api,
  publicKey: string | null,
  alive: { current: boolean },
  onPair: (pair: KeyPair) => void,
  onFailure: (message: string) => void,
) {
  const [generating, setGenerating] = useState(false);
  const [copied, setCopied] = useState<string | null>(null);
  const copyTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(
    () => () => {
      if (copyTimer.current) clearTimeout(copyTimer.current);
    },
    [],
  );
  const generate = async () => {
    setGenerating(true);
    try {
      const pair = await api.generateKeypair();
      if (!alive.current) return;
      setCopied(null);
      onPair(pair);
    } catch (e) {
      if (alive.current) onFailure(errorText(e));
    } finally {
      if (alive.current) setGenerating(false);
    }
  };
  const copy = async () => {
    if (!publicKey) return;
    if (copyTimer.current) clearTimeout(copyTimer.current);
    try {
      await navigator.clipboard.writeText(publicKey);
      if (!alive.current) return;
      setCopied("Copied");
    } catch {
      if (!alive.current) return;
      setCopied("Could not copy: select the key and copy it");
    }
    copyTimer.current = setTimeout(() => alive.current && setCopied(null), 2000);
  };
  return { generate, generating, copy, copied };
}
