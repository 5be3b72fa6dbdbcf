// The package's entry points (CommonJS and ESM, by its own name) export exactly the public API,
// and the arguments are checked on the main thread too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const API = ['bufferedAmount', 'close', 'clusterSubscriberCount', 'copySubscriptions', 'defineWorker', 'registerWorkerThread', 'send', 'sendToChannel', 'setToken', 'start', 'stats', 'stop', 'subscribe', 'subscriberCount', 'subscriptions', 'unsubscribe'];

test('CommonJS and ESM entries export the same sixteen functions', async () => {
  const cjs = require('@wsbroker/wsbroker');
  const esm = await import('@wsbroker/wsbroker');
  assert.deepEqual(Object.keys(cjs).sort(), API);
  assert.deepEqual(Object.keys(esm).sort(), API);
  for (const name of API) {
    assert.equal(typeof cjs[name], 'function', name);
    assert.equal(esm[name], cjs[name], `${name}: one instance`);
  }
});

test('registerWorkerThread checks its argument', () => {
  const { registerWorkerThread } = require('@wsbroker/wsbroker');
  for (const bad of [undefined, null, 5, 'x']) {
    assert.throws(() => registerWorkerThread(bad), { name: 'TypeError', message: /registerWorkerThread: worker must be an object/ });
  }
  assert.throws(() => registerWorkerThread({ handleOpen: true }), { name: 'TypeError', message: /worker\.handleOpen must be a function, got boolean true/ });
  assert.throws(() => registerWorkerThread({ handleClose: null }), { name: 'TypeError', message: /worker\.handleClose must be a function, got null/ });
});

test('send and friends check their arguments on the main thread', () => {
  const { send, sendToChannel, subscribe, unsubscribe, setToken, copySubscriptions } = require('@wsbroker/wsbroker');
  assert.throws(() => send(0, 'x'), { name: 'TypeError', message: 'send: socketId must be an integer from 1 to 2^53-1, got number 0' });
  assert.throws(() => send(1, 1), { name: 'TypeError', message: /^send: data must be a string, an ArrayBuffer/ });
  assert.throws(() => sendToChannel(null, 'x'), { name: 'TypeError', message: /^sendToChannel: channelName must be/ });
  assert.throws(() => subscribe(2 ** 53, 'c'), { name: 'TypeError', message: /^subscribe: socketId/ });
  assert.throws(() => unsubscribe(1, []), { name: 'TypeError', message: /^unsubscribe: channelName must be .* got an Array/ });
  assert.throws(() => setToken(1, undefined), { name: 'TypeError', message: /^setToken: token must be .* got undefined/ });
  assert.throws(() => copySubscriptions('a', 7), { name: 'TypeError', message: /^copySubscriptions: toChannelName must be/ });
  // Well-formed calls about nobody are no-ops.
  send(2 ** 53 - 1, 'x');
  assert.equal(subscribe(2 ** 53 - 1, new SharedArrayBuffer(3)), false);
  sendToChannel(new DataView(new ArrayBuffer(4), 1, 2), new Uint8Array(0));
});
