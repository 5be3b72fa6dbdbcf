// js/load.cts: without an addon, importing the package fails with an Error that names every place
// tried (the local builds and the platform package) and says what to run; on a machine where no
// addon can work, with the one message about platforms. Checked on a copy of lib/js/ and
// package.json in a directory with neither build/ nor node_modules/. How it tells glibc from musl,
// and WSBROKER_ADDON_PATH, which loads an addon from anywhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { root } from './helpers.mjs';

const require = createRequire(import.meta.url);
const { libcOfLdd, platformName, publishedPlatforms, unsupportedMessage } = require('../lib/js/load.cjs');

/** Sets an own property of `process` (platform, arch) for the rest of the test. */
function pretend(t, name, value) {
  const original = Object.getOwnPropertyDescriptor(process, name);
  Object.defineProperty(process, name, { ...original, value });
  t.after(() => Object.defineProperty(process, name, original));
}

/** Sets WSBROKER_ADDON_PATH for the rest of the test. */
function addonPathEnv(t, value) {
  process.env.WSBROKER_ADDON_PATH = value;
  t.after(() => delete process.env.WSBROKER_ADDON_PATH);
}

/** A temporary folder holding a copy of the addon of build/Release (wsbroker.node, and libwsbroker.so unless `withoutLibrary`). */
function addonCopy(t, { withoutLibrary = false } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsbroker-addon-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const name of withoutLibrary ? ['wsbroker.node'] : ['wsbroker.node', 'libwsbroker.so']) {
    copyFileSync(path.join(root, 'build', 'Release', name), path.join(dir, name));
  }
  return dir;
}

/** The Error that requiring a copy of the package without any addon throws. */
function loadError(t) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsbroker-load-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(path.join(root, 'lib', 'js'), path.join(dir, 'lib', 'js'), { recursive: true });
  cpSync(path.join(root, 'package.json'), path.join(dir, 'package.json'));
  let error;
  assert.throws(
    () => createRequire(path.join(dir, 'lib', 'js', 'index.cjs'))('./index.cjs'),
    (err) => {
      assert.equal(err.constructor, Error);
      error = err;
      return true;
    },
  );
  return { dir, message: error.message };
}

test('a missing addon gives a clear error naming the local builds and the platform package tried', (t) => {
  const { dir, message } = loadError(t);
  assert.ok(message.includes(`wsbroker: no native addon for ${platformName()}. Tried:\n`), message);
  assert.ok(message.includes(`  ${path.join(dir, 'build', 'Release', 'wsbroker.node')} (not built)\n`), message);
  assert.ok(message.includes(`  ${path.join(dir, 'build', 'Debug', 'wsbroker.node')} (not built)\n`), message);
  assert.ok(message.includes(`  @wsbroker/${platformName()} (not installed: was the install run with --omit=optional`), message);
  assert.match(message, /`npm rebuild @wsbroker\/wsbroker` in a project that installed it, `npm run build` in a clone/);
});

test('on a platform without a prebuilt package, the error lists the platforms that have one', (t) => {
  pretend(t, 'arch', 'riscv64');
  const { message } = loadError(t);
  assert.match(message, /^wsbroker: no native addon for linux-riscv64-gnu\. Tried:\n/);
  assert.match(message, /\n {2}@wsbroker\/linux-riscv64-gnu \(no such package: prebuilt ones exist for linux-arm64-gnu, linux-x64-gnu\)\n/);
});

test('/usr/bin/ldd tells glibc from musl: this machine is glibc, and the libc is read without process.report', () => {
  assert.equal(libcOfLdd(readFileSync('/usr/bin/ldd', 'latin1')), 'gnu');
  // Alpine's /usr/bin/ldd (musl-utils).
  assert.equal(libcOfLdd('#!/bin/sh\nexec /lib/ld-musl-x86_64.so.1 --list "$@"\n'), 'musl');
  assert.equal(libcOfLdd('#!/bin/sh\necho something else\n'), undefined);
  // process.report.getReport can stall for minutes on reverse DNS: a process where it throws still
  // knows its platform.
  const script = `process.report.getReport = () => { throw new Error('process.report used') };
    console.log(require(${JSON.stringify(path.join(root, 'lib', 'js', 'load.cjs'))}).platformName())`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  assert.equal(r.stderr, '');
  assert.equal(r.stdout, `linux-${process.arch}-gnu\n`);
});

test('the platforms where the addon cannot work: musl, and macOS or Windows without a prebuilt package', () => {
  const published = ['linux-arm64-gnu', 'linux-x64-gnu'];
  assert.equal(unsupportedMessage({ platform: 'linux', arch: 'x64', libc: 'gnu' }, published), undefined, 'prebuilt');
  assert.equal(unsupportedMessage({ platform: 'linux', arch: 'riscv64', libc: 'gnu' }, published), undefined, 'built from source');
  assert.equal(unsupportedMessage({ platform: 'darwin', arch: 'arm64' }, [...published, 'darwin-arm64']), undefined, 'prebuilt');
  const musl = unsupportedMessage({ platform: 'linux', arch: 'x64', libc: 'musl' }, published);
  assert.match(musl, /^linux-x64-musl is not supported: Go's shared libraries do not load with musl libc \(Alpine\)\.\n/);
  for (const [platform, arch] of [['darwin', 'arm64'], ['win32', 'x64'], ['freebsd', 'x64']]) {
    assert.match(unsupportedMessage({ platform, arch }, published), new RegExp(`^${platform}-${arch} is not supported: there is no build for ${platform} yet\\.\\n`));
  }
  // After the reason, the same advice everywhere.
  assert.equal(
    musl.slice(musl.indexOf('\n')),
    '\nWSBroker runs on Linux with glibc: prebuilt for linux-arm64-gnu, linux-x64-gnu (glibc 2.34 or later), ' +
      'and built from source (Go and a C compiler) on other Linux machines with glibc.\n' +
      'Use a Linux with glibc instead: in Docker, a Debian-based image such as node:lts-slim rather than node:lts-alpine.\n' +
      'For an addon built for this machine elsewhere, set WSBROKER_ADDON_PATH to its wsbroker.node (with its libwsbroker.so beside it).',
  );
});

test('on a platform where the addon cannot work, require throws the message about platforms alone', (t) => {
  pretend(t, 'platform', 'darwin');
  const { message } = loadError(t);
  assert.equal(message, `wsbroker: ${unsupportedMessage({ platform: 'darwin', arch: process.arch }, publishedPlatforms())}`);
});

test('WSBROKER_ADDON_PATH: the addon is loaded from there (relative to the working directory) and from nowhere else', (t) => {
  const elsewhere = addonCopy(t);
  // The package in the repository, whose build/Release would be loaded without the variable.
  const script = `const { stats } = require(${JSON.stringify(root)});
    console.log(Object.keys(stats())[0]);
    // The Go library mapped into this process: which libwsbroker.so was loaded.
    const maps = require('node:fs').readFileSync('/proc/self/maps', 'utf8');
    console.log([...new Set(maps.match(/\\S*libwsbroker\\.so/g))].join())`;
  const r = spawnSync(process.execPath, ['-e', script], {
    cwd: path.dirname(elsewhere),
    env: { ...process.env, WSBROKER_ADDON_PATH: path.join(path.basename(elsewhere), 'wsbroker.node') },
    encoding: 'utf8',
  });
  assert.equal(r.stderr, '');
  assert.equal(r.stdout, `connections\n${path.join(elsewhere, 'libwsbroker.so')}\n`);
});

test('WSBROKER_ADDON_PATH naming no file: require throws naming the variable and the path', (t) => {
  const missing = path.join(os.tmpdir(), 'no-such-dir', 'wsbroker.node');
  addonPathEnv(t, missing);
  const { message } = loadError(t);
  assert.equal(message, `wsbroker: WSBROKER_ADDON_PATH is ${missing}, but there is no file ${missing}`);
});

test('WSBROKER_ADDON_PATH naming a folder, or below a file: require throws naming the variable and the path', (t) => {
  const dir = addonCopy(t);
  for (const notAFile of [dir, path.join(dir, 'wsbroker.node', 'wsbroker.node')]) {
    addonPathEnv(t, notAFile);
    assert.equal(loadError(t).message, `wsbroker: WSBROKER_ADDON_PATH is ${notAFile}, but there is no file ${notAFile}`);
  }
});

test('WSBROKER_ADDON_PATH naming an addon that does not load: require throws naming the variable, the path and why', (t) => {
  const file = path.join(addonCopy(t, { withoutLibrary: true }), 'wsbroker.node');
  addonPathEnv(t, file);
  const { message } = loadError(t);
  assert.ok(message.startsWith(`wsbroker: WSBROKER_ADDON_PATH is ${file}, but ${file} does not load: `), message);
  assert.match(message, /libwsbroker\.so: cannot open shared object file/);
});
