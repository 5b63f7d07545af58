import { defineConfig } from "vite";

// `npm run dev` proxies /api to a running `scopedex serve` (SCOPEDEX_API, default 127.0.0.1:8080).
export default defineConfig({
  build: { target: "es2022", outDir: "dist", emptyOutDir: true, assetsInlineLimit: 0 },
  server: { proxy: { "/api": process.env.SCOPEDEX_API ?? "http://127.0.0.1:8080" } },
});
