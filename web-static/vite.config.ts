// Vite builds the SPA into dist/, which capstan-core embeds at compile time and serves at `/`.
// In development the dev server proxies /api to a core running on its default port.
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8080",
    },
  },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
  },
});
