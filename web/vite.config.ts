import { defineConfig } from 'vitest/config';
import preact from '@preact/preset-vite';

// The build lands in kloud/webui/dist, which the kloud binary embeds
// (go:embed). emptyOutDir is off: build.sh empties it but keeps the
// placeholder files git tracks, so a clone builds without the assets.
export default defineConfig({
  plugins: [preact()],
  build: {
    outDir: '../kloud/webui/dist',
    emptyOutDir: false,
    target: 'es2022',
    sourcemap: false,
    // scripts/size.mjs reads the manifest for the first-load figure, then removes it.
    manifest: true,
    chunkSizeWarningLimit: 600,
  },
  test: {
    environment: 'happy-dom',
    include: ['src/**/*.test.{ts,tsx}'],
  },
});
