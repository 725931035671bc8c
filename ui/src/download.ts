// Saving text as a file, the way a web view can: a download link to a blob URL, clicked for the user.

/** The file name an exported profile is saved under: wg-quick files end in .conf, the rest in .toml. */
export function exportFileName(name: string, kind: string | null, text: string): string {
  const wgQuick = kind === "wireguard" || /^\s*\[interface\]/im.test(text);
  return `${name}.${wgQuick ? "conf" : "toml"}`;
}

const KEEP_MS = 60_000;

/**
 * Offers `text` as a download named `fileName`: an `a[download]` with a blob URL, put into `container` and
 * clicked. The link stays (hidden) for a minute, so the download can finish, then it and its URL go.
 */
export function saveText(fileName: string, text: string, container: HTMLElement = document.body): HTMLAnchorElement {
  const url = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = fileName;
  a.hidden = true;
  a.className = "download-link";
  a.textContent = fileName;
  container.appendChild(a);
  a.click();
  setTimeout(() => {
    a.remove();
    URL.revokeObjectURL(url);
  }, KEEP_MS);
  return a;
}
