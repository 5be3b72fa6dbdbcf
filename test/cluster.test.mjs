// End to end: several listeners, many clients, CommonJS workers, registration on the main thread,
// and the replacement of a worker that crashes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Client, fixture, startServer, withTimeout } from './helpers.mjs';
import { until } from './harness.mjs';

test('two listeners share channels, tokens and the worker pool', async (t) => {
  // The second start has no workerPath: it uses the pool of the first.
  const server = await startServer({
    servers: [{ bind: '127.0.0.1:0', workerPath: fixture('worker.mjs'), threads: 2 }, { bind: '127.0.0.1:0' }],
  });
  const [p1, p2] = server.ports;
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.terminate();
    await server.stop();
  });
  const a = await Client.connect(p1);
  const b = await Client.connect(p2);
  clients.push(a, b);
  assert.equal((await a.ask({ op: 'sub', ch: 'shared' })).result, true);
  b.cmd({ op: 'pub', ch: 'shared', data: 'from the other listener' });
  await a.next((m) => m.text === 'from the other listener');
  // Socket ids are unique across listeners, and one listener's worker can address the other's socket.
  const ida = (await a.ask({ op: 'whoami' })).socketId;
  const idb = (await b.ask({ op: 'whoami' })).socketId;
  assert.notEqual(ida, idb);
  await b.ask({ op: 'sendTo', id: ida, data: 'direct' });
  await a.next((m) => m.text === 'direct');
  await b.ask({ op: 'token', id: ida, value: 'set from b' });
  assert.equal((await a.ask({ op: 'whoami' })).token, 'set from b');
  assert.equal((await b.ask({ op: 'sub', id: ida, ch: 'b-made' })).result, true);
  b.cmd({ op: 'pub', ch: 'b-made', data: 'via b-made' });
  await a.next((m) => m.text === 'via b-made');
});

test('bind takes [::1]:port and localhost:port, also as an array in one start(); the peer ip of an IPv6 client is ::1', async (t) => {
  const server = await startServer({
    servers: [{ bind: ['[::1]:0', 'localhost:0'], workerPath: fixture('worker.mjs'), threads: 1 }],
  });
  const [p1, p2] = server.ports;
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.terminate();
    await server.stop();
  });
  const v6 = await Client.connect(p1, { host: '[::1]', headers: { 'x-report-open': '1' } });
  const named = await Client.connect(p2, { host: 'localhost' });
  clients.push(v6, named);
  assert.equal((await v6.nextType('open')).ip, '::1');
  assert.equal((await v6.ask({ op: 'sub', ch: 'v6' })).result, true);
  named.cmd({ op: 'pub', ch: 'v6', data: 'across address families' });
  await v6.next((m) => m.text === 'across address families');
});

test('registerWorkerThread on the main thread takes its delivery options: ordered, and handlerTimeout closing the socket with 1011', async (t) => {
  const server = await startServer({ registerMain: fixture('worker.mjs'), registerMainOptions: { ordered: true, handlerTimeout: 300 }, servers: [{ bind: '127.0.0.1:0' }] });
  const [port] = server.ports;
  t.after(() => server.stop());
  const c = await Client.connect(port);
  t.after(() => c.terminate());
  // Ordered, the release waits for the await it would release: the await's handler times out.
  c.cmd({ op: 'await', key: 'k' });
  c.cmd({ op: 'release', key: 'k' });
  assert.deepEqual(await withTimeout(c.closed, 10_000, 'the close after handlerTimeout'), { code: 1011, reason: 'handleTextMessage failed' });
});

test('two listeners each with their own workerPath and module kind (ESM and CommonJS)', async (t) => {
  const server = await startServer({
    servers: [
      { bind: '127.0.0.1:0', workerPath: fixture('worker.cjs'), threads: 1 },
      { bind: '127.0.0.1:0', workerPath: 'test/fixtures/worker.cjs', threads: 1 },
    ],
  });
  const [p1, p2] = server.ports;
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.terminate();
    await server.stop();
  });
  const a = await Client.connect(p1, { headers: { 'x-sub': 'cjs-room' } });
  const b = await Client.connect(p2, { headers: { 'x-sub': 'cjs-room' } });
  clients.push(a, b);
  a.send('whoami');
  const me = (await a.next()).json;
  assert.equal(me.module, 'cjs');
  a.send('pub:cjs-room|hello from cjs');
  await b.next((m) => m.text === 'hello from cjs');
  await a.next((m) => m.text === 'hello from cjs');
  // handleOpen from module.exports refuses too.
  await assert.rejects(Client.connect(p2, { headers: { 'x-open': 'false' } }), { statusCode: 403 });
});

test('registerWorkerThread on the main thread, then start without workerPath', async (t) => {
  const server = await startServer({ registerMain: fixture('worker.mjs'), servers: [{ bind: '127.0.0.1:0' }] });
  const [port] = server.ports;
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.terminate();
    await server.stop();
  });
  const c = await Client.connect(port, { headers: { 'x-open': 'live' } });
  clients.push(c);
  await c.nextType('hello');
  assert.equal((await c.ask({ op: 'whoami' })).threadId, 0);

  // Registering again replaces the handlers; events without a handler are skipped.
  await c.ask({ op: 'replace' });
  c.send(Buffer.from([1, 2, 3])); // no handleBinaryMessage any more: skipped
  c.send('after');
  assert.equal((await c.next((m) => m.text?.startsWith('replaced:'))).text, 'replaced:after');
  // No handleOpen any more: a connection that the old one would refuse is accepted.
  const d = await Client.connect(port, { headers: { 'x-open': 'false' } });
  clients.push(d);
  d.send('hi');
  assert.equal((await d.next()).text, 'replaced:hi');
  assert.equal(c.messages.filter((m) => m.binary).length, 0);
});

test('1,000 clients subscribed to one channel each receive a broadcast exactly once', { timeout: 120_000 }, async (t) => {
  const server = await startServer({ servers: [{ bind: '127.0.0.1:0', workerPath: fixture('worker.mjs'), threads: 4 }] });
  const [port] = server.ports;
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.terminate();
    await server.stop();
  });
  const N = 1000;
  // Subscribed in handleOpen: connected means subscribed.
  for (let i = 0; i < N; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, N - i) }, () => Client.connect(port, { headers: { 'x-sub': 'everyone' } })),
    );
    clients.push(...batch);
  }
  assert.equal(clients.length, N);
  const publisher = clients[0];
  publisher.cmd({ op: 'pub', ch: 'everyone', data: 'broadcast 1' });
  publisher.cmd({ op: 'pub', ch: 'everyone', data: 'broadcast 2' });
  // Every client gets both, in order; "broadcast 2" arriving proves that no second copy of
  // "broadcast 1" can still follow (one channel, one publisher: per-socket order holds).
  await Promise.all(clients.map((c) => c.next((m) => m.text === 'broadcast 2', 30_000)));
  for (const c of clients) {
    const texts = c.messages.filter((m) => m.text?.startsWith('broadcast')).map((m) => m.text);
    assert.deepEqual(texts, ['broadcast 1', 'broadcast 2']);
  }
});

test('a worker that crashes is replaced; the other clients keep working and new ones are served', { timeout: 60_000 }, async (t) => {
  // At debug level the broker logs each worker's registration: the replacement's is awaited below.
  const server = await startServer({ servers: [{ bind: '127.0.0.1:0', workerPath: fixture('worker.mjs'), threads: 2 }] }, { env: { WSBROKER_LOG: 'debug' } });
  const [port] = server.ports;
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.terminate();
    await server.stop();
  });
  const connect = async () => {
    const c = await Client.connect(port);
    clients.push(c);
    return c;
  };
  // Find two clients on different workers.
  const byThread = new Map();
  for (let i = 0; i < 8 && byThread.size < 2; i++) {
    const c = await connect();
    const { threadId } = await c.ask({ op: 'whoami' });
    if (!byThread.has(threadId)) byThread.set(threadId, c);
  }
  assert.equal(byThread.size, 2, 'two workers seen');
  const [[deadThread, victim], [liveThread, survivor]] = [...byThread];

  victim.cmd({ op: 'exit', code: 7 });
  await server.waitForStderr(new RegExp(`worker thread ${deadThread} .*died.*exit code 7`));
  // The survivor is unaffected.
  assert.equal((await survivor.ask({ op: 'whoami' })).threadId, liveThread);
  // The victim's socket stays open and is handled by a live worker.
  const moved = await victim.ask({ op: 'whoami' });
  assert.notEqual(moved.threadId, deadThread);
  // New connections are served, by the replacement worker too once it has registered (workers 1
  // and 2 were the first two): round-robin then spreads two new connections over both workers.
  await server.waitForStderr(/"worker":3,.*"msg":"worker registered"/, 15_000);
  const threads = new Set();
  for (let i = 0; i < 2; i++) {
    const c = await connect();
    threads.add((await c.ask({ op: 'whoami' })).threadId);
    c.terminate();
  }
  assert.ok(!threads.has(deadThread));
  assert.equal(threads.size, 2, `a replacement worker serves new connections (threads seen: ${[...threads]})`);
});

test('a worker module that keeps crashing is restarted with a doubling delay', { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsbroker-crash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const crashLog = path.join(dir, 'crash.log');
  const server = await startServer({ servers: [{ bind: '127.0.0.1:0', workerPath: fixture('crash-worker.mjs'), threads: 1 }] }, { env: { CRASH_LOG: crashLog } });
  t.after(() => server.stop());
  const times = (what) => readFileSync(crashLog, 'utf8').split('\n').filter((l) => l.startsWith(`${what} `)).map((l) => Number(l.split(' ')[1]));
  await until('four replacements to start', () => times('start').length, (n) => n >= 5);
  const [exits, starts] = [times('exit'), times('start')];
  // From each death to the next worker's start, at least the delay (the loop's clock and Date.now() may differ by a tick).
  const gaps = exits.slice(0, 4).map((exit, i) => starts[i + 1] - exit);
  const delays = [100, 200, 400, 800];
  assert.ok(gaps.every((gap, i) => gap >= delays[i] - 2), `from each death to the next start: ${gaps.join(', ')} ms; at least ${delays.join(', ')}`);
  const deathsLogged = () => server.stderr.match(/crash-worker\.mjs\) died \(exit code 3\)/g)?.length ?? 0;
  await until('each death to be logged', deathsLogged, (n) => n >= 4);
});

test('the delay before replacing a worker that keeps crashing doubles from 100 ms up to 30 s', () => {
  const { nextBackoff } = createRequire(import.meta.url)('../lib/js/supervisor.cjs');
  const delays = [];
  for (let d = 0, i = 0; i < 11; i++) delays.push((d = nextBackoff(d)));
  assert.deepEqual(delays, [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
});
