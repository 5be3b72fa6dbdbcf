// The package as users get it. `npm pack` makes tarballs of wsbroker and of this machine's platform
// package (which `npm run build` fills); they are installed, from the npm cache where it can, into fresh
// projects in a temporary folder, and used from there: servers from CommonJS and from an ES module
// echoing through a worker thread, `tsc --strict --noEmit` and tsd over the typings. Without the
// platform package, the install builds from source, or says what is missing when Go is not there.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { checkPackage, packageDir, readJson } from '../scripts/platforms.mjs';
import { freePort, root } from './helpers.mjs';

const require = createRequire(import.meta.url);
const { platformName } = require('../lib/js/load.cjs');
const tsd = require('tsd').default;
const platform = platformName();
const platformPkg = `@wsbroker/${platform}`;
const npmCli = process.env.npm_execpath ?? path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');

let dir;
let tarballs;
let app; // the project that installed wsbroker with its platform package

/** Runs a command to completion; its output is in the result, and in the assertion message when it fails. */
function exec(cmd, args, { cwd, env = process.env, status = 0 } = {}) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, status, `${cmd} ${args.join(' ')} in ${cwd}: exit ${r.status} ${r.signal ?? ''}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** A folder of symlinks to the given commands (found on the current PATH), to be a whole PATH. */
function pathWith(name, commands) {
  const bin = path.join(dir, name);
  mkdirSync(bin);
  for (const cmd of commands) {
    const found = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim();
    assert.ok(found, `${cmd} is not on PATH`);
    symlinkSync(found, path.join(bin, cmd));
  }
  return bin;
}

/**
 * `npm install` of the wsbroker tarball (and `deps`) in a new project; `prebuilt` makes the
 * platform package's tarball what npm installs for it. Prefer-offline: the cache has the
 * tarballs (`npm ci` put them there) but, on a fresh machine, not the registry's metadata that
 * resolving a version needs; npm fetches that once.
 */
function install(name, { deps = {}, prebuilt, env, status = 0 }) {
  const project = path.join(dir, name);
  mkdirSync(project);
  writeFileSync(
    path.join(project, 'package.json'),
    JSON.stringify({
      name,
      private: true,
      dependencies: { '@wsbroker/wsbroker': `file:${tarballs['@wsbroker/wsbroker']}`, ...deps },
      // What the registry would serve for wsbroker's optional dependency.
      overrides: prebuilt ? { [platformPkg]: `file:${tarballs[platformPkg]}` } : {},
    }),
  );
  const args = [npmCli, 'install', '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', ...(prebuilt ? [] : ['--omit=optional'])];
  const result = exec(process.execPath, args, { cwd: project, env: { ...process.env, ...env }, status });
  return { project, ...result };
}

/** The version of a development dependency, as installed here (so that it is in the npm cache). */
const versionOf = (name) => readJson(path.join(root, 'node_modules', name, 'package.json')).version;

before(() => {
  assert.doesNotThrow(() => checkPackage(platform), 'npm run build fills the platform package of this machine');
  dir = mkdtempSync(path.join(os.tmpdir(), 'wsbroker-package-'));
  tarballs = {};
  // lib/ is compiled by the build that precedes the tests, so the pack needs no prepare script.
  for (const pkgDir of [root, packageDir(platform)]) {
    const [{ name, filename }] = JSON.parse(exec(process.execPath, [npmCli, 'pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: pkgDir }).stdout);
    tarballs[name] = path.join(dir, filename);
  }
  // No Go, C compiler, make, Python or node-gyp: only what running npm takes.
  const bare = pathWith('bin-bare', ['node', 'sh']);
  const deps = { ws: versionOf('ws'), '@types/node': versionOf('@types/node') };
  const { project, stdout } = install('app', { deps, prebuilt: true, env: { PATH: bare } });
  app = project;
  assert.match(stdout, new RegExp(`wsbroker: using the prebuilt ${platformPkg}`));
  cpSync(path.join(root, 'test', 'fixtures', 'package'), app, { recursive: true });
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('with the platform package, npm install builds nothing and needs no Go, C compiler or node-gyp', () => {
  assert.deepEqual(readdirSync(path.join(app, 'node_modules', platformPkg)).sort(), ['libwsbroker.so', 'package.json', 'wsbroker.node']);
  assert.equal(existsSync(path.join(app, 'node_modules', '@wsbroker', 'wsbroker', 'build')), false, 'nothing was built');
});

for (const consumer of ['consumer.cjs', 'consumer.mjs']) {
  test(`${consumer} starts a server that echoes through a worker thread, then stops and exits`, async () => {
    const { stdout } = exec(process.execPath, [consumer, String(await freePort())], { cwd: app });
    assert.match(stdout, /^hello from (CommonJS|ES module) worker thread [1-9]\d*\n$/);
  });
}

test('tsc --strict --noEmit accepts a TypeScript consumer of every export, as ESM and CommonJS', () => {
  exec(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', app, '--strict', '--noEmit'], { cwd: app });
});

test('tsd type tests of the installed typings', async () => {
  // The type tests import tsd's assertions: they are resolved from this repository's tsd.
  symlinkSync(path.join(root, 'node_modules', 'tsd'), path.join(app, 'node_modules', 'tsd'));
  const diagnostics = await tsd({ cwd: app, typingsFile: 'node_modules/@wsbroker/wsbroker/lib/js/index.d.cts', testFiles: ['index.test-d.ts'] });
  assert.deepEqual(
    diagnostics.map((d) => `${path.basename(d.fileName)}:${d.line}: ${d.message}`),
    [],
  );
});

test('without the platform package nor Go, npm install fails saying what is missing', () => {
  const noGo = pathWith('bin-no-go', ['node', 'sh', 'cc', 'make', 'python3']);
  const { stderr, project } = install('app-no-go', { env: { PATH: noGo }, status: 1 });
  assert.match(stderr, new RegExp(`wsbroker: no prebuilt addon fits this machine \\(${platformPkg} \\(not installed`));
  assert.match(stderr, /missing from PATH:\n {2}- go: Go \d+\.\d+(\.\d+)? or later \(https:\/\/go\.dev\/dl\/\)/);
  assert.doesNotMatch(stderr, /C compiler|make:|python3:/, 'only Go is missing');
  assert.equal(existsSync(path.join(project, 'node_modules', '@wsbroker', 'wsbroker', 'build')), false);
});

test('without the platform package, npm install builds the addon from source', () => {
  const { project } = install('app-source', {});
  const pkg = path.join(project, 'node_modules', '@wsbroker', 'wsbroker');
  assert.ok(existsSync(path.join(pkg, 'build', 'Release', 'wsbroker.node')));
  // It loads (in a process of its own: one Go runtime per process).
  const { stdout } = exec(process.execPath, ['-p', "Object.keys(require('@wsbroker/wsbroker').stats()).join()"], { cwd: project });
  assert.match(stdout, /^connections,/);
});
