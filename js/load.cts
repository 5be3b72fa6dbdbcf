// Finds and loads the compiled addon. Each thread that requires this module (the main thread and
// every worker) gets its own instance of the addon; the Go state behind it is shared by the process.
// The install script (scripts/build.mjs --install) makes its decisions with these same functions.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Native } from './native.cjs';

/** The package root: this file is compiled to lib/js/load.cjs. */
const packageRoot = path.resolve(__dirname, '..', '..');

/** The C library of a Linux machine, as the platform packages name it: glibc (`gnu`) or `musl`. */
export type Libc = 'gnu' | 'musl';

/** What tells the platform packages apart: Node's `process.platform` and `process.arch`, and the C library on Linux. */
export interface Machine {
  platform: string;
  arch: string;
  /** Only on Linux, where the Go runtime links to it. */
  libc?: Libc;
}

/**
 * The C library named by the text of `/usr/bin/ldd`: glibc's is a script "part of the GNU C
 * Library", musl's (Alpine) runs `/lib/ld-musl-<arch>.so.1`. Undefined when it names neither.
 */
export function libcOfLdd(ldd: string): Libc | undefined {
  if (ldd.includes('musl')) return 'musl';
  if (ldd.includes('GNU C Library')) return 'gnu';
  return undefined;
}

let hostLibc: Libc | undefined;

/**
 * This Linux machine's C library, read from `/usr/bin/ldd` as npm (for the packages' `libc` field)
 * and detect-libc do; not from `process.report`, whose report can stall for minutes on reverse DNS.
 * Without a readable ldd (distroless images, which are glibc) it is glibc. Read once per thread.
 */
function linuxLibc(): Libc {
  if (hostLibc === undefined) {
    let ldd = '';
    try {
      ldd = fs.readFileSync('/usr/bin/ldd', 'latin1');
    } catch {
      // No ldd: see above.
    }
    hostLibc = libcOfLdd(ldd) ?? 'gnu';
  }
  return hostLibc;
}

/** The machine this runs on. */
export function thisMachine(): Machine {
  const { platform, arch } = process;
  return platform === 'linux' ? { platform, arch, libc: linuxLibc() } : { platform, arch };
}

/**
 * A machine's name as the prebuilt packages use it: `linux-x64-gnu`, `linux-arm64-musl`,
 * `darwin-arm64`, `win32-x64`.
 */
export function platformName(machine: Machine = thisMachine()): string {
  return [machine.platform, machine.arch, machine.libc].filter((part) => part !== undefined).join('-');
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
export function publishedPlatforms(): string[] {
  const manifest = JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as {
    optionalDependencies?: Record<string, string>;
  };
  return Object.keys(manifest.optionalDependencies ?? {}).map((name) => name.replace('@wsbroker/', ''));
}

/**
 * Why the addon cannot be had on `machine`, what does work, and what to use instead; undefined when
 * it can be had: from a prebuilt package (`published`, platform names like `linux-x64-gnu`) or by a
 * build from source, which works on Linux with glibc only (binding.gyp builds a Linux shared
 * library; Go's shared libraries do not load under musl, golang/go#13492). This one message is what
 * both `npm install` and `require` say on such a machine.
 */
export function unsupportedMessage(machine: Machine, published: string[]): string | undefined {
  const name = platformName(machine);
  if (published.includes(name) || (machine.platform === 'linux' && machine.libc === 'gnu')) return undefined;
  const why = machine.platform === 'linux' ? "Go's shared libraries do not load with musl libc (Alpine)" : `there is no build for ${machine.platform} yet`;
  return (
    `${name} is not supported: ${why}.\n` +
    `WSBroker runs on Linux with glibc: prebuilt for ${published.join(', ')} (glibc 2.34 or later), ` +
    'and built from source (Go and a C compiler) on other Linux machines with glibc.\n' +
    'Use a Linux with glibc instead: in Docker, a Debian-based image such as node:lts-slim rather than node:lts-alpine.\n' +
    'For an addon built for this machine elsewhere, set WSBROKER_ADDON_PATH to its wsbroker.node (with its libwsbroker.so beside it).'
  );
}

/** Why no prebuilt addon fits: the platform package, and why it is not there. */
export function missingPrebuilt(): string {
  const published = publishedPlatforms();
  return published.includes(platformName())
    ? `${platformPackage()} (not installed: was the install run with --omit=optional or --no-optional, ` +
        'or from a package-lock.json written on another platform, which can leave it out (npm/cli#4828)?)'
    : `${platformPackage()} (no such package: prebuilt ones exist for ${published.join(', ')})`;
}

/**
 * The addon that WSBROKER_ADDON_PATH names (relative to the working directory), undefined when the
 * variable is unset or empty. Throws an Error naming the variable and the path when no file is there.
 */
export function addonPathFromEnv(): string | undefined {
  const value = process.env.WSBROKER_ADDON_PATH;
  if (value === undefined || value === '') return undefined;
  const file = path.resolve(value);
  let isFile = false;
  try {
    isFile = fs.statSync(file).isFile();
  } catch {
    // Missing, unreadable, or not a path at all (ENOTDIR, a NUL byte): said below the same way.
  }
  if (!isFile) {
    throw new Error(`wsbroker: WSBROKER_ADDON_PATH is ${value}, but there is no file ${file}`);
  }
  return file;
}

let cached: Native | undefined;

/**
 * Loads the native addon of this thread. When WSBROKER_ADDON_PATH is set, that file and nothing
 * else. Otherwise a local build (build/Release, then build/Debug) when there is one, since that was
 * built from these very sources, else the prebuilt platform package. Throws an Error naming
 * everything it tried, and what to do, when none is there.
 */
export function loadNative(): Native {
  if (cached !== undefined) return cached;
  const override = addonPathFromEnv();
  if (override !== undefined) {
    try {
      cached = require(override) as Native;
    } catch (err) {
      throw new Error(`wsbroker: WSBROKER_ADDON_PATH is ${process.env.WSBROKER_ADDON_PATH}, but ${override} does not load: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return cached;
  }
  const local = ['Release', 'Debug'].map((dir) => path.join(packageRoot, 'build', dir, 'wsbroker.node'));
  const found = local.find((p) => fs.existsSync(p)) ?? prebuiltPath();
  if (found !== undefined) {
    // A binary that exists but fails to load (missing libwsbroker.so, wrong architecture) reports
    // its own error, which says more than ours would.
    cached = require(found) as Native;
    return cached;
  }
  const unsupported = unsupportedMessage(thisMachine(), publishedPlatforms());
  if (unsupported !== undefined) throw new Error(`wsbroker: ${unsupported}`);
  throw new Error(
    `wsbroker: no native addon for ${platformName()}. Tried:\n` +
      `${local.map((p) => `  ${p} (not built)\n`).join('')}  ${missingPrebuilt()}\n` +
      `To build it from source (needs Go and a C compiler): \`npm rebuild @wsbroker/wsbroker\` in a project that installed it, ` +
      `\`npm run build\` in a clone (this one is ${packageRoot}). ` +
      'To load one built elsewhere: set WSBROKER_ADDON_PATH to its wsbroker.node.',
  );
}
