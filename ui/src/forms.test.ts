import { describe, expect, it } from "vitest";
import type { Draft } from "./bindings/Draft";
import type { Kind } from "./bindings/Kind";
import {
  buildDraft,
  changeKind,
  defaultForm,
  errorSlot,
  FIELDS,
  formFromDraft,
  KINDS,
  nameTaken,
  newPeer,
  parseField,
  PEER_FIELDS,
  placeErrors,
  sameForm,
  splitList,
  type FormState,
} from "./forms";

function form(kind: Kind, values: Record<string, string>, peers: Record<string, string>[] = [], extra: Partial<FormState> = {}): FormState {
  return { kind, name: "lab", values, peers: peers.map((p) => newPeer(p)), privateKey: null, publicKey: null, ...extra };
}

describe("the fields of each kind", () => {
  it("are the README's TOML keys, interface everywhere but hostgw", () => {
    const keys = (k: Kind) => FIELDS[k].map((f) => f.key).sort();
    expect(keys("wireguard")).toEqual(["address", "allow_lan", "dns", "fwmark", "interface", "kill_switch", "listen_port", "mtu", "table"]);
    expect(keys("udp")).toEqual(["address", "interface", "listen_port", "mtu"]);
    expect(keys("tap")).toEqual(["address", "interface", "listen_port", "mac", "mtu"]);
    expect(keys("vxlan")).toEqual(["address", "bridge", "forward", "interface", "local", "mac", "mtu", "port", "underlay", "vni"]);
    expect(keys("hostgw")).toEqual(["forward"]);
    const peerKeys = (k: Kind) => PEER_FIELDS[k].map((f) => f.key).sort();
    expect(peerKeys("wireguard")).toEqual(["allowed_ips", "endpoint", "persistent_keepalive", "preshared_key", "public_key"]);
    expect(peerKeys("udp")).toEqual(["allowed_ips", "endpoint"]);
    expect(peerKeys("tap")).toEqual(["allowed_ips", "endpoint"]);
    expect(peerKeys("vxlan")).toEqual(["gateway", "mac", "subnets", "vtep"]);
    expect(peerKeys("hostgw")).toEqual(["subnets", "via"]);
  });
});

describe("the default form", () => {
  it("is WireGuard, without a key, with one empty peer", () => {
    const f = defaultForm();
    expect(f.kind).toBe("wireguard");
    expect(f.name).toBe("");
    expect(f.privateKey).toBeNull();
    expect(f.publicKey).toBeNull();
    expect(f.peers.length).toBe(1);
    expect(buildDraft(f)).toEqual({ draft: { kind: "wireguard", peer: [{}] }, errors: [] });
  });

  it("of each kind holds its defaults only", () => {
    const drafts = Object.fromEntries(KINDS.map((k) => [k, buildDraft(defaultForm(k)).draft]));
    expect(drafts).toEqual({
      wireguard: { kind: "wireguard", peer: [{}] },
      udp: { kind: "udp", listen_port: 8285, peer: [{}] },
      tap: { kind: "tap", listen_port: 8285, peer: [{}] },
      vxlan: { kind: "vxlan", peer: [{}] },
      hostgw: { kind: "hostgw", peer: [{}] },
      // An overlay's peers come from etcd: its draft has none.
      overlay: { kind: "overlay" },
    });
  });

  it("gives each peer its own id", () => {
    const a = defaultForm();
    const b = defaultForm();
    expect(a.peers[0].id).not.toBe(b.peers[0].id);
  });
});

describe("changing the kind", () => {
  it("keeps what was typed and fills the new kind's empty defaults", () => {
    const f = form("wireguard", { address: "10.8.0.1/24", listen_port: "" }, [{ endpoint: "172.31.0.2:8285" }]);
    const udp = changeKind(f, "udp");
    expect(udp.kind).toBe("udp");
    expect(udp.values).toEqual({ address: "10.8.0.1/24", listen_port: "8285" });
    expect(udp.peers).toBe(f.peers);
    expect(changeKind({ ...f, values: { listen_port: "51820" } }, "udp").values.listen_port).toBe("51820");
    expect(changeKind({ ...f, peers: [] }, "hostgw").peers.length).toBe(1);
  });
});

describe("lists", () => {
  it("split on commas (and newlines), trimmed, empty items dropped", () => {
    expect(splitList(" 10.9.0.1/24 , ,fd00:9::1/64,")).toEqual(["10.9.0.1/24", "fd00:9::1/64"]);
    expect(splitList("a\nb, c")).toEqual(["a", "b", "c"]);
    expect(splitList("  ")).toEqual([]);
  });
});

describe("the draft", () => {
  it("splits lists, parses numbers and leaves empty fields out", () => {
    const f = form(
      "udp",
      { address: " 10.9.0.1/24, fd00:9::1/64 ", listen_port: " 8285 ", mtu: "", interface: "  " },
      [{ endpoint: " 172.31.0.2:8285 ", allowed_ips: "10.9.0.0/24,, 10.10.0.0/16" }, { endpoint: "[fd00:31::2]:8285", allowed_ips: "" }],
    );
    expect(buildDraft(f)).toEqual({
      draft: {
        kind: "udp",
        address: ["10.9.0.1/24", "fd00:9::1/64"],
        listen_port: 8285,
        peer: [
          { endpoint: "172.31.0.2:8285", allowed_ips: ["10.9.0.0/24", "10.10.0.0/16"] },
          { endpoint: "[fd00:31::2]:8285" },
        ],
      },
      errors: [],
    });
  });

  it("holds the kind's keys only", () => {
    const f = form(
      "hostgw",
      { forward: "cvpods", address: "10.9.0.1/24", interface: "cv0", dns: "1.1.1.1", vni: "42" },
      [{ via: "172.31.0.2", subnets: "10.244.2.0/24", endpoint: "172.31.0.2:8285", public_key: "x" }],
      { privateKey: "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=" },
    );
    expect(buildDraft(f).draft).toEqual({
      kind: "hostgw",
      forward: ["cvpods"],
      peer: [{ via: "172.31.0.2", subnets: ["10.244.2.0/24"] }],
    });
  });

  it("of a whole WireGuard profile", () => {
    const f = form(
      "wireguard",
      { address: "10.8.0.1/24", listen_port: "51820", mtu: "1420", dns: "10.8.0.1, corp.example", table: "51820", fwmark: "0xca6c" },
      [
        {
          public_key: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
          preshared_key: "",
          allowed_ips: "10.8.0.2/32, 192.168.50.0/24",
          endpoint: "vpn.example.com:51820",
          persistent_keepalive: "25",
        },
      ],
      { privateKey: "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=" },
    );
    expect(buildDraft(f)).toEqual({
      draft: {
        kind: "wireguard",
        private_key: "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=",
        address: ["10.8.0.1/24"],
        listen_port: 51820,
        mtu: 1420,
        dns: ["10.8.0.1", "corp.example"],
        table: 51820,
        fwmark: "0xca6c",
        peer: [
          {
            public_key: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
            allowed_ips: ["10.8.0.2/32", "192.168.50.0/24"],
            endpoint: "vpn.example.com:51820",
            persistent_keepalive: 25,
          },
        ],
      },
      errors: [],
    });
  });

  it("has no private key until a pair is generated (editing keeps the stored one)", () => {
    expect(buildDraft(form("wireguard", { address: "10.8.0.1/24" })).draft).toEqual({ kind: "wireguard", address: ["10.8.0.1/24"] });
  });

  it("writes table as auto, off or a number, and passes anything else on to be checked", () => {
    const table = (t: string) => buildDraft(form("wireguard", { table: t })).draft.table;
    expect(table("")).toBeUndefined();
    expect(table("auto")).toBe("auto");
    expect(table(" Off ")).toBe("off");
    expect(table("51820")).toBe(51820);
    expect(table("main")).toBe("main");
  });

  it("writes fwmark as a number, or as typed for off and hex", () => {
    const mark = (t: string) => buildDraft(form("wireguard", { fwmark: t })).draft.fwmark;
    expect(mark("51820")).toBe(51820);
    expect(mark("off")).toBe("off");
    expect(mark("0xca6c")).toBe("0xca6c");
    expect(mark("")).toBeUndefined();
  });

  it("writes a switch that is on as true and leaves one that is off out, as the files do", () => {
    const draft = buildDraft(form("wireguard", { kill_switch: "true", allow_lan: "" })).draft;
    expect(draft.kill_switch).toBe(true);
    expect("allow_lan" in draft).toBe(false);
    const back = formFromDraft("lab", { kind: "wireguard", address: [], kill_switch: true }, null);
    expect(back.values.kill_switch).toBe("true");
    expect(buildDraft(form("overlay", { ip_masq: "true" })).draft.ip_masq).toBe(true);
  });

  it("says which number field holds something that is not a number", () => {
    const f = form("wireguard", { listen_port: "51820x", mtu: "-1" }, [{ public_key: "k" }, { persistent_keepalive: "often" }]);
    const { draft, errors } = buildDraft(f);
    expect(errors).toEqual([
      { field: "listen_port", problem: "`51820x` is not a number", fix: "write a whole number" },
      { field: "peer[1].persistent_keepalive", problem: "`often` is not a number", fix: "write a whole number" },
    ]);
    // What can be a number goes on; the Rust side says what is out of range.
    expect(draft.mtu).toBe(-1);
    expect(draft.listen_port).toBeUndefined();
    expect(parseField(FIELDS.vxlan.find((d) => d.key === "vni")!, "x", "vni").error!.fix).toBe("write a whole number, such as 42");
  });

  it("leaves out peer when there is none", () => {
    expect(buildDraft(form("udp", { listen_port: "8285" }, [])).draft).toEqual({ kind: "udp", listen_port: 8285 });
  });
});

describe("a stored profile's draft", () => {
  const stored: Draft = {
    kind: "wireguard",
    address: ["10.8.0.1/24", "fd00:8::1/64"],
    listen_port: 51820,
    dns: ["10.8.0.1", "corp.example"],
    table: "off",
    fwmark: 51820,
    peer: [
      { public_key: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", allowed_ips: ["10.8.0.2/32"], endpoint: "198.51.100.7:51820", persistent_keepalive: 25 },
      { public_key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" },
    ],
  };

  it("fills the form: lists joined, numbers as text, the stored public key shown, no private key", () => {
    const f = formFromDraft("office", stored, "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=");
    expect(f.kind).toBe("wireguard");
    expect(f.name).toBe("office");
    expect(f.values).toEqual({
      address: "10.8.0.1/24, fd00:8::1/64",
      listen_port: "51820",
      dns: "10.8.0.1, corp.example",
      table: "off",
      fwmark: "51820",
    });
    expect(f.peers.map((p) => p.values)).toEqual([
      { public_key: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", allowed_ips: "10.8.0.2/32", endpoint: "198.51.100.7:51820", persistent_keepalive: "25" },
      { public_key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" },
    ]);
    expect(f.privateKey).toBeNull();
    expect(f.publicKey).toBe("HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=");
  });

  it("comes back unchanged from its form", () => {
    expect(buildDraft(formFromDraft("office", stored, null))).toEqual({ draft: stored, errors: [] });
    const flat: Draft = {
      kind: "vxlan",
      vni: 42,
      local: "172.31.0.1",
      address: ["10.244.1.0/32"],
      forward: ["cvpods"],
      peer: [{ vtep: "172.31.0.2", gateway: "10.244.2.0", subnets: ["10.244.2.0/24"] }],
    };
    expect(buildDraft(formFromDraft("flat", flat, null)).draft).toEqual(flat);
  });
});

describe("where errors show", () => {
  it("maps fields to their inputs", () => {
    const slot = (field: string | null, kind: Kind = "wireguard", peers = 2) => errorSlot(field, kind, peers);
    expect(slot("address")).toBe("address");
    expect(slot("address[1]")).toBe("address");
    expect(slot("listen_port")).toBe("listen_port");
    expect(slot("name")).toBe("name");
    expect(slot("kind")).toBe("kind");
    expect(slot("interface")).toBe("interface");
    expect(slot("private_key")).toBe("private_key");
    expect(slot("peer")).toBe("peer");
    expect(slot("peer[1]")).toBe("peer[1]");
    expect(slot("peer[0].endpoint")).toBe("peer[0].endpoint");
    expect(slot("peer[0].allowed_ips[2]")).toBe("peer[0].allowed_ips");
    expect(slot("vni", "vxlan")).toBe("vni");
    expect(slot("forward[0]", "hostgw")).toBe("forward");
    expect(slot("peer[1].subnets[0]", "hostgw")).toBe("peer[1].subnets");
  });

  it("sends what no input matches to the general box", () => {
    const slot = (field: string | null, kind: Kind = "wireguard", peers = 2) => errorSlot(field, kind, peers);
    expect(slot(null)).toBeNull();
    expect(slot("")).toBeNull();
    expect(slot("interface", "hostgw")).toBeNull();
    expect(slot("private_key", "udp")).toBeNull();
    expect(slot("vni")).toBeNull();
    expect(slot("listen_port[0]")).toBeNull();
    expect(slot("peer[2].endpoint")).toBeNull();
    expect(slot("peer[0].vtep")).toBeNull();
    expect(slot("peer.endpoint")).toBeNull();
    expect(slot("dns[0].x")).toBeNull();
    expect(slot("line 3")).toBeNull();
  });

  it("groups a list of errors", () => {
    const errors = [
      { field: "address[1]", problem: "a", fix: "" },
      { field: null, problem: "b", fix: "" },
      { field: "peer[0].endpoint", problem: "c", fix: "" },
      { field: "vni", problem: "d", fix: "" },
      { field: "address[0]", problem: "e", fix: "" },
    ];
    const placed = placeErrors(errors, "udp", 1);
    expect(placed.general.map((e) => e.problem)).toEqual(["b", "d"]);
    expect(Object.fromEntries(Object.entries(placed.bySlot).map(([k, v]) => [k, v.map((e) => e.problem)]))).toEqual({
      address: ["a", "e"],
      "peer[0].endpoint": ["c"],
    });
  });
});

describe("names", () => {
  it("of other stored profiles are taken", () => {
    expect(nameTaken("lab", null, ["lab", "wg0"])?.field).toBe("name");
    expect(nameTaken("lab", null, ["lab"])?.fix).toBe("choose another name, or edit lab instead");
    expect(nameTaken("lab", "lab", ["lab"])).toBeNull();
    expect(nameTaken("wg0", "lab", ["lab", "wg0"])?.problem).toBe("a profile called `wg0` exists");
    expect(nameTaken("new", null, ["lab"])).toBeNull();
    expect(nameTaken("", null, [""])).toBeNull();
  });
});

describe("changes", () => {
  it("are what would change the saved profile", () => {
    const a = form("udp", { listen_port: "8285" }, [{ endpoint: "172.31.0.2:8285" }]);
    expect(sameForm(a, { ...a, peers: a.peers.map((p) => newPeer(p.values)) })).toBe(true);
    expect(sameForm(a, { ...a, values: { ...a.values, mtu: "" } })).toBe(true);
    expect(sameForm(a, { ...a, values: { listen_port: "8286" } })).toBe(false);
    expect(sameForm(a, { ...a, name: "lab2" })).toBe(false);
    expect(sameForm(a, { ...a, kind: "tap" })).toBe(false);
    expect(sameForm(a, { ...a, values: { listen_port: "x" } })).toBe(false);
  });
});
