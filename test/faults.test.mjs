// Load and faults through the whole stack (test/fixtures/e2e-server.mjs in a child process):
// connection churn while broadcasting, clients that vanish without a close frame, a half-open
// connection, a worker thread killed mid-stream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from './helpers.mjs';
import { FIN, OP, RawClient, clientFrame, closeCounts, e2eServer, mib, rssOf, until, withTimeout } from './harness.mjs';

/**
 * Follows the worker's announcements (`open ID TAG`, `close ID`) through an observer client:
 * `tagged(tag)` lists the ids opened with that tag, `closes(id)` counts the handleClose calls of
 * one, `closedAll(ids)` resolves once each of them has closed.
 */
async function watch(t, port) {
  const observer = await Client.connect(port, { headers: { 'x-observer': '1' } });
  t.after(() => observer.terminate());
  const tags = new Map();
  const closed = new Map();
  const waiters = new Set();
  observer.ws.on('message', (data) => {
    const [kind, id, tag] = data.toString().split(' ');
    if (kind === 'open') tags.set(Number(id), tag);
    else if (kind === 'close') closed.set(Number(id), (closed.get(Number(id)) ?? 0) + 1);
    for (const w of [...waiters]) w();
  });
  return {
    tagged: (tag) => [...tags].filter(([, v]) => v === tag).map(([id]) => id),
    closes: (id) => closed.get(id) ?? 0,
    closedAll(ids, ms = 20_000, what = 'handleClose') {
      let pending = ids.filter((id) => !closed.has(id));
      let w;
      let timer;
      return new Promise((resolve, reject) => {
        w = () => {
          pending = pending.filter((id) => !closed.has(id));
          if (pending.length === 0) resolve();
        };
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}: ${pending.length} of ${ids.length} sockets not closed (${pending.slice(0, 10)}…)`)), ms);
        waiters.add(w);
        w();
      }).finally(() => {
        waiters.delete(w);
        clearTimeout(timer);
      });
    },
  };
}

/** A ws client with its socket id and worker thread id. */
async function client(port, headers) {
  const c = await Client.connect(port, { headers });
  c.send('!id');
  const [, id, thread] = (await c.next((m) => m.text?.startsWith('id '))).text.split(' ');
  return { c, id: Number(id), thread: Number(thread) };
}

test('churn: connect and disconnect in a loop while broadcasting; afterwards no churned socket is live or subscribed', { timeout: 90_000 }, async (t) => {
  const DURATION = 10_000;
  const MAX_CONNECTIONS = 20_000;
  const PARALLEL = 32;
  const { server, port } = await e2eServer(t, { threads: 2 });
  const w = await watch(t, port);
  const steady = await client(port, { 'x-sub': 'churn' });
  const broadcaster = await client(port);
  t.after(() => {
    steady.c.terminate();
    broadcaster.c.terminate();
  });

  /** One connection of the churn: open, maybe wait for a broadcast, end in one of three ways. */
  let made = 0;
  const ends = { close: 0, terminate: 0, 'close-at-once': 0 };
  async function cycle(i, tag) {
    const c = await Client.connect(port, { headers: { 'x-sub': 'churn', 'x-tag': tag } });
    made++;
    const how = ['close', 'terminate', 'close-at-once'][i % 3];
    ends[how]++;
    if (how === 'close') {
      await c.next((m) => m.text?.startsWith('b'), 10_000, 'a broadcast');
      await c.close();
    } else if (how === 'terminate') {
      c.terminate(); // no close frame
      await c.closed;
    } else {
      c.ws.close(4000); // right after the upgrade
      await c.closed;
    }
  }
  async function churn(tag, until, max) {
    let i = 0;
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        while (Date.now() < until && i < max) await cycle(i++, tag);
      }),
    );
  }

  // Warm up (pools, JIT) with the broadcaster running, then take the baseline.
  let published = 0;
  const pub = setInterval(() => broadcaster.c.send(`!pub churn b${++published}`), 5);
  t.after(() => clearInterval(pub));
  await churn('warmup', Date.now() + DURATION, 500);
  await w.closedAll(w.tagged('warmup'));
  const baseline = rssOf(server.pid);

  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssOf(server.pid));
  }, 200);
  const started = Date.now();
  made = 0;
  await churn('churn', started + DURATION, MAX_CONNECTIONS);
  const churnMs = Date.now() - started;
  clearInterval(pub);
  clearInterval(sampler);
  peak = Math.max(peak, rssOf(server.pid));

  // The steady subscriber got every broadcast once, in order.
  broadcaster.c.send('!pub churn last');
  await steady.c.next((m) => m.text === 'last', 10_000, 'the last broadcast');
  const got = steady.c.messages.filter((m) => /^b\d+$/.test(m.text ?? '')).map((m) => Number(m.text.slice(1)));
  assert.deepEqual(got, Array.from({ length: published }, (_, k) => k + 1), 'the steady subscriber got every broadcast exactly once, in order');

  // Every churned socket had its handleClose; none is live or still in the channel.
  const ids = w.tagged('churn');
  assert.equal(ids.length, made, 'one handleOpen per churned connection');
  await w.closedAll(ids, 20_000, 'handleClose of the churned sockets');
  const [lo, hi] = [Math.min(...ids), Math.max(...ids)];
  assert.equal(hi - lo + 1, ids.length, 'the churned ids are contiguous');
  const probe = JSON.parse((await server.ask(`probe churn ${lo} ${hi}`, /^probe (.*)$/, 30_000))[1]);
  assert.deepEqual(probe, { checked: ids.length, subscribed: [], live: [] });
  // The probe does see a live subscriber: a fresh one is reported as both.
  const fresh = await client(port, { 'x-sub': 'churn' });
  t.after(() => fresh.c.terminate());
  broadcaster.c.send('!pub churn to the fresh one');
  await fresh.c.next((m) => m.text === 'to the fresh one');
  const control = JSON.parse((await server.ask(`probe churn ${fresh.id} ${fresh.id}`, /^probe (.*)$/))[1]);
  assert.deepEqual(control, { checked: 1, subscribed: [fresh.id], live: [fresh.id] });
  for (const id of ids) assert.equal(w.closes(id), 1, `handleClose of ${id} ran ${w.closes(id)} times`);

  const after = rssOf(server.pid);
  console.log(
    `churn: ${made} connections in ${churnMs} ms (${JSON.stringify(ends)}), ${published} broadcasts; ` +
      `server RSS baseline ${mib(baseline)}, peak ${mib(peak)}, after ${mib(after)} (printed, not asserted: what the allocators return to the system is theirs)`,
  );
});

test('clients that vanish without a close frame (FIN, RST, mid-frame, mid-message): handleClose once each, the others unaffected', async (t) => {
  const { server, port, events } = await e2eServer(t, { threads: 2 });
  const w = await watch(t, port);
  const bystander = await client(port);
  t.after(() => bystander.c.terminate());
  const ids = [];

  const a = await client(port);
  ids.push(a.id);
  a.c.terminate(); // ws: socket.destroy(), a FIN without a close frame

  const raws = [];
  for (let k = 0; k < 3; k++) {
    const r = await RawClient.connect(port);
    t.after(() => r.destroy());
    raws.push(r);
    ids.push(Number((await r.ask('!id')).split(' ')[1]));
  }
  raws[0].socket.resetAndDestroy(); // RST
  await raws[1].write(clientFrame(FIN | OP.text, 'never finished').subarray(0, 9), { byteByByte: false });
  raws[1].destroy(); // in the middle of a frame
  await raws[2].write(clientFrame(OP.text, 'first fragment'), { byteByByte: false });
  raws[2].socket.resetAndDestroy(); // in the middle of a fragmented message

  // A connection dropped right after its upgrade request, while handleOpen may be running.
  await new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nx-tag: dropped\r\n\r\n', () => {
        s.destroy();
        resolve();
      });
    });
    s.on('error', reject);
  });

  await w.closedAll(ids);
  for (let k = 0; k < 20; k++) {
    bystander.c.send(`after ${k}`);
    await bystander.c.next((m) => m.text === `after ${k}`);
  }
  await server.ask('stop', /^stopped$/, 15_000); // every handleClose delivered
  for (const [id, n] of closeCounts(events, ids)) assert.equal(n, 1, `handleClose of socket ${id} ran ${n} times`);
  // The dropped upgrade: if handleOpen saw it (and accepted it), handleClose ran for it once too.
  const dropped = events().filter((e) => e.endsWith(' dropped')).map((e) => Number(e.split(' ')[1]));
  console.log(`an upgrade dropped at once: handleOpen ${dropped.length ? 'ran' : 'did not run'}`);
  for (const [id, n] of closeCounts(events, dropped)) assert.equal(n, 1, `handleClose of the dropped upgrade ${id} ran ${n} times`);
  assert.equal(server.exitStatus, undefined, 'the server is still running');
});

test('a half-open connection (the client stops responding entirely) is pinged, closed with 1001, and handleClose runs once; a live client stays', async (t) => {
  const IDLE = 300;
  const { server, port, events } = await e2eServer(t, { threads: 2, idleTimeout: IDLE });
  const w = await watch(t, port);
  const lively = await client(port); // the ws client answers pings by itself
  t.after(() => lively.c.terminate());

  const silent = await RawClient.connect(port);
  t.after(() => silent.destroy());
  const silentId = Number((await silent.ask('!id')).split(' ')[1]);
  const midFrame = await RawClient.connect(port);
  t.after(() => midFrame.destroy());
  const midFrameId = Number((await midFrame.ask('!id')).split(' ')[1]);
  const started = Date.now();
  // From now on they neither read nor write (the kernel still acknowledges, as for a peer whose
  // application hangs); midFrame stops after half a frame.
  silent.socket.pause();
  await midFrame.write(clientFrame(FIN | OP.binary, Buffer.alloc(100)).subarray(0, 50), { byteByByte: false });
  midFrame.socket.pause();

  await w.closedAll([silentId, midFrameId], 20_000, 'the half-open connections to be closed');
  const took = Date.now() - started;
  // What the server sent meanwhile: a ping after IDLE ms, then a close frame with 1001.
  for (const [name, r] of [['silent', silent], ['mid-frame', midFrame]]) {
    r.socket.resume();
    await withTimeout(r.ended, 10_000, `the end of the ${name} connection`);
    assert.deepEqual(r.frames.slice(1).map((f) => f.op), [OP.ping, OP.close], `${name}: frames after the id`);
    assert.equal(r.frames.at(-1).payload.readUInt16BE(0), 1001, `${name}: close code`);
  }
  console.log(`half-open: closed and handleClose delivered after ${took} ms (idleTimeout ${IDLE} ms)`);

  lively.c.send('still open');
  await lively.c.next((m) => m.text === 'still open');
  await server.ask('stop', /^stopped$/, 15_000);
  for (const [id, n] of closeCounts(events, [silentId, midFrameId])) assert.equal(n, 1, `handleClose of socket ${id} ran ${n} times`);
});

const DIED = /worker thread (\d+) \(.*e2e-worker\.mjs\) died \(exit code 1\)/;
const numbers = (c) => c.messages.filter((m) => /^\d+$/.test(m.text ?? '')).map((m) => Number(m.text));

test('a worker killed mid-stream (process.exit in a handler): the server stays up, and every other client gets all its data', { timeout: 60_000 }, async (t) => {
  const N = 2000;
  const { server, port } = await e2eServer(t, { threads: 2 });
  const all = [];
  for (let k = 0; k < 9; k++) all.push(await client(port));
  t.after(() => all.forEach((x) => x.c.terminate()));
  const victim = all[0];
  const others = all.slice(1);
  const sameWorker = others.filter((x) => x.thread === victim.thread);
  const otherWorker = others.filter((x) => x.thread !== victim.thread);
  assert.ok(sameWorker.length > 0 && otherWorker.length > 0, 'the clients are spread over both workers');

  // Every other client streams N numbered messages; the victim kills its worker in the middle,
  // while the first halves are being handled and before the second halves are sent.
  for (const o of others) for (let k = 1; k <= N / 2; k++) o.c.send(`!seq ${k}`);
  victim.c.send('!exit');
  for (const o of others) for (let k = N / 2 + 1; k <= N; k++) o.c.send(`!seq ${k}`);
  await server.waitForStderr(DIED);

  // Every other client, on either worker: every message, once, in order (those of the dead
  // worker's clients that it had not handled were handed to the live worker).
  const expected = Array.from({ length: N }, (_, k) => k + 1);
  for (const o of others) {
    await o.c.next((m) => m.text === String(N), 30_000, `message ${N} on socket ${o.id}`);
    const where = o.thread === victim.thread ? 'dead worker' : 'other worker';
    assert.deepEqual(numbers(o.c), expected, `socket ${o.id} (${where}): every message once, in order`);
  }
  // The victim is served again too.
  victim.c.send('!seq 999999');
  await victim.c.next((m) => m.text === '999999', 20_000, 'the answer to the victim after the death of its worker');
  const report = others.map((o) => `socket ${o.id} (${o.thread === victim.thread ? 'dead worker' : 'other worker'}): ${numbers(o.c).filter((n) => n <= N).length} of ${N}`);
  console.log(`worker killed mid-stream: ${report.join('; ')}`);

  // The server is up: a new connection is served.
  const fresh = await client(port);
  t.after(() => fresh.c.terminate());
  fresh.c.send('served');
  await fresh.c.next((m) => m.text === 'served');
  assert.equal(server.exitStatus, undefined, 'the server process is still running');
});

test('a worker killed with events of other sockets queued behind the fatal one: those events are not lost', async (t) => {
  const { server, port, stats } = await e2eServer(t, { threads: 2 });
  const all = [];
  for (let k = 0; k < 4; k++) all.push(await client(port));
  t.after(() => all.forEach((x) => x.c.terminate()));
  const victim = all[0];
  const same = all.filter((x) => x !== victim && x.thread === victim.thread);
  assert.ok(same.length > 0, 'a client shares the victim worker');
  // While the worker is held (its `holding` goes out with its batch, after the hold), the fatal
  // event and then 100 events of each other socket queue up for it (the other worker is idle:
  // nothing waits for it); released, it gets them as one batch, whose events after the fatal one
  // the dying thread never handles.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsbroker-hold-'));
  const release = path.join(dir, 'release');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const queues = async () => (await stats()).workers;
  victim.c.send(`!hold ${release}`);
  await until('the holding batch to be in flight', queues, (ws) => ws.some((w) => w.inFlight === 1));
  const waiting = async () => Math.max(...(await queues()).map((w) => w.waiting));
  victim.c.send('!exit');
  await until('the fatal event to wait for the held worker', waiting, (n) => n === 1);
  for (const o of same) for (let k = 1; k <= 100; k++) o.c.send(`!seq ${k}`);
  await until('the other events to wait behind it', waiting, (n) => n === 1 + 100 * same.length);
  writeFileSync(release, '');
  await server.waitForStderr(DIED);
  assert.equal(Number(DIED.exec(server.stderr)[1]), victim.thread, 'the held worker died of the fatal event (and not of the watchdog)');
  for (const o of same) {
    o.c.send('!seq 999999');
    await o.c.next((m) => m.text === '999999', 20_000, `the answer to socket ${o.id} after the death of its worker`);
    assert.deepEqual(numbers(o.c).filter((n) => n !== 999999), Array.from({ length: 100 }, (_, k) => k + 1), `socket ${o.id}: the 100 messages queued behind the fatal event`);
  }
});

test('with no worker alive, events wait in stats() as worker -1 and reach the next worker that starts', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsbroker-broken-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const broken = path.join(dir, 'broken');
  const { server, port, stats } = await e2eServer(t, { threads: 1 }, { env: { WORKER_BROKEN: broken } });
  const [victim, other] = [await client(port), await client(port)];
  t.after(() => [victim, other].forEach((x) => x.c.terminate()));
  writeFileSync(broken, '');
  victim.c.send('!exit');
  await server.waitForStderr(DIED);
  other.c.send('!seq 1');
  await until('the message to wait for a worker', async () => (await stats()).workers, (ws) => ws.length === 1 && ws[0].id === -1 && ws[0].waiting === 1);
  rmSync(broken);
  await other.c.next((m) => m.text === '1', 20_000, 'the answer from the replacement worker');
  assert.deepEqual((await stats()).workers.map((w) => w.id).filter((id) => id === -1), [], 'nothing waits as worker -1 any more');
});
