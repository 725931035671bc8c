export function ErrorBanner({ message, onDismiss }: { message: string | null; onDismiss(): void }) {
  if (!message) return null;
  return (
    <div id="error" class="error-banner" role="alert">
      <span class="error-icon" aria-hidden="true">!</span>
      <p class="error-message">{message}</p>
      <button type="button" class="dismiss" onClick={onDismiss} aria-label="Dismiss this error" title="Dismiss">
        Dismiss
      </button>
    </div>
  );
}

/** A message that is not a failure (what a save did to a running tunnel), dismissed the same way. */
export function InfoBanner({ message, onDismiss }: { message: string | null; onDismiss(): void }) {
  if (!message) return null;
  return (
    <div id="info" class="info-banner" role="status">
      <p class="info-message">{message}</p>
      <button type="button" class="dismiss" onClick={onDismiss} aria-label="Dismiss this message" title="Dismiss">
        Dismiss
      </button>
    </div>
  );
}
