// The profile form's model: the fields of each kind (the README's TOML keys), the form's state as typed, the
// draft the Rust side checks and saves (the profile file's schema as JSON), and where its errors show.

import type { Draft } from "./bindings/Draft";
import type { FormDraft } from "./bindings/FormDraft";
import type { FormError } from "./bindings/FormError";
import type { Kind } from "./bindings/Kind";

/** One kind's draft, as the Rust side's schema (culvert-core's `Draft`) has it. */
type DraftOf<K extends Kind> = Extract<Draft, { kind: K }>;
/** A kind's `[[peer]]` table; `never` for an overlay, whose peers come from etcd. */
type PeerOf<K extends Kind> = DraftOf<K> extends { peer?: (infer P)[] } ? P : never;
/** The keys a field of kind `K` may set: its draft's, less those the form handles apart. */
type FieldKey<K extends Kind> = Exclude<keyof DraftOf<K>, "kind" | "peer" | "private_key"> & string;
type PeerKey<K extends Kind> = keyof PeerOf<K> & string;

/**
 * How a field's text becomes its value in the draft: `text` as is (trimmed), `list` comma-separated,
 * `int` a whole number, `table` auto, off or a number, `fwmark` off, a number or 0x-hex, `switch` a checkbox
 * (its text "true" when on; off is left out of the draft, as the files leave it out).
 */
export type FieldType = "text" | "list" | "int" | "table" | "fwmark" | "switch";

export type FieldDef<Key extends string = string> = {
  /** The TOML key, also the input's `name`: checked against the Rust schema. */
  key: Key;
  label: string;
  type: FieldType;
  /** An example, or what leaving the field empty means. */
  placeholder?: string;
  /** A line under the input. */
  hint?: string;
  /** Masked input: a secret. */
  secret?: boolean;
  /** Takes a whole row of the form (lists always do): keys are long. */
  wide?: boolean;
};

export const KINDS: readonly Kind[] = ["wireguard", "udp", "tap", "vxlan", "hostgw", "overlay"];

export const KIND_LABELS: Record<Kind, string> = {
  wireguard: "WireGuard",
  udp: "udp: IP packets over UDP",
  tap: "tap: Ethernet frames over UDP",
  vxlan: "vxlan: kernel VXLAN link",
  hostgw: "hostgw: routes via peers' hosts",
  overlay: "overlay: a flannel network in etcd",
};

const INTERFACE: FieldDef<"interface"> = {
  key: "interface",
  label: "Interface",
  type: "text",
  hint: "Optional: the profile's name by default (at most 15 characters).",
};
const ADDRESS = (example: string, optional = false): FieldDef<"address"> => ({
  key: "address",
  label: "Address",
  type: "list",
  placeholder: example,
  hint: optional ? "Optional; comma-separated." : "Addresses on the tunnel device, comma-separated.",
});
const LISTEN_PORT = (placeholder: string): FieldDef<"listen_port"> => ({ key: "listen_port", label: "Listen port", type: "int", placeholder });
const MTU = (placeholder: string): FieldDef<"mtu"> => ({ key: "mtu", label: "MTU", type: "int", placeholder });
const FORWARD: FieldDef<"forward"> = {
  key: "forward",
  label: "Forward",
  type: "list",
  placeholder: "cvpods",
  hint: "Interfaces this host's pods sit behind: forwarding is on while the tunnel is up.",
};
const ALLOWED_IPS: FieldDef<"allowed_ips"> = {
  key: "allowed_ips",
  label: "Allowed IPs",
  type: "list",
  placeholder: "10.9.0.0/24",
  hint: "Routed through the tunnel to this peer; comma-separated.",
};
const UDP_ENDPOINT: FieldDef<"endpoint"> = { key: "endpoint", label: "Endpoint", type: "text", placeholder: "172.31.0.2:8285" };
const SUBNETS: FieldDef<"subnets"> = { key: "subnets", label: "Subnets", type: "list", placeholder: "10.244.2.0/24", hint: "Comma-separated." };

/** Each kind's fields, in the order the form shows them; `interface` goes with the name. */
export const FIELDS: Readonly<Record<Kind, readonly FieldDef[]>> = {
  wireguard: [
    INTERFACE,
    ADDRESS("10.8.0.1/24"),
    LISTEN_PORT("a free port"),
    MTU("1420"),
    { key: "dns", label: "DNS", type: "list", placeholder: "10.8.0.1, corp.example", hint: "Servers and search domains while the tunnel is up; comma-separated." },
    { key: "table", label: "Table", type: "table", placeholder: "auto", hint: "auto, off (no routes), or a table number." },
    { key: "fwmark", label: "FwMark", type: "fwmark", placeholder: "off", hint: "off, or a mark such as 51820 or 0xca6c." },
    {
      key: "kill_switch",
      label: "Kill switch",
      type: "switch",
      hint: "Nothing leaves this computer around the tunnel while it is meant to be up, even when it fails. Full tunnels only (a peer with 0.0.0.0/0).",
    },
    { key: "allow_lan", label: "Allow LAN", type: "switch", hint: "With the kill switch: the local network stays reachable." },
  ],
  udp: [INTERFACE, ADDRESS("10.9.0.1/24"), LISTEN_PORT("8285"), MTU("1420")],
  tap: [
    INTERFACE,
    ADDRESS("10.9.0.1/24", true),
    LISTEN_PORT("8285"),
    MTU("1420"),
    { key: "mac", label: "MAC", type: "text", placeholder: "random", hint: "Optional, such as 02:00:00:00:0a:01." },
  ],
  vxlan: [
    INTERFACE,
    { key: "vni", label: "VNI", type: "int", placeholder: "42", hint: "1 to 16777215." },
    { key: "local", label: "Local", type: "text", placeholder: "172.31.0.1", hint: "This host's underlay address." },
    { key: "underlay", label: "Underlay", type: "text", placeholder: "eth0", hint: "Optional: the device that holds the local address." },
    { key: "port", label: "Port", type: "int", placeholder: "4789", hint: "Optional: the IANA port by default (flannel uses 8472)." },
    { key: "mac", label: "MAC", type: "text", placeholder: "derived", hint: "Optional: derived from the VNI and the local address." },
    ADDRESS("10.244.1.0/32", true),
    MTU("the underlay's minus 50"),
    { key: "bridge", label: "Bridge", type: "text", placeholder: "br0", hint: "Optional: attach the link to a bridge." },
    FORWARD,
  ],
  hostgw: [FORWARD],
  overlay: [
    { key: "etcd", label: "etcd", type: "list", placeholder: "http://10.99.0.10:2379", hint: "etcd's client URLs, comma-separated." },
    { key: "etcd_ca", label: "etcd CA", type: "text", placeholder: "~/etcd/ca.pem", hint: "For https:// URLs: the CA file that signed etcd's certificate; read by this app." },
    { key: "etcd_cert", label: "Client cert", type: "text", placeholder: "optional", hint: "Optional: this host's certificate, when etcd asks for one." },
    { key: "etcd_key", label: "Client key", type: "text", placeholder: "optional", hint: "Optional: the certificate's key file." },
    { key: "etcd_username", label: "etcd user", type: "text", placeholder: "optional", hint: "Optional: when etcd's auth is on." },
    { key: "etcd_password", label: "etcd password", type: "text", placeholder: "kept in your keyring", secret: true, hint: "Left empty when editing: the stored one is kept." },
    { key: "prefix", label: "Prefix", type: "text", placeholder: "/coreos.com/network", hint: "Optional: flannel's by default." },
    { key: "public_ip", label: "Public IP", type: "text", placeholder: "the default route's source", hint: "Optional: this host's address the others reach." },
    INTERFACE,
    { key: "ip_masq", label: "IP masquerade", type: "switch", hint: "NAT for pod traffic leaving the network, as flannel's --ip-masq." },
    { key: "subnet_file", label: "Subnet file", type: "text", placeholder: "/run/flannel/subnet.env", hint: "Optional: in /run/flannel/ or /run/culvert/." },
    { key: "lease_ttl", label: "Lease TTL", type: "text", placeholder: "24h", hint: "Optional, as 24h, 90m or 30s." },
    { key: "lease_renew_margin", label: "Renew margin", type: "text", placeholder: "1h", hint: "Optional: how long before its end the lease is renewed." },
  ],
} satisfies { readonly [K in Kind]: readonly FieldDef<FieldKey<K>>[] };

/** The keys of each kind's `[[peer]]` tables. */
export const PEER_FIELDS: Readonly<Record<Kind, readonly FieldDef[]>> = {
  wireguard: [
    { key: "public_key", label: "Public key", type: "text", placeholder: "the peer's public key", wide: true },
    { key: "allowed_ips", label: "Allowed IPs", type: "list", placeholder: "10.8.0.2/32, 192.168.50.0/24", hint: "Routed through the tunnel to this peer; 0.0.0.0/0 for a full tunnel." },
    { key: "endpoint", label: "Endpoint", type: "text", placeholder: "vpn.example.com:51820", hint: "Optional: host names are resolved at connect." },
    { key: "persistent_keepalive", label: "Keepalive", type: "int", placeholder: "off", hint: "Optional, in seconds, such as 25." },
    { key: "preshared_key", label: "Preshared key", type: "text", placeholder: "optional", secret: true, wide: true },
  ],
  udp: [UDP_ENDPOINT, ALLOWED_IPS],
  tap: [UDP_ENDPOINT, { ...ALLOWED_IPS, hint: "Optional; comma-separated." }],
  vxlan: [
    { key: "vtep", label: "VTEP", type: "text", placeholder: "172.31.0.2", hint: "The peer's underlay address." },
    { key: "gateway", label: "Gateway", type: "text", placeholder: "10.244.2.0", hint: "Its overlay address, the next hop for its subnets." },
    SUBNETS,
    { key: "mac", label: "MAC", type: "text", placeholder: "derived", hint: "Optional: derived from the VNI and the VTEP." },
  ],
  hostgw: [
    { key: "via", label: "Via", type: "text", placeholder: "172.31.0.2", hint: "The peer's host address, on this host's segment." },
    SUBNETS,
  ],
  overlay: [],
} satisfies { readonly [K in Kind]: readonly FieldDef<PeerKey<K>>[] };

/** What a new form of each kind starts with, besides one empty peer. */
export const DEFAULTS: Record<Kind, Readonly<Record<string, string>>> = {
  wireguard: {},
  udp: { listen_port: "8285" },
  tap: { listen_port: "8285" },
  vxlan: {},
  hostgw: {},
  overlay: {},
};

export function hasField(kind: Kind, key: string): boolean {
  return FIELDS[kind].some((f) => f.key === key);
}

/** Whether the kind's profile lists peers (an overlay's come from etcd). */
export function hasPeers(kind: Kind): boolean {
  return PEER_FIELDS[kind].length > 0;
}

export function hasPeerField(kind: Kind, key: string): boolean {
  return PEER_FIELDS[kind].some((f) => f.key === key);
}

export type PeerForm = {
  /** Stable across edits and removals, for rendering; not part of the profile. */
  id: number;
  values: Record<string, string>;
};

/** The form as typed: every field is text until it becomes the draft. */
export type FormState = {
  kind: Kind;
  name: string;
  /** Top-level fields by TOML key. Values of other kinds' fields are kept (switching back restores them), but
   * only the current kind's go into the draft. */
  values: Record<string, string>;
  peers: PeerForm[];
  /** A newly generated private key (WireGuard), or null: none yet, or keep the stored one when editing. */
  privateKey: string | null;
  /** The public key shown: the generated pair's, or the stored profile's. */
  publicKey: string | null;
};

let nextPeerId = 1;

export function newPeer(values: Record<string, string> = {}): PeerForm {
  return { id: nextPeerId++, values };
}

export function defaultForm(kind: Kind = "wireguard", name = ""): FormState {
  return { kind, name, values: { ...DEFAULTS[kind] }, peers: [newPeer()], privateKey: null, publicKey: null };
}

/** The form with another kind: what is typed stays, empty fields take the new kind's defaults. */
export function changeKind(state: FormState, kind: Kind): FormState {
  const values = { ...state.values };
  for (const [key, value] of Object.entries(DEFAULTS[kind])) {
    if (!values[key]?.trim()) values[key] = value;
  }
  return { ...state, kind, values, peers: state.peers.length ? state.peers : [newPeer()] };
}

function fieldText(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return value.map(fieldText).join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function textValues(table: Record<string, unknown>, skip: readonly string[]): Record<string, string> {
  const values: Record<string, string> = {};
  for (const [key, value] of Object.entries(table)) {
    if (!skip.includes(key)) values[key] = fieldText(value);
  }
  return values;
}

/**
 * The form of a stored profile's draft (from load_profile): lists joined with ", ", numbers as text. The draft
 * has no secrets, so `privateKey` is null (the stored one is kept); `publicKey` is the stored profile's.
 */
export function formFromDraft(name: string, draft: Draft, publicKey: string | null): FormState {
  const peers: readonly Record<string, unknown>[] = ("peer" in draft ? draft.peer : undefined) ?? [];
  return {
    kind: draft.kind,
    name,
    values: textValues(draft, ["kind", "peer", "private_key"]),
    peers: peers.map((p) => newPeer(textValues(p, []))),
    privateKey: null,
    publicKey,
  };
}

/** Comma-separated text as a list: items trimmed, empty ones dropped (newlines separate too). */
export function splitList(text: string): string[] {
  return text
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

const INTEGER = /^[+-]?\d+$/;

type Parsed = { value?: unknown; error?: FormError };

/** A field's text as its draft value; no value when it is empty; an error when it cannot be one. */
export function parseField(field: FieldDef, text: string, path: string): Parsed {
  const t = (text ?? "").trim();
  switch (field.type) {
    case "list": {
      const items = splitList(t);
      return items.length ? { value: items } : {};
    }
    case "int": {
      if (t === "") return {};
      if (INTEGER.test(t)) return { value: Number(t) };
      const example = field.placeholder && INTEGER.test(field.placeholder) ? `, such as ${field.placeholder}` : "";
      return { error: { field: path, problem: `\`${t}\` is not a number`, fix: `write a whole number${example}` } };
    }
    case "table": {
      if (t === "") return {};
      const lower = t.toLowerCase();
      if (lower === "auto" || lower === "off") return { value: lower };
      // Anything else goes as typed, for the Rust side to say what is wrong with it.
      return { value: INTEGER.test(t) ? Number(t) : t };
    }
    case "fwmark": {
      if (t === "") return {};
      return { value: /^\d+$/.test(t) ? Number(t) : t };
    }
    case "switch":
      return t === "true" ? { value: true } : {};
    case "text":
      return t === "" ? {} : { value: t };
  }
}

/**
 * The draft of the form: the kind's keys only, empty fields left out, lists split and trimmed, numbers parsed;
 * `private_key` when a pair was generated; `peer` as an array of tables (left out when there is none). Text
 * that cannot be a number is not guessed at: it is an error of its field, and the draft leaves it out.
 */
export function buildDraft(state: FormState): { draft: FormDraft; errors: FormError[] } {
  const errors: FormError[] = [];
  const draft: FormDraft = { kind: state.kind };
  if (state.kind === "wireguard" && state.privateKey) draft.private_key = state.privateKey;
  for (const field of FIELDS[state.kind]) {
    const parsed = parseField(field, state.values[field.key] ?? "", field.key);
    if (parsed.error) errors.push(parsed.error);
    else if (parsed.value !== undefined) draft[field.key] = parsed.value;
  }
  const peers = state.peers.map((p, i) => {
    const table: FormDraft = {};
    for (const field of PEER_FIELDS[state.kind]) {
      const parsed = parseField(field, p.values[field.key] ?? "", `peer[${i}].${field.key}`);
      if (parsed.error) errors.push(parsed.error);
      else if (parsed.value !== undefined) table[field.key] = parsed.value;
    }
    return table;
  });
  if (peers.length && hasPeers(state.kind)) draft.peer = peers;
  return { draft, errors };
}

/** The profile's name as sent: surrounding spaces are never meant. */
export function draftName(state: FormState): string {
  return state.name.trim();
}

/** A name already used by another stored profile, as an error of the name field; saving would fail. */
export function nameTaken(name: string, original: string | null, stored: readonly string[]): FormError | null {
  if (name === "" || name === original || !stored.includes(name)) return null;
  return {
    field: "name",
    problem: `a profile called \`${name}\` exists`,
    fix: original === null ? `choose another name, or edit ${name} instead` : "choose another name",
  };
}

/**
 * Where an error shows, by its field: the key of an input's error slot (`name`, `kind`, `private_key`, a
 * field's key such as `address` for `address[1]`, `peer` for the peer list, `peer[0]` for a whole peer,
 * `peer[0].allowed_ips` for `peer[0].allowed_ips[2]`), or null for the general error box: no field, or none
 * of the form's inputs matches it.
 */
export function errorSlot(field: string | null, kind: Kind, peerCount: number): string | null {
  if (field === null) return null;
  const m = /^([a-z_]+)(?:\[(\d+)\])?(?:\.([a-z_]+)(?:\[(\d+)\])?)?$/.exec(field.trim());
  if (!m) return null;
  const [, key, index, sub] = m;
  if (key === "peer") {
    if (index === undefined) return sub === undefined ? "peer" : null;
    const i = Number(index);
    if (i >= peerCount) return null;
    if (sub === undefined) return `peer[${i}]`;
    return hasPeerField(kind, sub) ? `peer[${i}].${sub}` : null;
  }
  if (sub !== undefined) return null;
  if (key === "name" || key === "kind") return index === undefined ? key : null;
  if (key === "private_key") return kind === "wireguard" && index === undefined ? key : null;
  if (!hasField(kind, key)) return null;
  // Only list fields have items.
  const def = FIELDS[kind].find((f) => f.key === key)!;
  return index === undefined || def.type === "list" ? key : null;
}

export type PlacedErrors = {
  /** Errors by slot (see errorSlot). */
  bySlot: Record<string, FormError[]>;
  /** Errors with no input of their own: the general error box. */
  general: FormError[];
};

export function placeErrors(errors: readonly FormError[], kind: Kind, peerCount: number): PlacedErrors {
  const placed: PlacedErrors = { bySlot: {}, general: [] };
  for (const e of errors) {
    const slot = errorSlot(e.field, kind, peerCount);
    if (slot === null) placed.general.push(e);
    else (placed.bySlot[slot] ??= []).push(e);
  }
  return placed;
}

/** Whether two forms hold the same profile (peer ids aside). */
export function sameForm(a: FormState, b: FormState): boolean {
  const plain = (s: FormState) => JSON.stringify([s.name, buildDraft(s)]);
  return plain(a) === plain(b);
}
