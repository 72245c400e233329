/** Bundles the browser SDK and the join page script into dist/public with esbuild. */
import { build, type BuildOptions } from 'esbuild';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const started = performance.now();
const common: BuildOptions = {
  bundle: true,
  platform: 'browser',
  target: ['chrome110', 'firefox115', 'safari16'],
  sourcemap: true,
  minify: true,
  logLevel: 'warning',
};
await build({
  ...common,
  entryPoints: [path.join(root, 'src/sdk/index.ts')],
  outfile: path.join(root, 'dist/public/vigie-sdk.js'),
  format: 'iife',
  globalName: 'Vigie',
});
await build({
  ...common,
  entryPoints: [path.join(root, 'src/sdk/joinPage.ts')],
  outfile: path.join(root, 'dist/public/join-page.js'),
  format: 'iife',
});
console.log(`browser SDK built in ${Math.round(performance.now() - started)} ms -> dist/public`);
