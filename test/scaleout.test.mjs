// Several nodes, one Redis: each node a server process of its own (test/fixtures/server.mjs with
// `cluster`), plain `ws` clients, a redis-server started by each test. The cluster's channels,
// sockets addressed across nodes, interest routing seen from Redis, ordering, a node killed, Redis
// killed and restarted, a password, TLS, and the option's errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Child, fixture, freePort, startServer, withTimeout } from './helpers.mjs';
import { redisServer } from './harness.mjs';

/** Starts one node on a free port with `cluster`; resolves with { server, port }. */
async function startNode(t, cluster, env = {}) {
  const port = await freePort();
  const server = await startServer({ servers: [{ bind: `127.0.0.1:${port}`, workerPath: fixture('worker.mjs'), threads: 1, cluster }] }, { env });
  t.after(() => server.stop());
  return { server, port };
}

/**
 * Starts a redis-server (with `redisOptions`) and `count` nodes sharing it (with `options` added to
 * `cluster`, and `env`); resolves with { redis, nodes }, or undefined (the test skipped) without
 * redis-server.
 */
async function startCluster(t, count, { redisOptions, options = {}, env } = {}) {
  const redis = await redisServer(t, redisOptions);
  if (!redis) return undefined;
  const nodes = await Promise.all(Array.from({ length: count }, () => startNode(t, { redis: redis.url, ...options }, env)));
  return { redis, nodes };
}

/** Connects a client to node and resolves with it and its socket id. */
async function connect(t, node) {
  const c = await Client.connect(node.port);
  t.after(() => c.terminate());
  const { socketId } = await c.ask({ op: 'whoami' });
  return { c, id: socketId };
}

/** The node's stats().cluster, asked through client c. */
async function clusterStats(c) {
  return (await c.ask({ op: 'stats' })).result.cluster;
}

/** Polls `probe` (a node's figures, Redis's) until `ok` holds: they change in other processes, with no event to await here. */
async function until(what, probe, ok, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}; last: ${JSON.stringify(v)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Waits until every node's interest changes are confirmed by Redis. */
async function settled(...clients) {
  for (const c of clients) await until('pendingSubscribes 0', () => clusterStats(c), (s) => s.connected && s.pendingSubscribes === 0);
}

test('three nodes: channels, exceptions, sockets of other nodes, interest, counts, ids', async (t) => {
  const started = await startCluster(t, 3);
  if (!started) return;
  const { redis, nodes: [A, B, C] } = started;
  const a = await connect(t, A);
  const b = await connect(t, B);
  const b2 = await connect(t, B);
  const c = await connect(t, C);
  const ids = [a.id, b.id, b2.id, c.id];
  assert.equal(new Set(ids).size, 4, `ids distinct: ${ids}`);
  for (const id of ids) assert.ok(Number.isSafeInteger(id) && id > 2 ** 32, `id ${id}: slot·2^32 + n, a safe integer`);

  for (const x of [a, b, b2]) assert.equal((await x.c.ask({ op: 'sub', ch: 'room' })).result, true);
  await settled(a.c, b.c, c.c);
  assert.equal(redis.cli('PUBSUB', 'NUMSUB', 'wsb:c:room').split('\n')[1], '2', 'Redis: nodes A and B subscribed to the channel, C not');

  // A publication reaches every subscriber once; the exception may be a socket of another node.
  await a.c.ask({ op: 'pub', ch: 'room', data: 'one', except: b2.id });
  await c.c.ask({ op: 'pub', ch: 'room', data: 'two' });
  for (const x of [a, b]) {
    assert.equal((await x.c.next()).text, 'one');
    assert.equal((await x.c.next()).text, 'two');
  }
  assert.equal((await b2.c.next()).text, 'two');
  assert.equal((await c.c.ask({ op: 'stats' })).result.cluster.nodes, 3);
  assert.equal((await c.c.ask({ op: 'clusterCount', ch: 'room' })).result, 3);
  assert.equal((await a.c.ask({ op: 'clusterCount', ch: 'nobody' })).result, 0);

  // Sockets of another node: send, token, subscribe (false: not known here), copy, close.
  await a.c.ask({ op: 'sendTo', id: b.id, data: 'direct' });
  assert.equal((await b.c.next()).text, 'direct');
  await a.c.ask({ op: 'token', id: b.id, value: 'from A' });
  assert.equal((await a.c.ask({ op: 'sub', id: c.id, ch: 'c-only' })).result, false);
  await until('the subscription made from A on C', async () => (await c.c.ask({ op: 'subscriptions' })).result, (r) => r.includes('c-only'));
  assert.deepEqual((await a.c.ask({ op: 'subscriptions', id: c.id })).result, []);
  assert.equal((await b.c.ask({ op: 'whoami' })).token, 'from A');
  await a.c.ask({ op: 'copy', from: 'c-only', to: 'copied' });
  await until('the copy on C', async () => (await c.c.ask({ op: 'subscriptions' })).result, (r) => r.includes('copied'));
  assert.equal((await a.c.ask({ op: 'close', id: b2.id, code: 4001, reason: 'from A' })).result, true);
  assert.deepEqual(await withTimeout(b2.c.closed, 5000, 'the close from A'), { code: 4001, reason: 'from A' });

  // The last subscriber of B leaves: so does B's interest, in Redis.
  assert.equal((await b.c.ask({ op: 'unsub', ch: 'room' })).result, true);
  await settled(b.c);
  assert.equal(redis.cli('PUBSUB', 'NUMSUB', 'wsb:c:room').split('\n')[1], '1');
  const sc = await clusterStats(c.c);
  assert.deepEqual(sc.dropped, { disconnected: 0, slow: 0, decode: 0, tooLarge: 0 });
  assert.equal(sc.engine.startsWith('unix://'), true, sc.engine);
});

test('foreign and malformed messages on our Redis channels are counted and dropped; the metrics endpoint has the cluster figures', async (t) => {
  const redis = await redisServer(t);
  if (!redis) return;
  const metricsPort = await freePort();
  const port = await freePort();
  const A = { server: await startServer({ servers: [{ bind: `127.0.0.1:${port}`, workerPath: fixture('worker.mjs'), threads: 1, metrics: `127.0.0.1:${metricsPort}`, cluster: { redis: redis.url } }] }), port };
  t.after(() => A.server.stop());
  const a = await connect(t, A);
  await a.c.ask({ op: 'sub', ch: 'room' });
  await settled(a.c);
  const slot = (await clusterStats(a.c)).slots[0];
  for (const [topic, bytes] of [['wsb:c:room', 'hello from a stranger'], ['wsb:ctl', '\x01\x63'], [`wsb:n:${slot}`, ''], ['wsb:c:room', '\x01\x01\x05\x07']]) {
    assert.equal(redis.cli('PUBLISH', topic, bytes), '1');
  }
  await until('4 dropped', () => clusterStats(a.c), (s) => s.dropped.decode === 4);
  await a.c.ask({ op: 'pub', ch: 'room', data: 'still fine' });
  assert.equal((await a.c.next()).text, 'still fine');
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  assert.match(metrics, /^wsbroker_cluster_connected 1$/m);
  assert.match(metrics, /^wsbroker_cluster_nodes 1$/m);
  assert.match(metrics, /^wsbroker_cluster_dropped_total\{reason="decode"\} 4$/m);
});

test('Redis frozen (SIGSTOP): no JS thread waits, local delivery goes on, what overflows the publish buffer is counted; thawed, it recovers', async (t) => {
  const started = await startCluster(t, 2, { options: { publishBuffer: 65536 } });
  if (!started) return;
  const { redis, nodes: [A, B] } = started;
  const a = await connect(t, A);
  const a2 = await connect(t, A);
  const b = await connect(t, B);
  for (const x of [a2, b]) await x.c.ask({ op: 'sub', ch: 'room' });
  await settled(a.c, b.c);
  redis.pause();
  t.after(() => redis.resume());
  // 200 messages of about 1 KiB: more than the 64 KiB the node may hold for Redis.
  await a.c.ask({ op: 'pubMany', ch: 'room', id: a2.id, count: 200, prefix: 'x'.repeat(1000) });
  for (let i = 0; i < 200; i++) assert.equal((await a2.c.next()).text, `${'x'.repeat(1000)}${i}`);
  const st = await clusterStats(a.c);
  assert.ok(st.dropped.slow + st.dropped.disconnected > 0 && st.queuedBytes <= 65536, JSON.stringify(st));
  redis.resume();
  await until('A publishing again', async () => {
    await a.c.ask({ op: 'pub', ch: 'room', data: 'thawed' });
    return b.c.messages.some((m) => m.text === 'thawed');
  }, (ok) => ok, 30_000);
});

test('messages from one node keep their order on another, channel and direct sends interleaved', async (t) => {
  const started = await startCluster(t, 2);
  if (!started) return;
  const { nodes: [A, B] } = started;
  const a = await connect(t, A);
  const b = await connect(t, B);
  await b.c.ask({ op: 'sub', ch: 'seq' });
  await settled(b.c);
  await a.c.ask({ op: 'pubMany', ch: 'seq', id: b.id, count: 1000, prefix: 'n' });
  for (let i = 0; i < 1000; i++) assert.equal((await b.c.next()).text, `n${i}`);
});

test('a node killed: the others go on, its ids become no-ops, it leaves the node count within 6 s; stop() leaves at once', async (t) => {
  const started = await startCluster(t, 3);
  if (!started) return;
  const { nodes: [A, B, C] } = started;
  const a = await connect(t, A);
  const b = await connect(t, B);
  const c = await connect(t, C);
  await until('3 nodes', () => clusterStats(a.c), (s) => s.nodes === 3);
  for (const x of [a, b, c]) await x.c.ask({ op: 'sub', ch: 'room' });
  await settled(a.c, b.c, c.c);

  B.server.proc.kill('SIGKILL');
  const killedAt = Date.now();
  await a.c.ask({ op: 'pub', ch: 'room', data: 'after B' });
  assert.equal((await c.c.next()).text, 'after B');
  assert.equal((await a.c.next()).text, 'after B');
  await until('2 nodes', () => clusterStats(a.c), (s) => s.nodes === 2, 8000);
  assert.ok(Date.now() - killedAt < 6500, `left after ${Date.now() - killedAt} ms`);
  // Gone from Redis too, the node's slot: a send to its socket is a no-op, counted.
  await a.c.ask({ op: 'sendTo', id: b.id, data: 'to a dead node' });
  await until('the send to B counted as unrouted', () => clusterStats(a.c), (s) => s.unrouted === 1);

  await C.server.ask('stop', /^stopped$/);
  await until('1 node', () => clusterStats(a.c), (s) => s.nodes === 1, 1000);
});

test('Redis killed and restarted: local delivery goes on, the nodes reconnect and subscribe again', async (t) => {
  const started = await startCluster(t, 2, { redisOptions: { tcp: true } });
  if (!started) return;
  const { redis, nodes: [A, B] } = started;
  const a = await connect(t, A);
  const a2 = await connect(t, A);
  const b = await connect(t, B);
  for (const x of [a, a2, b]) await x.c.ask({ op: 'sub', ch: 'room' });
  await settled(a.c, b.c);

  await redis.kill();
  await A.server.waitForStderr(/cluster: lost redis:\/\/127\.0\.0\.1:\d+.*retrying/);
  await until('A disconnected', () => clusterStats(a.c), (s) => !s.connected);
  await a.c.ask({ op: 'pub', ch: 'room', data: 'during' });
  assert.equal((await a2.c.next()).text, 'during');

  await redis.restart();
  await settled(a.c, b.c);
  await until('channels subscribed again', () => clusterStats(b.c), (s) => s.channels === 1);
  await a.c.ask({ op: 'pub', ch: 'room', data: 'after' });
  assert.equal((await a2.c.next()).text, 'after');
  // What A held while Redis was down may reach B, if B had subscribed again by then: at most once.
  const first = (await b.c.next()).text;
  if (first === 'during') assert.equal((await b.c.next()).text, 'after');
  else assert.equal(first, 'after');
  assert.equal((await clusterStats(a.c)).connects, 2);
});

test('a password-protected Redis over TLS: the password never shows', async (t) => {
  const password = 'sekret-Pa55';
  const redis = await redisServer(t, { tls: true, password });
  if (!redis) return;
  const cluster = { redis: redis.url };
  const env = { SSL_CERT_FILE: redis.certPath, WSBROKER_LOG: 'info' };
  const [A, B] = await Promise.all([startNode(t, cluster, env), startNode(t, cluster, env)]);
  const a = await connect(t, A);
  const b = await connect(t, B);
  await b.c.ask({ op: 'sub', ch: 'secure' });
  await settled(b.c);
  await a.c.ask({ op: 'pub', ch: 'secure', data: 'over TLS' });
  assert.equal((await b.c.next()).text, 'over TLS');
  const st = await clusterStats(a.c);
  assert.match(st.engine, /^rediss:\/\/127\.0\.0\.1:\d+/);
  assert.ok(!JSON.stringify(st).includes(password) && !A.server.stderr.includes(password), 'no password in stats or logs');

  // The wrong password: start still resolves, says what is wrong, and does not say the password.
  const wrong = 'not-the-Pa55word';
  const C = await startNode(t, { redis: redis.url.replace(encodeURIComponent(password), wrong) }, env);
  await C.server.waitForStderr(/cannot reach rediss:\/\/127\.0\.0\.1:\d+\/0 within 5s/);
  assert.match(C.server.stderr, /authentication failed/);
  assert.ok(!C.server.stderr.includes(wrong) && !C.server.stderr.includes(password));
});

test('Redis unreachable at start: start resolves within 5 s, one line says so, local delivery works', async (t) => {
  const port = await freePort(); // nothing listens there
  const started = Date.now();
  const A = await startNode(t, { redis: `redis://127.0.0.1:${port}` });
  assert.ok(Date.now() - started < 8000, `start took ${Date.now() - started} ms`);
  assert.match(A.server.stderr, /cluster: cannot reach redis:\/\/127\.0\.0\.1:\d+\/0 within 5s; local delivery works; retrying/);
  const a = await connect(t, A);
  const a2 = await connect(t, A);
  await a2.c.ask({ op: 'sub', ch: 'local' });
  await a.c.ask({ op: 'pub', ch: 'local', data: 'still here' });
  assert.equal((await a2.c.next()).text, 'still here');
  assert.equal((await clusterStats(a.c)).connected, false);
});

test('cluster option errors are TypeErrors without the password; a different cluster is refused', async (t) => {
  const redis = await redisServer(t);
  if (!redis) return;
  const child = new Child([fixture('cluster-options.mjs')], { env: { REDIS_URL: redis.url } });
  const line = await child.waitForLine(/^results /, 20_000);
  await child.stop();
  const results = JSON.parse(line.input.slice('results '.length));
  for (const [name, got] of Object.entries(results)) {
    if (name === 'same cluster again') assert.equal(got, 'ok', name);
    else assert.match(got, /^TypeError: start: /, `${name}: ${got}`);
    assert.ok(!got.includes('hunter2'), `${name} shows the password: ${got}`);
  }
  assert.match(results['unknown key'], /options\.cluster\.prefx; did you mean options\.cluster\.prefix\?/);
  assert.match(results['different cluster'], /differs from the cluster this process is in/);
  assert.match(results['cluster after a start without it'], /must be given to the first start/);
});
