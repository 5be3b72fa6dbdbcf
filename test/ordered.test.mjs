// ordered: true: an async handler sees each socket's events strictly in order; a handler that
// rejects or does not settle within handlerTimeout closes its socket with 1011.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, fixture, withTimeout } from './helpers.mjs';
import { FIN, OP, RawClient, clientFrame, closePayload, e2eServer } from './harness.mjs';

async function orderedServer(t, options) {
  return (await e2eServer(t, { workerPath: fixture('ordered-worker.mjs'), threads: 1, ...options })).port;
}

/** Sends `n DELAY` for n = 1..count with decreasing delays and returns the order of the answers. */
async function answers(port, count) {
  const c = await Client.connect(port);
  for (let n = 1; n <= count; n++) c.send(`${n} ${(count - n) * 15}`);
  const got = [];
  for (let n = 1; n <= count; n++) got.push(Number((await c.next((m) => m.text?.startsWith('done '))).text.slice(5)));
  c.terminate();
  return got;
}

test('with ordered: true, a socket\'s async handlers run one after the other, in order', async (t) => {
  const port = await orderedServer(t, { ordered: true });
  const got = await answers(port, 8);
  assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7, 8]);
});

test('without it, handlers run as events arrive (the later, shorter ones answer first)', async (t) => {
  const port = await orderedServer(t, {});
  const got = await answers(port, 8);
  assert.deepEqual([...got].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.notDeepEqual(got, [1, 2, 3, 4, 5, 6, 7, 8]);
});

test('ordered: a rejection or a handler past handlerTimeout closes that socket with 1011; other sockets go on meanwhile', async (t) => {
  const port = await orderedServer(t, { ordered: true, handlerTimeout: 500 });
  const rejecting = await Client.connect(port);
  rejecting.send('reject');
  assert.deepEqual(await withTimeout(rejecting.closed, 10_000, 'the close'), { code: 1011, reason: 'handleTextMessage failed' });

  const hanging = await Client.connect(port);
  const other = await Client.connect(port);
  t.after(() => other.terminate());
  hanging.send('hang');
  hanging.send('echo never'); // waits behind the hanging handler
  other.send('echo meanwhile');
  await other.next((m) => m.text === 'meanwhile');
  assert.deepEqual(await withTimeout(hanging.closed, 10_000, 'the timeout'), { code: 1011, reason: 'handleTextMessage failed' });
});

test('a message then a close frame in one write: with ordered, the close frame waits for the handler\'s promise and its send; without, it does not', async (t) => {
  for (const ordered of [true, false]) {
    const port = await orderedServer(t, ordered ? { ordered: true } : {});
    const c = await RawClient.connect(port);
    t.after(() => c.destroy());
    await c.write(Buffer.concat([clientFrame(FIN | OP.text, '1 50'), clientFrame(FIN | OP.close, closePayload(4001))]), { byteByByte: false });
    assert.equal((await c.nextClose(10_000)).code, 4001);
    const before = c.frames.filter((f) => f.op === OP.text).map((f) => f.payload.toString());
    assert.deepEqual(before, ordered ? ['done 1'] : [], `ordered: ${ordered}`);
  }
});
