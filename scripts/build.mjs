// Builds the addon: node-gyp runs binding.gyp, whose action builds the Go library and whose target
// compiles the C glue against it; tsc compiles js/ and example/ into lib/.
//   node scripts/build.mjs [--debug] [node-gyp arguments…]
//       npm run build / npm run debug: tsc, then the addon of this machine into build/Release (or
//       build/Debug); a release build also fills this machine's platform package, npm/<platform>/.
//   node scripts/build.mjs --install
//       what `npm install` runs: nothing when WSBROKER_ADDON_PATH names an addon or the prebuilt
//       platform package fits this machine; on a machine where a source build cannot work either
//       (musl, macOS, Windows), fails with the message that require would throw there; else the
//       addon, from source.
//   node scripts/build.mjs --cross [node-gyp arguments…]
//       npm run cross: cross-compiles the platform packages of every other platform.
// Node's headers are taken from the running node's own prefix when they are there, so no header
// download is needed. Before building, the tools it takes are looked up, and all that are missing
// are named in one message.
import { accessSync, constants, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fillPackage, packageDir, platforms, root, run } from './platforms.mjs';

const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const mode = args.find((a) => a === '--install' || a === '--cross');
const gypArgs = args.filter((a) => a !== mode);

/** What binding.gyp builds from: copied into a fresh folder for each cross build. */
const SOURCES = ['binding.gyp', 'go.mod', 'go.sum', 'napi', 'broker', 'brokermetrics', 'internal', 'cmd/libwsbroker'];

/** Whether an executable file named `name` is on PATH. */
function onPath(name) {
  return (process.env.PATH ?? '').split(path.delimiter).some((dir) => {
    const file = path.join(dir || '.', name);
    try {
      accessSync(file, constants.X_OK);
      return statSync(file).isFile();
    } catch {
      return false;
    }
  });
}

/** The tools a build from source takes, each with the names it may have and what it is for. */
function tools(cc, ccHint) {
  const goVersion = /^go (\S+)/m.exec(readFileSync(path.join(root, 'go.mod'), 'utf8'))[1];
  return [
    { names: ['go'], what: `go: Go ${goVersion} or later (https://go.dev/dl/), which builds the broker library (cmd/libwsbroker)` },
    { names: [cc.split(' ')[0]], what: `${cc}: a C compiler${ccHint}, which compiles the Node-API glue (napi/) and the cgo parts of the broker` },
    { names: ['make'], what: 'make: runs the build that node-gyp generates' },
    { names: ['python3', 'python'], what: 'python3: node-gyp runs on Python 3' },
  ];
}

/** Throws one error naming every tool of `needed` that is not on PATH. */
function requireTools(needed, why) {
  const missing = needed.filter((t) => !t.names.some(onPath));
  if (missing.length > 0) {
    throw new Error(`${why}, and these are missing from PATH:\n${missing.map((t) => `  - ${t.what}`).join('\n')}`);
  }
}

/** node-gyp rebuild in `cwd` (the package root, or a copy of the sources for a cross build). */
function nodeGyp(cwd, extraArgs, env = process.env) {
  const prefix = path.resolve(process.execPath, '..', '..');
  const nodedir = existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) && !extraArgs.some((a) => a.startsWith('--nodedir'));
  let gyp;
  try {
    gyp = [process.execPath, require.resolve('node-gyp/bin/node-gyp.js')];
  } catch {
    // npm ships its own node-gyp and puts it on PATH for lifecycle scripts.
    gyp = ['node-gyp'];
  }
  run(gyp[0], [...gyp.slice(1), 'rebuild', ...extraArgs, ...(nodedir ? [`--nodedir=${prefix}`] : [])], { cwd, env });
}

/** Builds npm/<platform>/ with the platform's cross compiler, in a copy of the sources so that build/ stays this machine's. */
function crossBuild(platform) {
  const { goarch, cc, apt, arch } = platforms[platform];
  requireTools(tools(cc, ` for ${platform} (on Debian: apt-get install ${apt})`), `cross-compiling ${platform}`);
  const stage = mkdtempSync(path.join(os.tmpdir(), `wsbroker-${platform}-`));
  try {
    for (const src of SOURCES) cpSync(path.join(root, src), path.join(stage, src), { recursive: true });
    // gyp's Makefile links with $(CXX) unless LINK is set; the glue is C only.
    nodeGyp(stage, [`--arch=${arch}`, ...gypArgs], { ...process.env, GOARCH: goarch, CGO_ENABLED: '1', CC: cc, CXX: cc, LINK: cc });
    fillPackage(platform, path.join(stage, 'build', 'Release'));
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  console.log(`wsbroker: built ${path.relative(root, packageDir(platform))}`);
}

function main() {
  // lib/js/load.cjs knows this machine's platform and its package; compile it first unless it is
  // there already in an installed package.
  const loadPath = path.join(root, 'lib', 'js', 'load.cjs');
  if (mode !== '--install' || !existsSync(loadPath)) {
    // From empty: a module deleted from js/ must not linger in lib/ and be packed.
    rmSync(path.join(root, 'lib'), { recursive: true, force: true });
    run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', root]);
  }
  const load = require(loadPath);
  const host = load.platformName();

  if (mode === '--cross') {
    for (const platform of Object.keys(platforms)) if (platform !== host) crossBuild(platform);
    return;
  }
  if (mode === '--install') {
    const override = load.addonPathFromEnv();
    if (override !== undefined) {
      console.log(`wsbroker: nothing to build, WSBROKER_ADDON_PATH names the addon to load: ${override}`);
      return;
    }
    if (load.prebuiltPath() !== undefined) {
      console.log(`wsbroker: using the prebuilt ${load.platformPackage()}`);
      return;
    }
    const unsupported = load.unsupportedMessage(load.thisMachine(), load.publishedPlatforms());
    if (unsupported !== undefined) throw new Error(unsupported);
  }
  const cc = process.env.CC ?? 'cc';
  requireTools(
    tools(cc, process.env.CC === undefined ? ' (or set CC)' : ' (from CC)'),
    mode === '--install'
      ? `no prebuilt addon fits this machine (${load.missingPrebuilt()}), so it must be built from source`
      : 'building from source',
  );
  nodeGyp(root, gypArgs);
  if (mode === undefined && !gypArgs.includes('--debug') && existsSync(packageDir(host))) {
    fillPackage(host, path.join(root, 'build', 'Release'));
  }
}

try {
  main();
} catch (err) {
  // The loader's errors (lib/js/load.cjs) carry the prefix already.
  console.error(`wsbroker: ${err.message.replace(/^wsbroker: /, '')}`);
  process.exit(1);
}
