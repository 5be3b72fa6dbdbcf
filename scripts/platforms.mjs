// The prebuilt platform packages, npm/<platform>/: one per entry of `platforms`, each listed in the
// optionalDependencies of wsbroker and holding the two binaries of the addon.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * How each platform is built from any Linux host: Go's GOARCH, Debian's cross C compiler and the
 * apt packages it takes, node-gyp's --arch, and the machine `readelf -h` reports for the result.
 */
export const platforms = {
  'linux-x64-gnu': { goarch: 'amd64', cc: 'x86_64-linux-gnu-gcc', apt: 'gcc-x86-64-linux-gnu libc6-dev-amd64-cross', arch: 'x64', machine: 'Advanced Micro Devices X86-64' },
  'linux-arm64-gnu': { goarch: 'arm64', cc: 'aarch64-linux-gnu-gcc', apt: 'gcc-aarch64-linux-gnu libc6-dev-arm64-cross', arch: 'arm64', machine: 'AArch64' },
};

/** The addon (the C glue) and the Go library it links to through rpath $ORIGIN. */
export const BINARIES = ['wsbroker.node', 'libwsbroker.so'];

export const packageDir = (platform) => path.join(root, 'npm', platform);

export const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));

/** Runs a command with inherited output; throws when it fails. */
export function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...options });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${[cmd, ...args].join(' ')} failed (${r.signal ?? `exit status ${r.status}`})`);
}

function readelf(args, file) {
  const r = spawnSync('readelf', [...args, file], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`readelf ${args.join(' ')} ${file} failed: ${r.error?.message ?? r.stderr}`);
  return r.stdout;
}

/**
 * Throws unless npm/<platform>/ holds both binaries, built for the platform's machine, and the addon
 * finds libwsbroker.so beside itself (NEEDED libwsbroker.so, RUNPATH $ORIGIN).
 */
export function checkPackage(platform) {
  const dir = packageDir(platform);
  const problems = [];
  for (const name of BINARIES) {
    const file = path.join(dir, name);
    if (!existsSync(file)) {
      problems.push(`${name} is missing`);
      continue;
    }
    const machine = /Machine:\s*(.*)/.exec(readelf(['-h'], file))?.[1].trim();
    if (machine !== platforms[platform].machine) problems.push(`${name} is for ${machine}, not ${platforms[platform].machine}`);
  }
  if (problems.length === 0) {
    const dynamic = readelf(['-d'], path.join(dir, 'wsbroker.node'));
    if (!/\(NEEDED\)\s+Shared library: \[libwsbroker\.so\]/.test(dynamic)) problems.push('wsbroker.node does not link to libwsbroker.so');
    if (!/\((RUNPATH|RPATH)\)\s+Library (runpath|rpath): \[\$ORIGIN\]/.test(dynamic)) problems.push('wsbroker.node has no rpath $ORIGIN');
  }
  if (problems.length > 0) throw new Error(`${path.relative(root, dir)}: ${problems.join('; ')}`);
}

/** Copies the binaries of a node-gyp build folder into npm/<platform>/ and checks them. */
export function fillPackage(platform, buildDir) {
  for (const name of BINARIES) copyFileSync(path.join(buildDir, name), path.join(packageDir(platform), name));
  checkPackage(platform);
}
