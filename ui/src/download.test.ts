import { describe, expect, it } from "vitest";
import { exportFileName } from "./download";

describe("exportFileName", () => {
  it("names WireGuard profiles .conf, as wg-quick files", () => {
    expect(exportFileName("office", "wireguard", "[Interface]\n")).toBe("office.conf");
  });
  it("names the others .toml", () => {
    expect(exportFileName("lab", "udp", 'kind = "udp"\n')).toBe("lab.toml");
    expect(exportFileName("flat", "vxlan", 'kind = "vxlan"\n')).toBe("flat.toml");
  });
  it("goes by the text when the kind is unknown", () => {
    expect(exportFileName("old", null, "# exported\n[interface]\nPrivateKey = x\n")).toBe("old.conf");
    expect(exportFileName("old", null, 'kind = "tap"\n')).toBe("old.toml");
  });
});
