/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// The app runs under a strict CSP (`default-src 'self'; style-src 'self'`): nothing may be inlined into
// index.html, and no asset may become a data: URL.
export default defineConfig({
  base: "./",
  clearScreen: false,
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  server: { port: 5173, strictPort: true },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
  test: {
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
    environment: "node",
  },
});
