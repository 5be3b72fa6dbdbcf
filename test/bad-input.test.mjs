// Bad input from JavaScript: every exported function called with every wrong type and value
// (test/fixtures/bad-input-matrix.mjs) throws a TypeError naming the function, detached
// ArrayBuffers are taken as empty bytes, valid calls on closed or unknown sockets are no-ops; all of
// it in a handler on a worker thread spawned by start(), in a handler on the main thread, on the
// main thread outside any handler, in a plain Worker, and again after stop(). The process never
// crashes and exits by itself at the end. Server: test/fixtures/bad-input-server.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, listeningPorts } from './helpers.mjs';
import { Proc, fixture, withTimeout } from './harness.mjs';

/** Every wrong call threw a TypeError (or rejected with one) whose message names the function. */
function assertAllTypeErrors(wrong, where) {
  const names = Object.keys(wrong);
  assert.ok(names.length > 500, `${where}: only ${names.length} wrong calls ran`);
  for (const [call, outcome] of Object.entries(wrong)) {
    const fn = call.slice(0, call.indexOf('('));
    assert.match(outcome, new RegExp(`^TypeError: ${fn}: `), `${where}: ${call}`);
  }
}

/** Detached buffers count as empty bytes: an empty binary message, the empty channel, an empty token. */
function assertDetached(detached, where, { live }) {
  const expected = {
    'send(id, detached ArrayBuffer)': 'returned true',
    'send(id, Uint8Array of a detached buffer)': 'returned true',
    'send(id, DataView of a detached buffer)': 'returned true',
    'send(id, Uint16Array of a detached buffer)': 'returned true',
    'subscribe(id, detached ArrayBuffer)': `returned ${live}`,
    'sendToChannel("", "to the empty channel")': 'returned undefined',
    'unsubscribe(id, "")': `returned ${live}`,
    'sendToChannel(detached ArrayBuffer, "x")': 'returned undefined',
    'sendToChannel("c", detached Uint8Array)': 'returned undefined',
    'sendToChannel(DataView of a detached buffer, "x")': 'returned undefined',
    'unsubscribe(id, detached Uint8Array)': 'returned false',
    'copySubscriptions(detached, detached)': 'returned undefined',
    'setToken(id, DataView of a detached buffer)': 'returned undefined',
    'setToken(id, detached ArrayBuffer)': 'returned undefined',
  };
  assert.deepEqual(detached, expected, where);
}

/** Valid calls on a socket that is closed or unknown, and huge valid values: no-ops. */
function assertNoops(noop, where) {
  assert.deepEqual(
    noop,
    {
      'send(id, "x")': 'returned true',
      'send(id, bytes)': 'returned true',
      'subscribe(id, "c")': 'returned false',
      'unsubscribe(id, "c")': 'returned false',
      'setToken(id, "t")': 'returned undefined',
      'setToken(id, { user: "u" })': 'returned undefined',
      'close(id)': 'returned false',
      'close(id, 4000, "r")': 'returned false',
      'sendToChannel("c", "x")': 'returned undefined',
      'copySubscriptions("c", "d")': 'returned undefined',
      'subscribe(2**53-1, 16 MiB channel name)': 'returned false',
      'setToken(2**53-1, 16 MiB token)': 'returned undefined',
      'sendToChannel(16 MiB channel name, 16 MiB data)': 'returned undefined',
      'send(2**53-1, 16 MiB)': 'returned true',
    },
    where,
  );
}

for (const threads of [2, 0]) {
  const where = threads === 0 ? 'a handler on the main thread' : 'a handler on a worker thread';
  test(`bad input with threads: ${threads}: in ${where}, on the main thread, in a plain Worker, and after stop()`, { timeout: 60_000 }, async (t) => {
    const server = new Proc(process.execPath, [
      fixture('bad-input-server.mjs'),
      JSON.stringify({ bind: '127.0.0.1:0', workerPath: fixture('bad-input-worker.mjs'), threads }),
    ], { env: { WSBROKER_LOG: 'warn' } });
    t.after(() => server.stop());
    const [port] = await listeningPorts(server);

    // In a handler, with a live socket: the detached buffers reach it.
    const c = await Client.connect(port);
    t.after(() => c.terminate());
    c.send('run');
    const result = JSON.parse((await c.next((m) => m.text?.startsWith('result '), 30_000, 'the result')).text.slice(7));
    assert.equal(result.thread === 0, threads === 0, `the handler ran on thread ${result.thread}`);
    assertAllTypeErrors(result.wrong, where);
    assertDetached(result.detached, where, { live: true });
    assertNoops(result.noop, where);
    // What the socket received: `mark N` between the steps. A detached buffer sent is an empty
    // binary message; subscribed by a detached name, the socket is in the channel named by no bytes.
    const received = c.messages.filter((m) => !m.text?.startsWith('result ')).map((m) => (m.binary ? `binary ${m.binary.length} bytes` : m.text));
    assert.deepEqual(received, [
      'mark 0',
      'binary 0 bytes',
      'mark 1',
      'binary 0 bytes',
      'mark 2',
      'binary 0 bytes',
      'mark 3',
      'binary 0 bytes',
      'mark 4',
      'to the empty channel',
      'mark 5',
      'mark 6',
    ]);
    // The last setToken with a detached buffer left an empty token, which is a token.
    c.send('token?');
    assert.equal((await c.next((m) => m.text?.startsWith('token '))).text, 'token 0 bytes');
    c.send('id?');
    const clientId = Number((await c.next((m) => m.text?.startsWith('id '))).text.slice(3));

    // On the main thread outside any handler, and in a plain Worker, while the server runs.
    const oldId = 2 ** 52 - 1; // well formed, never given out
    const main = JSON.parse((await server.ask(`main ${oldId}`, /^main (.*)$/, 30_000))[1]);
    assertAllTypeErrors(main.wrong, 'the main thread');
    assertDetached(main.detached, 'the main thread', { live: false });
    assertNoops(main.noop, 'the main thread');
    const inWorker = JSON.parse((await server.ask(`worker ${oldId}`, /^worker (.*)$/, 30_000))[1]);
    assertAllTypeErrors(inWorker.wrong, 'a plain Worker');
    assertDetached(inWorker.detached, 'a plain Worker', { live: false });
    assertNoops(inWorker.noop, 'a plain Worker');

    // After stop(): the client is closed with 1001, then everything again with its socket id.
    await server.ask('stop', /^stopped$/, 15_000);
    assert.equal((await withTimeout(c.closed, 10_000, 'the close')).code, 1001);
    const afterMain = JSON.parse((await server.ask(`main ${clientId}`, /^main (.*)$/, 30_000))[1]);
    assertAllTypeErrors(afterMain.wrong, 'the main thread after stop()');
    assertDetached(afterMain.detached, 'the main thread after stop()', { live: false });
    assertNoops(afterMain.noop, 'the main thread after stop()');
    const afterWorkerLine = await server.ask(`worker ${clientId}`, /^worker (.*)$/, 30_000);
    const afterWorker = JSON.parse(afterWorkerLine[1]);
    assertAllTypeErrors(afterWorker.wrong, 'a plain Worker after stop()');
    assertDetached(afterWorker.detached, 'a plain Worker after stop()', { live: false });
    assertNoops(afterWorker.noop, 'a plain Worker after stop()');
    assert.deepEqual(server.lines.filter((l) => l.startsWith('worker-')).slice(0, 1), ['worker-exit 0'], 'the first plain Worker ended normally');
    assert.equal((await server.waitForLine(/^worker-.*/, 10_000, afterWorkerLine.lineIndex))[0], 'worker-exit 0', 'the second plain Worker ended normally');
    await server.ask('stop-twice', /^stopped-twice$/, 15_000);

    // No crash, and nothing holds the process: it exits by itself once its stdin is closed.
    server.proc.stdin.end();
    assert.deepEqual(await withTimeout(server.exited, 15_000, 'the process to exit by itself'), { code: 0, signal: null }, server.stderr);
    assert.doesNotMatch(server.stderr, /panic|fatal|Segmentation|Abort/i);
  });
}
