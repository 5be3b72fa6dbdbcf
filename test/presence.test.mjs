// The request URL in handleOpen, sendToChannel's exceptSocketId, subscriberCount, subscriptions,
// and the close code and reason handleClose gets.
import { test } from 'node:test';
import WebSocket from 'ws';
import assert from 'node:assert/strict';
import { Client, fixture, racyFreePort, withTimeout } from './helpers.mjs';
import { e2eServer, until } from './harness.mjs';

async function presenceServer(t, options = {}) {
  return (await e2eServer(t, { workerPath: fixture('presence-worker.mjs'), ...options })).port;
}

/** Connects and returns the client with the request URL its handleOpen saw. */
async function join(port, path = '/') {
  const c = await Client.connect(port, { path });
  const url = (await c.next((m) => m.text?.startsWith('url '))).text.slice(4);
  return { c, url };
}

test('handleOpen gets the request URL; sendToChannel skips exceptSocketId; subscriberCount and subscriptions', async (t) => {
  const port = await presenceServer(t);
  const a = await join(port, '/chat/room?token=abc%20d&x=1');
  assert.equal(a.url, '/chat/room?token=abc%20d&x=1');
  const b = await join(port);
  t.after(() => {
    a.c.terminate();
    b.c.terminate();
  });
  a.c.send('say hello');
  await a.c.next((m) => m.text === 'said hello');
  await b.c.next((m) => m.text === 'hello');
  a.c.send('count');
  assert.equal((await a.c.next((m) => m.text?.startsWith('count '))).text, 'count 2 2 0');
  assert.ok(!a.c.messages.some((m) => m.text === 'hello'), 'the sender did not get its own message');
  a.c.send('join other');
  await a.c.next((m) => m.text === 'joined other');
  a.c.send('subs');
  assert.equal((await a.c.next((m) => m.text?.startsWith('subs '))).text, 'subs other,room 0');
});

test('handleClose gets the close code and reason: the client\'s, the server\'s close(), 1006 for a dropped connection', async (t) => {
  const port = await presenceServer(t);
  const watcher = await join(port);
  t.after(() => watcher.c.terminate());
  const closedLine = (m) => m.text?.startsWith('closed ');

  const byClient = await join(port);
  byClient.c.ws.close(4005, 'bye bye');
  const first = (await watcher.c.next(closedLine)).text.split(' ');
  assert.deepEqual(first.slice(2), ['4005', 'bye', 'bye']);

  const dropped = await join(port);
  dropped.c.terminate();
  const second = (await watcher.c.next(closedLine)).text;
  assert.match(second, /^closed \d+ 1006 $/);

  const kicked = await join(port);
  watcher.c.send('count'); // the watcher and `kicked` are in the room
  await watcher.c.next((m) => m.text === 'count 2 2 0');
  const id = Number(first[1]) + 2; // ids are consecutive here: byClient, dropped, kicked
  watcher.c.send(`kick ${id}`);
  assert.deepEqual(await withTimeout(kicked.c.closed, 10_000, 'the kick'), { code: 4010, reason: 'kick' });
  assert.equal((await watcher.c.next(closedLine)).text, `closed ${id} 4010 kick`);
});

test('protocols: the first subprotocol the client offers that the server speaks is chosen; handleOpen sees the offer', async (t) => {
  const port = await presenceServer(t, { protocols: ['chat.v2', 'chat.v1'] });
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, ['chat.v1', 'chat.v2']);
  t.after(() => ws.terminate());
  const offered = new Promise((resolve) => ws.on('message', (m) => String(m).startsWith('offered ') && resolve(String(m))));
  await withTimeout(new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject))), 10_000, 'the upgrade');
  assert.equal(ws.protocol, 'chat.v1', 'the client\'s order decides');
  assert.equal(await withTimeout(offered, 10_000, 'the offer'), 'offered chat.v1,chat.v2');
  // A client offering nothing the server speaks gets no subprotocol (the ws client then refuses the connection itself).
  const other = new WebSocket(`ws://127.0.0.1:${port}/`, ['chat.v9']);
  const err = await withTimeout(new Promise((resolve) => other.once('error', resolve)), 10_000, 'the refusal');
  assert.match(err.message, /Server sent no subprotocol/);
});

test('stats(): connections, channels, messages and bytes, closes by code, worker queues', async (t) => {
  const port = await presenceServer(t);
  const a = await join(port);
  t.after(() => a.c.terminate());
  const ask = async () => {
    a.c.send('stats');
    return JSON.parse((await a.c.next((m) => m.text?.startsWith('stats '))).text.slice(6));
  };
  const before = await ask();
  const b = await join(port);
  b.c.send('say hi');
  await a.c.next((m) => m.text === 'hi');
  b.c.ws.close(4321, 'done');
  await a.c.next((m) => m.text?.startsWith('closed ') && m.text.includes(' 4321 '));
  const after = await ask();
  assert.equal(after.connections, before.connections);
  assert.equal(after.accepted, before.accepted + 1);
  assert.equal(after.channels, 1);
  assert.equal(after.messagesIn, before.messagesIn + 2, 'the say and the second stats (the first was counted before it ran)');
  assert.ok(after.messagesOut > before.messagesOut && after.bytesOut > before.bytesOut && after.bytesIn > before.bytesIn);
  assert.equal(after.closed['4321'], (before.closed['4321'] ?? 0) + 1);
  assert.equal(after.workers.length, 2);
  for (const w of after.workers) assert.deepEqual(Object.keys(w).sort(), ['id', 'inFlight', 'waiting', 'waitingBytes']);
  const go = after.go;
  assert.ok(go.heapBytes > 0 && go.stackBytes > 0 && go.mappedBytes >= go.heapBytes + go.stackBytes, JSON.stringify(go));
  assert.ok(go.goroutines >= 2, "the listener's and the runtime's own at least");
});

test('stats().queuedBytes: a message queued and not yet written counts its frame and 32 bytes; nothing once written', async (t) => {
  const port = await presenceServer(t);
  const N = 100_000;
  const c = await Client.connect(port, { headers: { 'x-queue': String(N) } });
  t.after(() => c.terminate());
  await c.next((m) => m.binary?.length === N);
  const queued = Number((await c.next((m) => m.text?.startsWith('queued '))).text.slice(7));
  const header = 10; // a frame of 64 KiB or more
  assert.equal(queued, N + header + 32);
  const ask = async () => {
    c.send('stats');
    return JSON.parse((await c.next((m) => m.text?.startsWith('stats '))).text.slice(6)).queuedBytes;
  };
  await until('every byte written to the only client', ask, (n) => n === 0);
});

test('metrics: the figures in Prometheus text format, scraped over HTTP', async (t) => {
  // The metrics server's port is not in start()'s `addresses`: a free one is picked.
  const metricsPort = await racyFreePort();
  const port = await presenceServer(t, { metrics: `127.0.0.1:${metricsPort}` });
  const a = await join(port);
  t.after(() => a.c.terminate());
  a.c.send('say nobody else is here');
  await a.c.next((m) => m.text === 'said nobody else is here');
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain/);
  const body = await res.text();
  for (const line of ['wsbroker_connections 1', 'wsbroker_connections_accepted_total 1', 'wsbroker_channels 1', 'wsbroker_messages_received_total 1']) {
    assert.ok(body.includes(`${line}\n`), `${line} in\n${body}`);
  }
  assert.match(body, /^wsbroker_worker_events_waiting\{worker="1"\} 0$/m);
});
