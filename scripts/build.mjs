// Builds the addon: node-gyp runs binding.gyp, whose action builds the Go library and whose target
// compiles the C glue against it; then tsc compiles js/ and example/ into lib/.
//   node scripts/build.mjs [--native] [--debug] [extra node-gyp arguments…]
// --native builds only the binary (what `npm install` runs). Node's headers are taken from the
// running node's own prefix when they are there, so no header download is needed.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const args = process.argv.slice(2);
const nativeOnly = args.includes('--native');
const gypArgs = args.filter((a) => a !== '--native');

const prefix = path.resolve(process.execPath, '..', '..');
if (existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) && !gypArgs.some((a) => a.startsWith('--nodedir'))) {
  gypArgs.push(`--nodedir=${prefix}`);
}

const require = createRequire(import.meta.url);
function run(cmd, cmdArgs) {
  const r = spawnSync(cmd, cmdArgs, { stdio: 'inherit' });
  if (r.error) throw r.error;
  if (r.status !== 0) process.exit(r.status ?? 1);
}
function nodeGypBin() {
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    // npm ships its own node-gyp and puts it on PATH for lifecycle scripts.
    return null;
  }
}

const gyp = nodeGypBin();
if (gyp) run(process.execPath, [gyp, 'rebuild', ...gypArgs]);
else run('node-gyp', ['rebuild', ...gypArgs]);

if (!nativeOnly) run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', '.']);
