// The API reference in README.md is the one generated from the JSDoc of what js/index.cts re-exports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { root } from './helpers.mjs';

test('README.md has an up-to-date API reference (npm run docs)', () => {
  const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'docs.mjs'), '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr || r.stdout);
});

test('the API reference covers every export', () => {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  for (const name of ['start', 'stop', 'registerWorkerThread', 'send', 'sendToChannel', 'subscribe', 'unsubscribe', 'setToken', 'copySubscriptions', 'close', 'subscriberCount', 'subscriptions', 'stats']) {
    assert.ok(readme.includes(`### ${name} · function`), name);
  }
  assert.ok(readme.includes('### WorkerInterface · interface'));
  assert.ok(readme.includes('### StartOptions · interface'));
  for (const member of ['handleOpen', 'handleTextMessage', 'handleBinaryMessage', 'handleClose']) {
    assert.ok(readme.includes(`#### workerInterface.${member} · member`), member);
  }
});
