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
