// Finds and loads the compiled addon. Each thread that requires this module (the main thread and
// every worker) gets its own instance of the addon; the Go state behind it is shared by the process.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Native } from './native.cjs';

/** The package root: this file is compiled to lib/js/load.cjs. */
const packageRoot = path.resolve(__dirname, '..', '..');

/** Where node-gyp puts the addon, release build first. */
export const candidatePaths: readonly string[] = [
  path.join(packageRoot, 'build', 'Release', 'wsbroker.node'),
  path.join(packageRoot, 'build', 'Debug', 'wsbroker.node'),
];

let cached: Native | undefined;

/**
 * Loads the native addon of this thread. Throws an Error naming every path it tried, and what to
 * run, when no binary has been built.
 */
export function loadNative(): Native {
  if (cached !== undefined) return cached;
  for (const p of candidatePaths) {
    if (fs.existsSync(p)) {
      // A binary that exists but fails to load (missing libwsbroker.so, wrong ABI) reports its own
      // error, which says more than ours would.
      cached = require(p) as Native;
      return cached;
    }
  }
  throw new Error(
    `wsbroker: the native addon has not been built. Tried:\n${candidatePaths.map((p) => `  ${p}`).join('\n')}\n` +
      `Run \`npm run build\` (or \`npm run debug\`) in ${packageRoot} to build it.`,
  );
}
