// The App mounted in a test: a root element of its own, fake timers at NOW_MS, and the queries and clicks the
// tests use. Call `appHarness()` at the top of a test file: it registers its own setup and teardown.

import { render } from "preact";
import { act } from "preact/test-utils";
import { afterEach, beforeEach, expect, vi } from "vitest";
import { App } from "../App";
import type { Api } from "../api";
import { NOW_MS } from "./fixtures";
import { settle } from "./timers";

export function appHarness() {
  let root: HTMLElement = document.body;

  beforeEach(() => {
    // Intervals and pending results follow the clock: the tests say when time passes.
    vi.useFakeTimers({ toFake: ["Date", "setTimeout", "clearTimeout", "setInterval", "clearInterval"] });
    vi.setSystemTime(NOW_MS);
    localStorage.clear();
    root = document.createElement("div");
    document.body.appendChild(root);
  });

  afterEach(() => {
    render(null, root);
    vi.useRealTimers();
    root.remove();
    document.body.innerHTML = "";
  });

  return {
    root: () => root,
    async mount(api: Api) {
      await act(async () => render(<App api={api} />, root));
      await settle();
    },
    $: <T extends Element = HTMLElement>(sel: string) => root.querySelector<T>(sel),
    $$: (sel: string) => Array.from(root.querySelectorAll<HTMLElement>(sel)),
    async click(el: Element | null) {
      expect(el).not.toBeNull();
      await act(async () => (el as HTMLElement).click());
      await settle();
    },
    /** Lets `ms` pass on the fake clock, and what it set off settle. */
    async later(ms: number) {
      await act(async () => void vi.advanceTimersByTime(ms));
      await settle();
    },
  };
}
