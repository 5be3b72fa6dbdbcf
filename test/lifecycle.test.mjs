// close(), stop(), and the limits of start(): what a client and the handlers see.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Client, fixture, isListening, listeningPorts, refusedStatus, withTimeout } from './helpers.mjs';
import { e2eServer, until } from './harness.mjs';

/** Starts the e2e server with the lifecycle worker, the given start() options and e2eServer's own; resolves with { child, port, events, stats }. */
async function lifecycleServer(t, options = {}, serverOptions = {}) {
  const { server, port, events, stats } = await e2eServer(t, { workerPath: fixture('lifecycle-worker.mjs'), ...options }, serverOptions);
  return { child: server, port, events, stats };
}

/** Opens a client and returns it with its socket id. */
async function client(port, options) {
  const c = await Client.connect(port, options);
  c.send('id');
  const id = Number((await c.next((m) => m.text?.startsWith('id '))).text.slice(3));
  return { c, id };
}

/** Completes an upgrade over a raw TCP socket and then neither reads nor answers anything. */
function silentClient(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('error', reject);
    s.once('connect', () => {
      s.write(
        'GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
    });
    let head = '';
    const onData = (chunk) => {
      head += chunk.toString('latin1');
      if (head.includes('\r\n\r\n')) {
        s.off('data', onData);
        s.pause();
        assert.match(head, /^HTTP\/1\.1 101 /);
        resolve(s);
      }
    };
    s.on('data', onData);
  });
}

test('close(): the client gets the code and reason, handleClose runs once; bad codes and reasons are TypeErrors', async (t) => {
  const { port, events } = await lifecycleServer(t);
  const observer = await Client.connect(port, { headers: { 'x-observer': '1' } });
  t.after(() => observer.terminate());
  const { c, id } = await client(port);
  c.send('badclose');
  const bad = JSON.parse((await c.next((m) => m.text?.startsWith('{'))).text);
  for (const name of ['code 1005', 'code 2999', 'code 5000', 'code 3000.5', 'code "3000"']) {
    assert.match(bad[name], /^TypeError: close: code must be 1000 or an integer from 3000 to 4999/, name);
  }
  assert.match(bad['reason of 124 bytes'], /^TypeError: close: reason must be a string of at most 123 bytes/);
  assert.match(bad['reason not a string'], /^TypeError: close: reason/);
  assert.match(bad['id 0'], /^TypeError: close: socketId/);
  assert.equal(bad['unknown id'], 'returned false');

  c.send('close 4321 going home, grüße');
  assert.deepEqual(await withTimeout(c.closed, 10_000, 'the close'), { code: 4321, reason: 'going home, grüße' });
  await observer.next((m) => m.text === `close ${id} 4321`);
  assert.equal(events().filter((e) => e.startsWith(`close ${id} `)).length, 1);
});

for (const threads of [0, 2]) {
  test(`stop() with threads: ${threads}: every socket gets 1001, every handleClose runs with 1001, the process exits by itself`, async (t) => {
    const { child, port, events } = await lifecycleServer(t, { threads });
    const clients = await Promise.all(Array.from({ length: 20 }, () => client(port)));
    child.send('stop');
    const codes = await Promise.all(clients.map(({ c }) => withTimeout(c.closed, 15_000, 'a close')));
    assert.deepEqual(new Set(codes.map((c) => c.code)), new Set([1001]));
    await child.waitForLine(/^stopped$/, 15_000);
    const closed = events().filter((e) => e.startsWith('close '));
    assert.deepEqual(closed.sort(), clients.map(({ id }) => `close ${id} 1001`).sort(), 'one handleClose per socket, with 1001, before stop() resolved');
    assert.equal(await isListening(port), false);
    child.proc.stdin.end();
    const status = await withTimeout(child.exited, 10_000, 'the stopped server to exit by itself');
    assert.deepEqual(status, { code: 0, signal: null }, child.stderr);
  });
}

test('start() works again after stop()', async (t) => {
  const { child, port } = await lifecycleServer(t);
  const before = await client(port);
  child.send('stop');
  await child.waitForLine(/^stopped$/, 15_000);
  await withTimeout(before.c.closed, 10_000, 'the close');
  const from = child.lines.length;
  child.send('start');
  const [portAgain] = await listeningPorts(child, 30_000, from);
  const after = await client(portAgain);
  t.after(() => after.c.terminate());
  assert.ok(after.id > before.id, 'socket ids continue');
  after.c.send('echo again');
  await after.c.next((m) => m.text === 'again');
});

test('maxPayload: a larger message closes the connection with 1009', async (t) => {
  const { port } = await lifecycleServer(t, { maxPayload: 1000 });
  const { c } = await client(port);
  c.send('echo ' + 'x'.repeat(990)); // 995 bytes: fine
  await c.next((m) => m.text?.length === 990);
  c.send('x'.repeat(1001));
  assert.equal((await withTimeout(c.closed, 10_000, 'the close')).code, 1009);
});

test('openTimeout: a handleOpen that never settles gets HTTP 503 after the timeout start() was given', async (t) => {
  const { port } = await lifecycleServer(t, { threads: 1, openTimeout: 200 });
  // Well before the default of 10 s.
  assert.equal(await withTimeout(refusedStatus(port, { headers: { 'x-never-open': '1' } }), 5000, 'the refusal'), 503);
});

test('maxConnections: one more connection than the limit gets HTTP 503; a freed place is taken again', async (t) => {
  const { port } = await lifecycleServer(t, { maxConnections: 3 });
  const observer = await Client.connect(port, { headers: { 'x-observer': '1' } });
  t.after(() => observer.terminate());
  const a = await client(port);
  const b = await client(port);
  t.after(() => b.c.terminate());
  assert.equal(await refusedStatus(port), 503);
  await a.c.close();
  await observer.next((m) => m.text?.startsWith(`close ${a.id} `)); // handleClose is the broker's last step
  const again = await client(port);
  again.c.terminate();
});

test('maxBackpressure: a client that stops reading is closed with 1008, and handleClose gets 1008; the others keep receiving', async (t) => {
  const { port, stats } = await lifecycleServer(t, { maxBackpressure: 1 << 20 });
  const observer = await Client.connect(port, { headers: { 'x-observer': '1' } });
  t.after(() => observer.terminate());
  const slow = await client(port);
  const other = await client(port);
  t.after(() => other.c.terminate());
  slow.c.ws._socket.pause(); // reads nothing more: the server's queue for it grows
  slow.c.send('flood 400 65536'); // 25 MiB toward a client that does not read
  await observer.next((m) => m.text?.startsWith(`close ${slow.id} `), 20_000, 'the slow client to be closed');
  assert.deepEqual((await stats()).closed, { 1008: 1 }, 'the code handleClose got');
  other.c.send('echo still here');
  await other.c.next((m) => m.text === 'still here');
  // The client, which stopped reading, may see its connection end before the close frame: what it
  // sees is the kernel's, what handleClose got is the server's.
  slow.c.ws._socket.resume();
  await withTimeout(slow.c.closed, 10_000, 'the slow client to see the end');
});

test('idleTimeout: a client that answers pings stays open; one that answers nothing is closed, and handleClose gets 1001', async (t) => {
  const { port, stats } = await lifecycleServer(t, { idleTimeout: 200 });
  const observer = await Client.connect(port, { headers: { 'x-observer': '1' } });
  t.after(() => observer.terminate());
  const lively = await client(port);
  t.after(() => lively.c.terminate());
  const silent = await silentClient(port);
  t.after(() => silent.destroy());
  const isLaterOpen = (m) => /^open \d+$/.test(m.text ?? '') && Number(m.text.slice(5)) > lively.id;
  const silentId = Number((await observer.next(isLaterOpen)).text.slice(5));
  await observer.next((m) => m.text?.startsWith(`close ${silentId} `), 10_000, 'the silent client to be closed');
  assert.deepEqual((await stats()).closed, { 1001: 1 }, 'the code handleClose got');
  // The ws client answered every ping meanwhile (at least two idle periods have passed).
  lively.c.send('echo alive');
  await lively.c.next((m) => m.text === 'alive');
});

test('a worker that falls behind: its sockets stop being read (TCP pushes back) with at most 8 MiB of events waiting, nothing is lost', async (t) => {
  // idleTimeout is far below the 8 s the worker is blocked: a socket paused for its worker is not idle.
  const { port, stats } = await lifecycleServer(t, { threads: 1, idleTimeout: 300 });
  const { c } = await client(port);
  t.after(() => c.terminate());
  const MIB = 1 << 20;
  c.send('block 8000'); // its `blocking` goes out with its batch, once the block ends
  const mib = Buffer.alloc(MIB, 0x62);
  for (let i = 0; i < 64; i++) c.send(mib);
  c.send(Buffer.from([1]));
  // While the worker is blocked the broker queues the socket's events for it until more than
  // 8 MiB wait, then stops reading it: the backlog stops growing past 8 MiB and one more event.
  const waitingBytes = async () => (await stats()).workers.reduce((sum, w) => sum + w.waitingBytes, 0);
  let last;
  const settled = await until('the backlog to pass 8 MiB and stop growing', waitingBytes, (n) => {
    const same = n === last;
    last = n;
    return same && n >= 8 * MIB;
  }, 6000);
  assert.ok(settled <= 9 * MIB + 1024, `${settled} bytes of events wait for the worker: more than 8 MiB and one 1 MiB message`);
  // Once the worker catches up, reading resumes and every message arrives.
  await c.next((m) => m.text === 'blocking', 30_000);
  assert.equal((await c.next((m) => m.text?.startsWith('got '), 30_000)).text, 'got 64');
});

test('a worker that hangs is terminated within 5 s and replaced; its sockets are served by the others', async (t) => {
  const { child, port } = await lifecycleServer(t, { threads: 2 });
  const stuck = await client(port); // round-robin: the two clients are on different workers
  const other = await client(port);
  t.after(() => {
    stuck.c.terminate();
    other.c.terminate();
  });
  const started = Date.now();
  stuck.c.send('hang');
  await stuck.c.next((m) => m.text === 'hanging');
  stuck.c.send('echo after the hang'); // queued behind the hung handler
  other.c.send('echo meanwhile');
  await other.c.next((m) => m.text === 'meanwhile');
  await stuck.c.next((m) => m.text === 'after the hang', 15_000, 'the stuck socket to be served again');
  const took = Date.now() - started;
  assert.ok(took < 7000, `re-served after ${took} ms`);
  await child.waitForStderr(/did not answer for 4000 ms/);
  // The replacement serves new connections too.
  const fresh = await client(port);
  fresh.c.send('echo fresh');
  await fresh.c.next((m) => m.text === 'fresh');
  fresh.c.terminate();
});

test('a worker kept busy by batches that never stop coming is not taken for hung: its event loop turns in between', async (t) => {
  // Each client keeps one 1 ms handler call in flight, so that whenever a batch ends the others'
  // messages wait: Go hands the next batch at once, and Node's threadsafe function would run a
  // thousand of them in a row before the thread's timers and the watchdog's ping. One turn of the
  // loop runs at most 16 batches in its poll phase and 17 in its check phase (napi/watch.c), each
  // of at most one event per client: a 0 ms timer set by a handler, due once that handler has spun,
  // fires at the next turn, before that many more handler calls.
  const TURN_BATCHES = 16;
  const { child, port } = await lifecycleServer(t, { threads: 1 });
  const clients = await Promise.all(Array.from({ length: 20 }, () => client(port)));
  t.after(() => clients.forEach(({ c }) => c.terminate()));
  const SPINS = 100; // per client
  await Promise.all(
    clients.map(async ({ c }) => {
      for (let i = 0; i < SPINS; i++) {
        c.send('spin 1');
        await c.next((m) => m.text === 'spun', 10_000);
      }
    }),
  );
  clients[0].c.send('lag');
  const lag = Number((await clients[0].c.next((m) => m.text?.startsWith('lag '))).text.slice(4));
  const bound = (2 * TURN_BATCHES + 1) * clients.length;
  assert.ok(lag <= bound, `a handler's 0 ms timer fired after ${lag} more handler calls (of ${SPINS * clients.length}), more than ${bound}`);
  assert.doesNotMatch(child.stderr, /did not answer|died/);
});

test('on one core, where each worker thread reads its own sockets: echoes and microtask replies in order, a hung worker replaced, stop() and exit', async (t) => {
  // Pinned to one core, each thread watches the poller its sockets live on while messages flow
  // (wsb_dispatch_ready) and reads and runs their batches itself; its watch must not keep a
  // thread or the process alive, nor outlive a thread that is terminated. A replacement takes the
  // poller of the worker it replaces, whose sockets other workers now serve.
  const { child, port } = await lifecycleServer(t, { threads: 2 }, { oneCore: true, env: { WSBROKER_LOG: 'debug' } });
  const clients = await Promise.all(Array.from({ length: 10 }, () => client(port)));
  await Promise.all(
    clients.map(async ({ c, id }) => {
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 30; i++) {
          c.send(`echo ${id}:${round}:${i}`);
          c.send(`later ${id}:${round}:${i}`);
        }
        for (let i = 0; i < 30; i++) {
          assert.equal((await c.next((m) => !m.text.startsWith('later '))).text, `${id}:${round}:${i}`);
          assert.equal((await c.next((m) => m.text.startsWith('later '))).text, `later ${id}:${round}:${i}`);
        }
      }
    }),
  );
  // One at a time: each message is then a batch of its own, which the thread often reads and runs
  // itself (on_poller_ready), and the reply comes from a nextTick and a microtask after it.
  for (let i = 0; i < 100; i++) {
    clients[0].c.send(`later one:${i}`);
    assert.equal((await clients[0].c.next((m) => m.text.startsWith('later one:'))).text, `later one:${i}`);
  }
  const [stuck, ...others] = clients;
  stuck.c.send('hang');
  await stuck.c.next((m) => m.text === 'hanging');
  await child.waitForStderr(/did not answer for 4000 ms/, 15_000);
  for (const { c, id } of others) {
    c.send(`echo ${id} after`);
    await c.next((m) => m.text === `${id} after`);
  }
  await child.waitForStderr(/"worker":3,.*"msg":"worker registered"/, 15_000);
  const fresh = await Promise.all(Array.from({ length: 2 }, () => client(port))); // one on each worker
  clients.push(...fresh);
  for (let i = 0; i < 20; i++) {
    for (const { c, id } of [...others, ...fresh]) c.send(`echo ${id}:${i}`);
    for (const { c, id } of [...others, ...fresh]) assert.equal((await c.next(() => true)).text, `${id}:${i}`);
  }
  child.send('stop');
  const codes = await Promise.all(clients.map(({ c }) => withTimeout(c.closed, 15_000, 'a close')));
  assert.deepEqual(new Set(codes.map((c) => c.code)), new Set([1001]));
  await child.waitForLine(/^stopped$/, 15_000);
  child.proc.stdin.end();
  const status = await withTimeout(child.exited, 10_000, 'the stopped server to exit by itself');
  assert.deepEqual(status, { code: 0, signal: null }, child.stderr);
});

/** Sends `request` over a raw TCP connection; resolves with what the server sent before it closed. */
function rawExchange(port, request) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => resolve(got));
    s.on('connect', () => s.write(request));
  });
}

test('handshakeTimeout and maxHeaderBytes: slow and oversized upgrade requests are cut off; a plain GET gets 426 at once', async (t) => {
  const { port } = await lifecycleServer(t, { handshakeTimeout: 300, maxHeaderBytes: 1024 });
  const started = Date.now();
  assert.equal(await withTimeout(rawExchange(port, 'GET / HTTP/1.1\r\nHost: slow\r\n'), 5000, 'the slow request to be cut off'), '');
  assert.ok(Date.now() - started >= 250, 'not before the timeout');
  const big = await rawExchange(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(2000)}\r\n\r\n`);
  assert.match(big, /^HTTP\/1\.1 431 /);
  const plain = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.match(plain, /^HTTP\/1\.1 426 /);
});
