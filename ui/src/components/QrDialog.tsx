import { useEffect, useRef, useState } from "preact/hooks";
import { errorText, type Api } from "../api";
import type { QrModules } from "../bindings/QrModules";

export type QrDialogProps = {
  api: Api;
  /** The stored WireGuard profile to show. */
  name: string;
  onClose(): void;
};

/** The light margin around the code, in modules: the four the QR specification asks for. */
const QUIET_ZONE = 4;

/**
 * A WireGuard profile as a QR code for the WireGuard mobile apps. The code holds the private key, so the dialog
 * first says so and asks for the profile only when the user chooses to show it.
 */
export function QrDialog({ api, name, onClose }: QrDialogProps) {
  const [code, setCode] = useState<QrModules | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [asking, setAsking] = useState(false);
  const dialog = useRef<HTMLDivElement>(null);

  useEffect(() => {
    dialog.current?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") onClose();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onClose]);

  const show = async () => {
    setAsking(true);
    try {
      setCode(await api.profileQr(name));
      setError(null);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setAsking(false);
    }
  };

  return (
    <div
      class="modal-backdrop"
      onMouseDown={(e) => {
        if (e.target === e.currentTarget) onClose();
      }}
    >
      <div id="qr-dialog" class="modal" role="dialog" aria-modal="true" aria-labelledby="qr-title" tabIndex={-1} ref={dialog}>
        <header class="modal-head">
          <h2 id="qr-title">QR code of {name}</h2>
          <button type="button" id="qr-close" onClick={onClose} title="Close (Esc)">
            Close
          </button>
        </header>
        <div class="modal-body">
          {error ? <p class="form-error" role="alert">{error}</p> : null}
          {code ? (
            <QrImage code={code} />
          ) : (
            <>
              <p id="qr-warning" class="qr-warning">
                This code holds the private key of {name}: whoever sees it, or a photo of it, can use the tunnel as
                you. Show it only to the camera of your own phone's WireGuard app, with nobody looking on.
              </p>
              <button type="button" id="qr-show" disabled={asking} onClick={() => void show()}>
                {asking ? "Making the code…" : "Show the QR code"}
              </button>
            </>
          )}
        </div>
      </div>
    </div>
  );
}

/** The modules as squares of one unit each, dark on a light ground with its quiet zone. */
function QrImage({ code }: { code: QrModules }) {
  const side = code.size + 2 * QUIET_ZONE;
  const squares = [];
  for (let y = 0; y < code.size; y++) {
    for (let x = 0; x < code.size; x++) {
      if (code.dark[y * code.size + x]) {
        squares.push(<rect class="m" x={x + QUIET_ZONE} y={y + QUIET_ZONE} width="1" height="1" />);
      }
    }
  }
  return (
    <svg
      id="qr-code"
      class="qr-code"
      viewBox={`0 0 ${side} ${side}`}
      data-size={side}
      role="img"
      aria-label="QR code of the profile for the WireGuard app"
      shape-rendering="crispEdges"
    >
      <rect x="0" y="0" width={side} height={side} fill="#fff" />
      <g fill="#000">{squares}</g>
    </svg>
  );
}
