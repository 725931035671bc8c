// WebKitGTK reports the POSIX locale as navigator.language "C" when LANG is C, C.UTF-8 or unset (minimal
// systems, CI, Xvfb). uPlot calls `new Intl.NumberFormat(navigator.language)` when it loads, which throws
// "RangeError: invalid language tag: C" and would leave the window blank. Import this module before uPlot:
// it puts a valid tag in place of one Intl refuses.

function validTag(tag: string | undefined): boolean {
  if (!tag) return false;
  try {
    new Intl.NumberFormat(tag);
    return true;
  } catch {
    return false;
  }
}

export function guardLocale(nav: Navigator | undefined = typeof navigator === "undefined" ? undefined : navigator): boolean {
  if (!nav || validTag(nav.language)) return false;
  const fallback = (nav.languages ?? []).find(validTag) ?? "en-US";
  try {
    Object.defineProperty(nav, "language", { configurable: true, get: () => fallback });
    return true;
  } catch {
    return false;
  }
}

guardLocale();
