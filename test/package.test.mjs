// The package as users get it. `npm pack` makes tarballs of wsbroker and of this machine's platform
// package (which `npm run build` fills); they are installed, from the npm cache where it can, into fresh
// projects in a temporary folder, and used from there: servers from CommonJS and from an ES module
// echoing through a worker thread, `tsc --strict --noEmit` and tsd over the typings; the same servers
// with the package installed under the name `wsbroker`, as the npm alias
// `wsbroker@npm:@wsbroker/wsbroker` installs it. Without the platform package, the install builds
// from source, or says what is missing when Go is not there. On a machine where no addon can work
// (macOS, simulated), the install and require say so, and WSBROKER_ADDON_PATH still makes it work.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { checkPackage, packageDir, readJson } from '../scripts/platforms.mjs';
import { root } from './helpers.mjs';

const require = createRequire(import.meta.url);
const { platformName, publishedPlatforms, unsupportedMessage } = require('../lib/js/load.cjs');
const tsd = require('tsd').default;
const platform = platformName();
const platformPkg = `@wsbroker/${platform}`;
const npmCli = process.env.npm_execpath ?? path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');

const fixtures = path.join(root, 'test', 'fixtures', 'package');

let dir;
let tarballs;
let bare; // a PATH with only node and sh
let consumerDeps; // what the consumers take besides wsbroker
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
 * npm, run in `project` with `args` and `env` added to this process's environment. Prefer-offline:
 * the cache has the tarballs (`npm ci` put them there) but, on a fresh machine, not the registry's
 * metadata that resolving a version needs; npm fetches that once.
 */
function npm(project, args, { env, status = 0 } = {}) {
  const common = ['--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts'];
  return exec(process.execPath, [npmCli, ...args, ...common], { cwd: project, env: { ...process.env, ...env }, status });
}

/**
 * `npm install` of the wsbroker tarball, as dependency `as`, (and `deps`) in a new project;
 * `prebuilt` makes the platform package's tarball what npm installs for it. `npmArgs` are added.
 */
function install(name, { as = '@wsbroker/wsbroker', deps = {}, prebuilt, npmArgs = [], env, status = 0 }) {
  const project = path.join(dir, name);
  mkdirSync(project);
  writeFileSync(
    path.join(project, 'package.json'),
    JSON.stringify({
      name,
      private: true,
      dependencies: { [as]: `file:${tarballs['@wsbroker/wsbroker']}`, ...deps },
      // What the registry would serve for wsbroker's optional dependency.
      overrides: prebuilt ? { [platformPkg]: `file:${tarballs[platformPkg]}` } : {},
    }),
  );
  const result = npm(project, ['install', ...(prebuilt ? [] : ['--omit=optional']), ...npmArgs], { env, status });
  return { project, ...result };
}

/** Copies the consumers of test/fixtures/package, and the workers they start, into `project`, importing the package as `importName`. */
function copyConsumers(project, importName) {
  for (const file of ['echo.cjs', 'consumer.cjs', 'consumer.mjs', 'worker.cjs', 'worker.mjs']) {
    const text = readFileSync(path.join(fixtures, file), 'utf8');
    writeFileSync(path.join(project, file), text.replaceAll("'@wsbroker/wsbroker'", `'${importName}'`));
  }
}

const consumers = ['consumer.cjs', 'consumer.mjs'];

/** Runs a consumer of test/fixtures/package in `project` (with `nodeArgs` and `env`): it echoes through a worker thread, stops and exits. */
function runConsumer(project, consumer, { nodeArgs = [], env } = {}) {
  const { stdout } = exec(process.execPath, [...nodeArgs, consumer], { cwd: project, env: { ...process.env, ...env } });
  assert.match(stdout, /^hello from (CommonJS|ES module) worker thread [1-9]\d*\n$/);
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
  bare = pathWith('bin-bare', ['node', 'sh']);
  consumerDeps = { ws: versionOf('ws'), '@types/node': versionOf('@types/node') };
  const { project, stdout } = install('app', { deps: consumerDeps, prebuilt: true, env: { PATH: bare } });
  app = project;
  assert.match(stdout, new RegExp(`wsbroker: using the prebuilt ${platformPkg}`));
  cpSync(fixtures, app, { recursive: true });
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('with the platform package, npm install builds nothing and needs no Go, C compiler or node-gyp', () => {
  assert.deepEqual(readdirSync(path.join(app, 'node_modules', platformPkg)).sort(), ['libwsbroker.so', 'package.json', 'wsbroker.node']);
  assert.equal(existsSync(path.join(app, 'node_modules', '@wsbroker', 'wsbroker', 'build')), false, 'nothing was built');
});

for (const consumer of consumers) {
  test(`${consumer} starts a server that echoes through a worker thread, then stops and exits`, () => runConsumer(app, consumer));
}

test("installed under the name wsbroker (the alias wsbroker@npm:@wsbroker/wsbroker), import 'wsbroker' works from CommonJS and ES modules", () => {
  const { project } = install('app-alias', { as: 'wsbroker', deps: consumerDeps, prebuilt: true, env: { PATH: bare } });
  // npm records it as it records the alias: the folder of the name, holding @wsbroker/wsbroker.
  const lock = readJson(path.join(project, 'package-lock.json'));
  assert.equal(lock.packages['node_modules/wsbroker'].name, '@wsbroker/wsbroker');
  assert.equal(lock.packages['node_modules/@wsbroker/wsbroker'], undefined);
  copyConsumers(project, 'wsbroker');
  for (const consumer of consumers) runConsumer(project, consumer);
});

test('on a machine where no addon works (macOS, simulated): npm install and require say so, and WSBROKER_ADDON_PATH makes it work', () => {
  const asDarwin = ['--require', path.join(root, 'test', 'fixtures', 'as-darwin.cjs')];
  // npm itself runs as it is; the install script, through NODE_OPTIONS, on "macOS".
  const installScriptAsDarwin = `--node-options=${asDarwin.join(' ')}`;
  const message = `wsbroker: ${unsupportedMessage({ platform: 'darwin', arch: process.arch }, publishedPlatforms())}\n`;

  const failed = install('app-darwin', { deps: consumerDeps, npmArgs: [installScriptAsDarwin], env: { PATH: bare }, status: 1 });
  assert.ok(failed.stderr.includes(message), failed.stderr);
  assert.doesNotMatch(failed.stderr, /missing from PATH/, 'no source build was tried');

  const { project } = failed;
  npm(project, ['install', '--omit=optional', '--ignore-scripts'], { env: { PATH: bare } });
  const { stderr } = exec(process.execPath, [...asDarwin, '-e', "require('@wsbroker/wsbroker')"], { cwd: project, status: 1 });
  assert.ok(stderr.includes(`Error: ${message}`), stderr);

  // An addon built elsewhere (here: the binaries of this machine's platform package, which is all
  // the release workflow's arm64 job has).
  const elsewhere = path.join(dir, 'addon-from-elsewhere');
  cpSync(packageDir(platform), elsewhere, { recursive: true });
  const env = { PATH: bare, WSBROKER_ADDON_PATH: path.join(elsewhere, 'wsbroker.node') };
  const { stdout } = npm(project, ['rebuild', '@wsbroker/wsbroker', installScriptAsDarwin], { env });
  assert.ok(stdout.includes(`wsbroker: nothing to build, WSBROKER_ADDON_PATH names the addon to load: ${env.WSBROKER_ADDON_PATH}\n`), stdout);
  copyConsumers(project, '@wsbroker/wsbroker');
  for (const consumer of consumers) runConsumer(project, consumer, { nodeArgs: asDarwin, env });
});

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

test('without the platform package nor any build tool, npm install fails naming every missing one', () => {
  const { stderr } = install('app-no-tools', { env: { PATH: bare }, status: 1 });
  const listed = stderr.split('\n').filter((l) => /^ {2}- \S+: /.test(l)).map((l) => l.trim().slice(2).split(':')[0]);
  assert.deepEqual(listed, ['go', process.env.CC?.split(' ')[0] ?? 'cc', 'make', 'python3'], stderr);
});

test('with the platform package and --ignore-scripts, nothing changes: the prebuilt addon works', () => {
  const { project } = install('app-no-scripts', { deps: consumerDeps, prebuilt: true, npmArgs: ['--ignore-scripts'], env: { PATH: bare } });
  copyConsumers(project, '@wsbroker/wsbroker');
  runConsumer(project, 'consumer.cjs');
});

test('without the platform package, npm install --ignore-scripts builds nothing, and npm rebuild then builds the addon from source', () => {
  const { project } = install('app-source', { npmArgs: ['--ignore-scripts'] });
  const pkg = path.join(project, 'node_modules', '@wsbroker', 'wsbroker');
  assert.equal(existsSync(path.join(pkg, 'build')), false, 'nothing built');
  npm(project, ['rebuild', '@wsbroker/wsbroker']);
  assert.ok(existsSync(path.join(pkg, 'build', 'Release', 'wsbroker.node')));
  // It loads (in a process of its own: one Go runtime per process).
  const { stdout } = exec(process.execPath, ['-p', "Object.keys(require('@wsbroker/wsbroker').stats()).join()"], { cwd: project });
  assert.match(stdout, /^connections,/);
});
