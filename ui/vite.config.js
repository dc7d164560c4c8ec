// @ts-check
/* global URL */
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

// The web UI: built into dist/ui, served by `provenant serve` at `/` (assets under /assets/, hashed).
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/ui', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 1000,
  },
});
