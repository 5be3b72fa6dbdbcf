// js/load.cts: without a built addon, importing the package fails with an Error that names the
// paths tried and says what to run. Checked on a copy of lib/js/ in a directory without build/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { root } from './helpers.mjs';

test('a missing addon gives a clear error naming the paths tried', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsbroker-load-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(path.join(root, 'lib', 'js'), path.join(dir, 'lib', 'js'), { recursive: true });
  const require = createRequire(path.join(dir, 'lib', 'js', 'index.cjs'));
  assert.throws(
    () => require('./index.cjs'),
    (err) => {
      assert.equal(err.constructor, Error);
      assert.ok(err.message.includes(path.join(dir, 'build', 'Release', 'wsbroker.node')), err.message);
      assert.ok(err.message.includes(path.join(dir, 'build', 'Debug', 'wsbroker.node')), err.message);
      assert.match(err.message, /npm run build/);
      return true;
    },
  );
});
