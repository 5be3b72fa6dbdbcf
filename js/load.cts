// Finds and loads the compiled addon. Each thread that requires this module (the main thread and
// every worker) gets its own instance of the addon; the Go state behind it is shared by the process.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Native } from './native.cjs';

/** The package root: this file is compiled to lib/js/load.cjs. */
const packageRoot = path.resolve(__dirname, '..', '..');

/**
 * This machine's platform as the prebuilt packages name it: `linux-x64-gnu`, `linux-arm64-musl`,
 * `darwin-arm64`, `win32-x64`. On Linux the C library matters because the Go runtime links to it.
 */
export function platformName(): string {
  const { platform, arch } = process;
  if (platform !== 'linux') return `${platform}-${arch}`;
  const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string } };
  return `${platform}-${arch}-${report.header?.glibcVersionRuntime === undefined ? 'musl' : 'gnu'}`;
}

/** The package that holds the prebuilt addon for this machine: `@wsbroker/<platformName()>`. */
export function platformPackage(): string {
  return `@wsbroker/${platformName()}`;
}

/**
 * The addon of the platform package when it is installed where this package can require it,
 * else undefined.
 */
export function prebuiltPath(): string | undefined {
  try {
    return require.resolve(`${platformPackage()}/wsbroker.node`);
  } catch {
    return undefined;
  }
}

/** The platform packages this package lists as optional dependencies: the ones that are published. */
function publishedPlatforms(): string[] {
  const manifest = JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as {
    optionalDependencies?: Record<string, string>;
  };
  return Object.keys(manifest.optionalDependencies ?? {}).map((name) => name.replace('@wsbroker/', ''));
}

/** Why no prebuilt addon fits: the platform package, and why it is not there. */
export function missingPrebuilt(): string {
  const published = publishedPlatforms();
  return published.includes(platformName())
    ? `${platformPackage()} (not installed: was the install run with --omit=optional or --no-optional?)`
    : `${platformPackage()} (no such package: prebuilt ones exist for ${published.join(', ')})`;
}

let cached: Native | undefined;

/**
 * Loads the native addon of this thread: a local build (build/Release, then build/Debug) when there
 * is one, since that was built from these very sources, else the prebuilt platform package. Throws
 * an Error naming everything it tried, and what to do, when none is there.
 */
export function loadNative(): Native {
  if (cached !== undefined) return cached;
  const local = ['Release', 'Debug'].map((dir) => path.join(packageRoot, 'build', dir, 'wsbroker.node'));
  const found = local.find((p) => fs.existsSync(p)) ?? prebuiltPath();
  if (found !== undefined) {
    // A binary that exists but fails to load (missing libwsbroker.so, wrong architecture) reports
    // its own error, which says more than ours would.
    cached = require(found) as Native;
    return cached;
  }
  throw new Error(
    `wsbroker: no native addon for ${platformName()}. Tried:\n` +
      `${local.map((p) => `  ${p} (not built)\n`).join('')}  ${missingPrebuilt()}\n` +
      `To build it from source (needs Go and a C compiler): \`npm rebuild @wsbroker/wsbroker\` in a project that installed it, ` +
      `\`npm run build\` in a clone (this one is ${packageRoot}).`,
  );
}
