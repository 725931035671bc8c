// @vitest-environment happy-dom
// Creating, editing and duplicating profiles in the form, against a fake Rust side.

import { render } from "preact";
import { act } from "preact/test-utils";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { App } from "./App";
import type { Editable } from "./bindings/Editable";
import type { FormError } from "./bindings/FormError";
import { VALIDATE_DELAY_MS } from "./components/ProfileForm";
import type { FormDraft } from "./bindings/FormDraft";
import { deferred, fakeSide, type FakeSide } from "./test/fake";
import { settle, tick } from "./test/timers";
import { KEYPAIR, NOW_MS, OK, profile, snapshot, tunnel } from "./test/fixtures";

vi.mock("./components/RateChart", () => ({ RateChart: () => <div id="chart" /> }));

const PEER_KEY = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
const STORED_PUBLIC_KEY = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
const PROFILES = [profile("lab"), profile("wg0", "wireguard"), profile("flat", "vxlan")];
const EDITABLES: Record<string, Editable> = {
  wg0: {
    draft: {
      kind: "wireguard",
      address: ["10.8.0.1/24"],
      listen_port: 51820,
      dns: ["10.8.0.1", "corp.example"],
      table: "off",
      peer: [{ public_key: PEER_KEY, allowed_ips: ["10.8.0.2/32", "192.168.50.0/24"], endpoint: "vpn.example.com:51820", persistent_keepalive: 25 }],
    },
    public_key: STORED_PUBLIC_KEY,
  },
  lab: {
    draft: { kind: "udp", address: ["10.9.0.1/24"], listen_port: 8285, peer: [{ endpoint: "172.31.0.2:8285", allowed_ips: ["10.9.0.0/24"] }] },
    public_key: null,
  },
};

const MISSING_KEY: FormError = {
  field: null,
  problem: "missing field `private_key`",
  fix: "add it: the README shows an example profile of each kind",
};

/** The Rust side's checks, as far as these tests need them. */
function rules(_name: string, draft: FormDraft, original: string | null): FormError | null {
  if (draft.kind === "wireguard" && !draft.private_key && original === null) return MISSING_KEY;
  const address = (draft.address as string[] | undefined) ?? [];
  const bad = address.findIndex((a) => a.endsWith("/33"));
  if (bad >= 0) {
    return { field: `address[${bad}]`, problem: `\`${address[bad]}\` is not an address with a prefix length`, fix: "write it as 10.9.0.1/24 or fd00:9::1/64" };
  }
  const peers = (draft.peer as Record<string, unknown>[] | undefined) ?? [];
  for (const [i, p] of peers.entries()) {
    const ips = (p.allowed_ips as string[] | undefined) ?? [];
    const j = ips.indexOf("10.9.0.1/24");
    if (j >= 0) return { field: `peer[${i}].allowed_ips[${j}]`, problem: "10.9.0.1/24 has host bits set", fix: "write the network as 10.9.0.0/24" };
  }
  return null;
}

let root: HTMLElement;
let side: FakeSide;

beforeEach(() => {
  // The validation's debounce runs on fake timers, so the tests say exactly when typing pauses.
  vi.useFakeTimers({ toFake: ["Date", "setTimeout", "clearTimeout"] });
  vi.setSystemTime(NOW_MS);
  localStorage.clear();
  root = document.createElement("div");
  document.body.appendChild(root);
  side = fakeSide(PROFILES, OK, EDITABLES);
  side.api.validateProfile.mockImplementation(async (name, draft, original) => rules(name, draft, original));
});

afterEach(() => {
  render(null, root);
  vi.useRealTimers();
  root.remove();
  document.body.innerHTML = "";
});


/** Typing pauses long enough for the draft to be checked, and the check answers. */
async function validated() {
  await tick(VALIDATE_DELAY_MS);
  await settle();
}

async function mount() {
  await act(async () => render(<App api={side.api} />, root));
  await settle();
}

const $ = <T extends Element = HTMLElement>(sel: string) => root.querySelector<T>(sel);
const $$ = (sel: string) => Array.from(root.querySelectorAll<HTMLElement>(sel));
const row = (name: string) => $(`li.profile[data-name="${name}"]`)!;
const input = (sel: string) => $<HTMLInputElement>(sel)!;
/** A top-level input by its TOML key (not a peer's). */
const top = (key: string) => input(`#profile-form .form-section:not(.peers-section) input[name="${key}"]`);
const peerInput = (i: number, key: string) => input(`.peer[data-index="${i}"] input[name="${key}"]`);
const fieldError = (scope: string, key: string) => $(`${scope} .field[data-field="${key}"] .field-error`);
const saveButton = () => $<HTMLButtonElement>("#form-save")!;

async function click(el: Element | null) {
  expect(el).not.toBeNull();
  await act(async () => (el as HTMLElement).click());
  await settle();
}

async function type(el: HTMLInputElement | null, value: string) {
  expect(el).not.toBeNull();
  await act(async () => {
    el!.value = value;
    el!.dispatchEvent(new Event("input", { bubbles: true }));
  });
}

async function chooseKind(kind: string) {
  const select = $<HTMLSelectElement>("#form-kind")!;
  await act(async () => {
    select.value = kind;
    select.dispatchEvent(new Event("change", { bubbles: true }));
  });
}

function lastValidation() {
  return side.api.validateProfile.mock.calls.at(-1)!;
}

describe("a new profile", () => {
  it("opens as WireGuard, asks for a key pair and takes a generated one", async () => {
    await mount();
    await click($("#new-profile"));
    expect($("#profile-form")).not.toBeNull();
    expect($("#detail")).toBeNull();
    expect($<HTMLSelectElement>("#form-kind")!.value).toBe("wireguard");
    expect(input("#form-name").value).toBe("");
    expect(top("address")).not.toBeNull();
    expect(top("dns")).not.toBeNull();
    expect(top("interface")).not.toBeNull();
    expect($$(".peer").length).toBe(1);
    expect(peerInput(0, "public_key")).not.toBeNull();
    expect($(".unencrypted-warning")).toBeNull();
    expect($("#form-public-key")).toBeNull();
    // Nothing is checked yet: Save waits.
    expect(saveButton().disabled).toBe(true);

    await validated();
    expect(lastValidation()).toEqual(["", { kind: "wireguard", peer: [{}] }, null]);
    expect($("#form-error")!.textContent).toContain("missing field `private_key`");
    expect(saveButton().disabled).toBe(true);

    await click($("#generate-keys"));
    expect(side.api.generateKeypair).toHaveBeenCalledTimes(1);
    expect($("#form-public-key")!.textContent).toBe(KEYPAIR.public_key);
    const hidden = input('input[name="private_key"]');
    expect(hidden.type).toBe("hidden");
    expect(hidden.value).toBe(KEYPAIR.private_key);
    await validated();
    expect(lastValidation()[1]).toEqual({ kind: "wireguard", private_key: KEYPAIR.private_key, peer: [{}] });
    expect($("#form-error")).toBeNull();
    expect(saveButton().disabled).toBe(false);

    const writeText = vi.fn(async (_text: string) => undefined);
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    await click($("#copy-public-key"));
    expect(writeText).toHaveBeenCalledWith(KEYPAIR.public_key);
    expect($(".copy-note")!.textContent).toBe("Copied");
  });

  it("checks the draft once typing pauses, and shows a field's error next to its input", async () => {
    await mount();
    await click($("#new-profile"));
    await click($("#generate-keys"));
    await validated();
    const calls = side.api.validateProfile.mock.calls.length;

    await type(input("#form-name"), "office");
    await tick(100);
    await type(top("address"), "10.8.0.1/24, 10.8.0.7/33");
    await tick(VALIDATE_DELAY_MS - 50);
    // Still typing: no check yet, and Save waits for one.
    expect(side.api.validateProfile.mock.calls.length).toBe(calls);
    expect(saveButton().disabled).toBe(true);
    await validated();
    expect(side.api.validateProfile.mock.calls.length).toBe(calls + 1);
    expect(lastValidation()).toEqual([
      "office",
      { kind: "wireguard", private_key: KEYPAIR.private_key, address: ["10.8.0.1/24", "10.8.0.7/33"], peer: [{}] },
      null,
    ]);
    const error = fieldError("#profile-form", "address")!;
    expect(error.textContent).toContain("`10.8.0.7/33` is not an address with a prefix length");
    expect(error.textContent).toContain("write it as 10.9.0.1/24 or fd00:9::1/64");
    expect(top("address").getAttribute("aria-invalid")).toBe("true");
    expect($("#form-error")).toBeNull();
    expect(saveButton().disabled).toBe(true);

    // A peer's list item belongs to that peer's input.
    await type(top("address"), "10.8.0.1/24");
    await type(peerInput(0, "allowed_ips"), "10.8.0.2/32, 10.9.0.1/24");
    await validated();
    expect(fieldError("#profile-form", "address")).toBeNull();
    expect(fieldError('.peer[data-index="0"]', "allowed_ips")!.textContent).toContain("10.9.0.1/24 has host bits set");

    await type(peerInput(0, "allowed_ips"), "10.8.0.2/32, 10.9.0.0/24");
    await validated();
    expect($$(".field-error").length).toBe(0);
    expect(saveButton().disabled).toBe(false);
  });

  it("says which field is not a number without asking the Rust side", async () => {
    await mount();
    await click($("#new-profile"));
    await validated();
    const calls = side.api.validateProfile.mock.calls.length;
    await type(top("listen_port"), "51820x");
    await validated();
    expect(side.api.validateProfile.mock.calls.length).toBe(calls);
    expect(fieldError("#profile-form", "listen_port")!.textContent).toContain("`51820x` is not a number");
    expect(saveButton().disabled).toBe(true);
  });

  it("ignores the answer of a check that newer typing overtook", async () => {
    await mount();
    await click($("#new-profile"));
    await click($("#generate-keys"));
    await validated();
    const slow = deferred<FormError | null>();
    side.api.validateProfile.mockImplementationOnce(() => slow.promise);
    await type(top("address"), "10.8.0.1/33");
    await validated();
    await type(top("address"), "10.8.0.1/24");
    await validated();
    await act(async () => slow.resolve({ field: "address[0]", problem: "stale", fix: "" }));
    await settle();
    expect($$(".field-error").length).toBe(0);
    expect(saveButton().disabled).toBe(false);
  });

  it("saves a udp profile with its draft, then lists and selects it", async () => {
    await mount();
    await click($("#new-profile"));
    await chooseKind("udp");
    expect($(".unencrypted-warning")!.textContent).toContain("in the clear");
    expect(top("dns")).toBeNull();
    expect(top("listen_port").value).toBe("8285");
    expect($('input[name="private_key"]')).toBeNull();
    await type(input("#form-name"), "site");
    await type(top("address"), "10.9.0.1/24, fd00:9::1/64");
    await type(top("mtu"), "1400");
    await type(peerInput(0, "endpoint"), "172.31.0.2:8285");
    await type(peerInput(0, "allowed_ips"), "10.9.0.0/24");
    await click($("#add-peer"));
    expect($$(".peer").length).toBe(2);
    await type(peerInput(1, "endpoint"), "172.31.0.9:8285");
    await click($$(".peer")[1].querySelector(".remove-peer"));
    expect($$(".peer").length).toBe(1);
    await click($("#add-peer"));
    await type(peerInput(1, "endpoint"), "[fd00:31::2]:8285");
    await type(peerInput(1, "allowed_ips"), " 10.10.0.0/16 ,fd00:10::/64 ");
    await validated();
    expect(saveButton().disabled).toBe(false);

    await click(saveButton());
    const draft = {
      kind: "udp",
      address: ["10.9.0.1/24", "fd00:9::1/64"],
      listen_port: 8285,
      mtu: 1400,
      peer: [
        { endpoint: "172.31.0.2:8285", allowed_ips: ["10.9.0.0/24"] },
        { endpoint: "[fd00:31::2]:8285", allowed_ips: ["10.10.0.0/16", "fd00:10::/64"] },
      ],
    };
    expect(side.api.saveProfile).toHaveBeenCalledWith("site", draft, null);
    expect($("#profile-form")).toBeNull();
    expect(row("site")).not.toBeNull();
    expect(row("site").classList.contains("selected")).toBe(true);
    expect($("#detail .detail-name")!.textContent).toBe("site");
  });

  it("shows a failed save's message as is and stays open", async () => {
    const message = "cannot store site: the keyring is locked; unlock it and try again";
    side.api.saveProfile.mockRejectedValueOnce(message);
    await mount();
    await click($("#new-profile"));
    await chooseKind("hostgw");
    expect(top("interface")).toBeNull();
    await type(input("#form-name"), "site");
    await validated();
    await click(saveButton());
    expect($("#form-error")!.textContent).toContain(message);
    expect($("#profile-form")).not.toBeNull();
    // Typing clears it.
    await type(input("#form-name"), "site2");
    expect($("#form-error")).toBeNull();
  });

  it("refuses the name of another stored profile", async () => {
    await mount();
    await click($("#new-profile"));
    await chooseKind("udp");
    await type(input("#form-name"), "lab");
    await validated();
    expect(fieldError("#profile-form", "name")!.textContent).toContain("a profile called `lab` exists");
    expect(saveButton().disabled).toBe(true);
  });

  it("puts errors no input matches in the general box", async () => {
    side.api.validateProfile.mockResolvedValue({ field: "interface", problem: "the tunnel name `a-very-long-name-indeed` is too long", fix: "set `interface`" });
    await mount();
    await click($("#new-profile"));
    await chooseKind("hostgw");
    await validated();
    expect($("#form-error")!.textContent).toContain("is too long");
    expect($("#form-error")!.textContent).toContain("interface");
  });

  it("closes on Cancel", async () => {
    await mount();
    await click($("#new-profile"));
    await click($("#form-cancel"));
    expect($("#profile-form")).toBeNull();
    expect($("#detail")).not.toBeNull();
    expect(side.api.saveProfile).not.toHaveBeenCalled();
  });
});

describe("editing", () => {
  it("fills the form from load_profile and saves under the original name", async () => {
    await mount();
    await click(row("wg0").querySelector(".edit"));
    expect(side.api.loadProfile).toHaveBeenCalledWith("wg0");
    expect($("#profile-form")!.dataset.mode).toBe("edit");
    expect(row("wg0").classList.contains("selected")).toBe(true);
    expect(input("#form-name").value).toBe("wg0");
    expect($<HTMLSelectElement>("#form-kind")!.value).toBe("wireguard");
    expect(top("address").value).toBe("10.8.0.1/24");
    expect(top("listen_port").value).toBe("51820");
    expect(top("dns").value).toBe("10.8.0.1, corp.example");
    expect(top("table").value).toBe("off");
    expect(peerInput(0, "public_key").value).toBe(PEER_KEY);
    expect(peerInput(0, "allowed_ips").value).toBe("10.8.0.2/32, 192.168.50.0/24");
    expect(peerInput(0, "persistent_keepalive").value).toBe("25");
    expect(peerInput(0, "preshared_key").value).toBe("");
    expect($("#form-public-key")!.textContent).toBe(STORED_PUBLIC_KEY);
    expect($("#profile-form .keys")!.textContent).toContain("stored private key stays");

    await validated();
    expect(lastValidation()).toEqual(["wg0", EDITABLES.wg0.draft, "wg0"]);
    expect(saveButton().disabled).toBe(false);
    await type(input("#form-name"), "office");
    await type(top("mtu"), "1380");
    await validated();
    await click(saveButton());
    expect(side.api.saveProfile).toHaveBeenCalledWith("office", { ...EDITABLES.wg0.draft, mtu: 1380 }, "wg0");
    expect($("#profile-form")).toBeNull();
    expect(row("office").classList.contains("selected")).toBe(true);
    expect($('li.profile[data-name="wg0"]')).toBeNull();
  });

  it("turns the kill switch on with its checkbox, and the draft says so", async () => {
    await mount();
    await click(row("wg0").querySelector(".edit"));
    const killSwitch = top("kill_switch");
    expect(killSwitch.type).toBe("checkbox");
    expect(killSwitch.checked).toBe(false);
    await act(async () => {
      killSwitch.checked = true;
      killSwitch.dispatchEvent(new Event("change", { bubbles: true }));
    });
    await validated();
    expect(top("kill_switch").checked).toBe(true);
    expect(lastValidation()).toEqual(["wg0", { ...EDITABLES.wg0.draft, kill_switch: true }, "wg0"]);
  });

  it("replaces the stored key only with a generated pair", async () => {
    await mount();
    await click(row("wg0").querySelector(".edit"));
    await click($("#generate-keys"));
    expect($("#form-public-key")!.textContent).toBe(KEYPAIR.public_key);
    expect($("#profile-form .keys")!.textContent).toContain("replaces the stored private key");
    await validated();
    await click(saveButton());
    expect(side.api.saveProfile).toHaveBeenCalledWith("wg0", { ...EDITABLES.wg0.draft, private_key: KEYPAIR.private_key }, "wg0");
  });

  it("says when the tunnel is up that saving changes it without reconnecting", async () => {
    await mount();
    await side.snapshot(snapshot([tunnel({ name: "lab" })]));
    await click(row("lab").querySelector(".edit"));
    expect($("#profile-form")!.textContent).toContain("saving changes it without reconnecting");
    expect($(".unencrypted-warning")).not.toBeNull();
  });

  it("shows what saving did to the running tunnel, or why it could not change it live", async () => {
    await mount();
    await side.snapshot(snapshot([tunnel({ name: "lab" })]));
    const applied = "Saved and applied without reconnecting: MTU 1420 -> 1380.";
    side.api.saveProfile.mockResolvedValueOnce({ summary: profile("lab"), live: { applied: true, message: applied } });
    await click(row("lab").querySelector(".edit"));
    await validated();
    await click(saveButton());
    expect($("#info")!.textContent).toContain(applied);
    expect($("#info")!.getAttribute("role")).toBe("status");
    expect($("#error")).toBeNull();
    await click($("#info .dismiss"));
    expect($("#info")).toBeNull();

    const refused = "Saved, but lab could not take it while it runs: listen_port: ...";
    side.api.saveProfile.mockResolvedValueOnce({ summary: profile("lab"), live: { applied: false, message: refused } });
    await click(row("lab").querySelector(".edit"));
    await validated();
    await click(saveButton());
    expect($("#error")!.textContent).toContain(refused);
    expect($("#info")).toBeNull();
  });

  it("shows why a profile cannot be opened", async () => {
    side.api.loadProfile.mockRejectedValueOnce("lab: the keyring is locked");
    await mount();
    await click(row("lab").querySelector(".edit"));
    expect($("#profile-form")).toBeNull();
    expect($("#error .error-message")!.textContent).toBe("lab: the keyring is locked");
  });

  it("closes an untouched form when another profile is selected, and keeps one with changes", async () => {
    await mount();
    await click(row("lab").querySelector(".edit"));
    await click(row("flat"));
    expect($("#profile-form")).toBeNull();
    await click(row("lab").querySelector(".edit"));
    await type(top("mtu"), "1400");
    await click(row("flat"));
    expect($("#profile-form")).not.toBeNull();
    expect(input("#field-mtu").value).toBe("1400");
  });
});

describe("duplicating", () => {
  it("opens the profile as a new one called name-copy, which needs its own keys", async () => {
    await mount();
    await click(row("wg0").querySelector(".duplicate"));
    expect(side.api.loadProfile).toHaveBeenCalledWith("wg0");
    expect($("#profile-form")!.dataset.mode).toBe("duplicate");
    expect(input("#form-name").value).toBe("wg0-copy");
    expect(top("address").value).toBe("10.8.0.1/24");
    expect($("#form-public-key")).toBeNull();
    await validated();
    expect(lastValidation()).toEqual(["wg0-copy", EDITABLES.wg0.draft, null]);
    expect($("#form-error")!.textContent).toContain("private_key");
    expect(saveButton().disabled).toBe(true);

    await click($("#generate-keys"));
    await validated();
    await click(saveButton());
    expect(side.api.saveProfile).toHaveBeenCalledWith("wg0-copy", { ...EDITABLES.wg0.draft, private_key: KEYPAIR.private_key }, null);
    expect(row("wg0")).not.toBeNull();
    expect(row("wg0-copy").classList.contains("selected")).toBe(true);
  });

  it("of an unencrypted profile saves as it is", async () => {
    await mount();
    await click(row("lab").querySelector(".duplicate"));
    await validated();
    expect($("#form-error")).toBeNull();
    await click(saveButton());
    expect(side.api.saveProfile).toHaveBeenCalledWith("lab-copy", EDITABLES.lab.draft, null);
  });
});
