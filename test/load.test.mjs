// js/load.cts: without an addon, importing the package fails with an Error that names every place
// tried (the local builds and the platform package) and says what to run. Checked on a copy of
// lib/js/ and package.json in a directory with neither build/ nor node_modules/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { root } from './helpers.mjs';

const require = createRequire(import.meta.url);
const { platformName } = require('../lib/js/load.cjs');

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
  const arch = Object.getOwnPropertyDescriptor(process, 'arch');
  Object.defineProperty(process, 'arch', { ...arch, value: 'riscv64' });
  t.after(() => Object.defineProperty(process, 'arch', arch));
  const { message } = loadError(t);
  assert.match(message, /^wsbroker: no native addon for linux-riscv64-(gnu|musl)\. Tried:\n/);
  assert.match(message, /\n {2}@wsbroker\/linux-riscv64-(gnu|musl) \(no such package: prebuilt ones exist for linux-arm64-gnu, linux-x64-gnu\)\n/);
});
