// Fake-timer steps for tests that render the App: advance the clock inside act, so effects and renders settle.

import { act } from "preact/test-utils";
import { vi } from "vitest";

export async function tick(ms = 0) {
  await act(async () => {
    await vi.advanceTimersByTimeAsync(ms);
  });
}

/** Lets chained promises (invoke, then state, then render) run out. */
export async function settle() {
  for (let i = 0; i < 5; i++) await tick(0);
}
