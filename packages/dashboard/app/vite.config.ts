import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The dashboard is a static single-page app mounted by @cairn/server at /_cairn/. Vite 8 compiles
// JSX itself (oxc), so no React plugin is needed. Workspace packages are bundled from their
// TypeScript sources (the "source" export condition), so the build never depends on a stale dist.
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/_cairn/",
  resolve: { conditions: ["source", "browser", "module", "import", "default"] },
  oxc: { jsx: { runtime: "automatic" } },
  build: {
    outDir: fileURLToPath(new URL("../dist/app/", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: false,
    // ELK (the diagram layout, ~1.5 MB) is its own chunk, loaded only when a diagram is shown.
    chunkSizeWarningLimit: 1600,
  },
  server: {
    // `npm run dev -w @cairn/dashboard` against a server on :8787.
    // The API refuses browser requests from another origin; through this proxy the page's origin is
    // Vite's, so the proxy drops the browser's Origin and Sec-Fetch-Site headers.
    proxy: {
      "/api/v1": {
        target: process.env.CAIRN_URL ?? "http://127.0.0.1:8787",
        changeOrigin: true,
        configure: (proxy) =>
          proxy.on("proxyReq", (req) => {
            req.removeHeader("origin");
            req.removeHeader("sec-fetch-site");
          }),
      },
    },
  },
});
