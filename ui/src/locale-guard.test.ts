import { describe, expect, it } from "vitest";
import { guardLocale } from "./locale-guard";

const nav = (language: string, languages: string[] = [language]) => ({ language, languages }) as unknown as Navigator;

describe("guardLocale", () => {
  it("replaces the POSIX locale WebKitGTK reports under LANG=C", () => {
    const n = nav("C");
    expect(() => new Intl.NumberFormat("C")).toThrow(RangeError);
    expect(guardLocale(n)).toBe(true);
    expect(n.language).toBe("en-US");
    expect(() => new Intl.NumberFormat(n.language)).not.toThrow();
  });

  it("prefers another language the system lists", () => {
    const n = nav("C", ["C", "fr-FR"]);
    guardLocale(n);
    expect(n.language).toBe("fr-FR");
  });

  it("leaves a valid language alone", () => {
    const n = nav("de-DE");
    expect(guardLocale(n)).toBe(false);
    expect(n.language).toBe("de-DE");
  });
});
