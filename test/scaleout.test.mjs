// Several nodes, one engine (Redis, or NATS: one server or a cluster of three): each node a server
// process of its own (test/fixtures/server.mjs with `cluster`), plain `ws` clients, the engine's
// servers started by each test. Every case of the engine interface runs once per engine: the
// cluster's channels, sockets addressed across nodes, interest routing seen from the engine's
// server, foreign messages, a frozen server, ordering, a node killed, the server killed and
// restarted, a secret over TLS, an unreachable server, the option's errors. Then NATS's own cases:
// a NATS cluster, hostile channel names, a message over the server's max_payload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Child, fixture, racyFreePort, startServer, withTimeout } from './helpers.mjs';
import { natsCluster, natsServer, redisServer, until } from './harness.mjs';

/**
 * What the cases need of an engine: `key` in the `cluster` option; `start(t, { restartable })` its
 * server (reachable again at the same address after restart() with `restartable`), undefined when
 * the test is skipped; `interest(server, topic)` how many nodes the server has subscribed to one of
 * the Node's topics (`wsb:c:room`); `inject(server, messages)` publishes [topic, bytes] as a
 * stranger would; `startSecure(t, secret)` a TLS-only server requiring `secret`, which its url
 * carries; `shown` how the node names the server in its stats and logs (a RegExp source, for the
 * scheme, TLS or not); `defaultShown` for start's server; `authFailed` the log's words for a wrong
 * secret;
 * `frozenMessageSize` how large the messages are that overflow what a node holds for a frozen
 * server.
 */
const engines = [
  {
    name: 'Redis',
    key: 'redis',
    start: (t, { restartable = false } = {}) => redisServer(t, { tcp: restartable }),
    interest: async (server, topic) => Number(server.cli('PUBSUB', 'NUMSUB', topic).split('\n')[1]),
    async inject(server, messages) {
      for (const [topic, bytes] of messages) assert.equal(server.cli('PUBLISH', topic, bytes), '1', `one node received ${topic}`);
    },
    startSecure: (t, secret) => redisServer(t, { tls: true, password: secret }),
    shown: (tls) => `${tls ? 'rediss' : 'redis'}:\\/\\/127\\.0\\.0\\.1:\\d+\\/0`,
    defaultShown: /^unix:\/\//,
    authFailed: /authentication failed/,
    frozenMessageSize: 1000,
  },
  {
    name: 'NATS',
    key: 'nats',
    start: (t) => natsServer(t),
    // The topics of these cases are letters and ':', which becomes NATS's token separator.
    interest: async (server, topic) => (await server.interest(topic.replaceAll(':', '.'))).clients,
    inject: (server, messages) => server.publish(messages.map(([topic, bytes]) => [topic.replaceAll(':', '.'), Buffer.from(bytes, 'latin1')])),
    startSecure: (t, secret) => natsServer(t, { tls: true, token: secret }),
    shown: (tls) => `${tls ? 'tls' : 'nats'}:\\/\\/127\\.0\\.0\\.1:\\d+`,
    defaultShown: /^nats:\/\/127\.0\.0\.1:\d+$/,
    authFailed: /authorization failed/i,
    // NATS publishes without waiting for an answer: the socket's buffers (4 MiB on Linux) take in
    // what a frozen server does not read before the node holds anything.
    frozenMessageSize: 64 * 1024,
  },
];

/** Starts one node on port 0 with `cluster` (and `options` of start); resolves with { server, port }, the port bound. */
async function startNode(t, cluster, { env = {}, options = {} } = {}) {
  const server = await startServer({ servers: [{ bind: '127.0.0.1:0', workerPath: fixture('worker.mjs'), threads: 1, cluster, ...options }] }, { env });
  t.after(() => server.stop());
  return { server, port: server.ports[0] };
}

/**
 * Starts the engine's server (`restartable`: see the engines) and `count` nodes sharing it (with
 * `options` added to `cluster`); resolves with { server, nodes }, or undefined (the test skipped)
 * without the server's binary.
 */
async function startCluster(t, engine, count, { restartable, options = {} } = {}) {
  const server = await engine.start(t, { restartable });
  if (!server) return undefined;
  const nodes = await Promise.all(Array.from({ length: count }, () => startNode(t, { [engine.key]: server.url, ...options })));
  return { server, nodes };
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

/** Waits until every node's interest changes are confirmed by the engine. */
async function settled(...clients) {
  for (const c of clients) await until('pendingSubscribes 0', () => clusterStats(c), (s) => s.connected && s.pendingSubscribes === 0);
}

/** Registers `body(t, engine)` as a test once per engine, the engine's name first in its name. */
function testEachEngine(name, body) {
  for (const engine of engines) test(`${engine.name}: ${name}`, (t) => body(t, engine));
}

testEachEngine('three nodes: channels, exceptions, sockets of other nodes, interest, counts, ids', async (t, engine) => {
  const started = await startCluster(t, engine, 3);
  if (!started) return;
  const { server, nodes: [A, B, C] } = started;
  const a = await connect(t, A);
  const b = await connect(t, B);
  const b2 = await connect(t, B);
  const c = await connect(t, C);
  const ids = [a.id, b.id, b2.id, c.id];
  assert.equal(new Set(ids).size, 4, `ids distinct: ${ids}`);
  for (const id of ids) assert.ok(Number.isSafeInteger(id) && id > 2 ** 32, `id ${id}: slot·2^32 + n, a safe integer`);

  for (const x of [a, b, b2]) assert.equal((await x.c.ask({ op: 'sub', ch: 'room' })).result, true);
  await settled(a.c, b.c, c.c);
  assert.equal(await engine.interest(server, 'wsb:c:room'), 2, 'the server: nodes A and B subscribed to the channel, C not');

  // A publication reaches every subscriber once; the exception may be a socket of another node.
  // Publications of two nodes have no common order: 'two' is published once 'one' has arrived.
  await a.c.ask({ op: 'pub', ch: 'room', data: 'one', except: b2.id });
  for (const x of [a, b]) assert.equal((await x.c.next()).text, 'one');
  await c.c.ask({ op: 'pub', ch: 'room', data: 'two' });
  for (const x of [a, b, b2]) assert.equal((await x.c.next()).text, 'two');
  await until('3 nodes', () => clusterStats(c.c), (s) => s.nodes === 3);
  // The count asks every node with subscribers (Redis) or every node (NATS), and adds the asker's.
  assert.equal((await c.c.ask({ op: 'clusterCount', ch: 'room' })).result, 3);
  assert.equal((await a.c.ask({ op: 'clusterCount', ch: 'room' })).result, 3);
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

  // The last subscriber of B leaves: so does B's interest, on the server.
  assert.equal((await b.c.ask({ op: 'unsub', ch: 'room' })).result, true);
  await settled(b.c);
  assert.equal(await engine.interest(server, 'wsb:c:room'), 1);
  const sc = await clusterStats(c.c);
  assert.deepEqual(sc.dropped, { disconnected: 0, slow: 0, decode: 0, tooLarge: 0, refused: 0 });
  assert.equal((await clusterStats(a.c)).unrouted, 0, 'the sends from A to live nodes counted as unrouted');
  assert.match(sc.engine, engine.defaultShown);
});

testEachEngine('foreign and malformed messages on our topics are counted and dropped; the metrics endpoint has the cluster figures', async (t, engine) => {
  const server = await engine.start(t);
  if (!server) return;
  // The metrics server's port is not in start()'s `addresses`: a free one is picked.
  const metricsPort = await racyFreePort();
  const A = await startNode(t, { [engine.key]: server.url }, { options: { metrics: `127.0.0.1:${metricsPort}` } });
  const a = await connect(t, A);
  await a.c.ask({ op: 'sub', ch: 'room' });
  await settled(a.c);
  const slot = (await clusterStats(a.c)).slots[0];
  await engine.inject(server, [['wsb:c:room', 'hello from a stranger'], ['wsb:ctl', '\x01\x63'], [`wsb:n:${slot}`, ''], ['wsb:c:room', '\x01\x01\x05\x07']]);
  await until('4 dropped', () => clusterStats(a.c), (s) => s.dropped.decode === 4);
  await a.c.ask({ op: 'pub', ch: 'room', data: 'still fine' });
  assert.equal((await a.c.next()).text, 'still fine');
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  assert.match(metrics, /^wsbroker_cluster_connected 1$/m);
  assert.match(metrics, /^wsbroker_cluster_nodes 1$/m);
  assert.match(metrics, /^wsbroker_cluster_dropped_total\{reason="decode"\} 4$/m);
});

testEachEngine('the server frozen (SIGSTOP): no JS thread waits, local delivery goes on, what overflows the publish buffer is counted; thawed, it recovers', async (t, engine) => {
  const started = await startCluster(t, engine, 2, { options: { publishBuffer: 65536 } });
  if (!started) return;
  const { server, nodes: [A, B] } = started;
  const a = await connect(t, A);
  const a2 = await connect(t, A);
  const b = await connect(t, B);
  for (const x of [a2, b]) await x.c.ask({ op: 'sub', ch: 'room' });
  await settled(a.c, b.c);
  server.pause();
  t.after(() => server.resume());
  // 100 of the 200 messages published: more than the 64 KiB the node may hold for the server.
  const prefix = 'x'.repeat(engine.frozenMessageSize);
  await a.c.ask({ op: 'pubMany', ch: 'room', id: a2.id, count: 200, prefix });
  for (let i = 0; i < 200; i++) assert.equal((await a2.c.next()).text, `${prefix}${i}`);
  const st = await clusterStats(a.c);
  assert.ok(st.dropped.slow + st.dropped.disconnected > 0 && st.queuedBytes <= 65536, JSON.stringify(st));
  server.resume();
  await until('A publishing again', async () => {
    await a.c.ask({ op: 'pub', ch: 'room', data: 'thawed' });
    return b.c.messages.some((m) => m.text === 'thawed');
  }, (ok) => ok, 30_000);
});

testEachEngine('messages from one node keep their order on another, channel and direct sends interleaved', async (t, engine) => {
  const started = await startCluster(t, engine, 2);
  if (!started) return;
  const { nodes: [A, B] } = started;
  const a = await connect(t, A);
  const b = await connect(t, B);
  await b.c.ask({ op: 'sub', ch: 'seq' });
  await settled(b.c);
  await a.c.ask({ op: 'pubMany', ch: 'seq', id: b.id, count: 1000, prefix: 'n' });
  for (let i = 0; i < 1000; i++) assert.equal((await b.c.next()).text, `n${i}`);
});

testEachEngine('a node killed: the others go on, its ids become no-ops, it leaves the node count within 6 s; stop() leaves at once', async (t, engine) => {
  const started = await startCluster(t, engine, 3);
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
  // Gone from the engine (Redis: no receiver) and from the node table (NATS: no live node holds
  // the slot): a send to its socket is a no-op, counted as unrouted.
  await a.c.ask({ op: 'sendTo', id: b.id, data: 'to a dead node' });
  await until('the send to B counted as unrouted', () => clusterStats(a.c), (s) => s.unrouted === 1);

  await C.server.ask('stop', /^stopped$/);
  await until('1 node', () => clusterStats(a.c), (s) => s.nodes === 1, 1000);
});

testEachEngine('the server killed and restarted: local delivery goes on, the nodes reconnect and subscribe again', async (t, engine) => {
  const started = await startCluster(t, engine, 2, { restartable: true });
  if (!started) return;
  const { server, nodes: [A, B] } = started;
  const a = await connect(t, A);
  const a2 = await connect(t, A);
  const b = await connect(t, B);
  for (const x of [a, a2, b]) await x.c.ask({ op: 'sub', ch: 'room' });
  await settled(a.c, b.c);

  await server.kill();
  await A.server.waitForStderr(new RegExp(`cluster: lost ${engine.shown(false)}.*retrying`));
  await until('A disconnected', () => clusterStats(a.c), (s) => !s.connected);
  await a.c.ask({ op: 'pub', ch: 'room', data: 'during' });
  assert.equal((await a2.c.next()).text, 'during');

  await server.restart();
  await settled(a.c, b.c);
  await until('channels subscribed again', () => clusterStats(b.c), (s) => s.channels === 1);
  await a.c.ask({ op: 'pub', ch: 'room', data: 'after' });
  assert.equal((await a2.c.next()).text, 'after');
  // What A held while the server was down may reach B, if B had subscribed again by then: at most once.
  const first = (await b.c.next()).text;
  if (first === 'during') assert.equal((await b.c.next()).text, 'after');
  else assert.equal(first, 'after');
  assert.equal((await clusterStats(a.c)).connects, 2);
});

testEachEngine('a secret (Redis: a password, NATS: a token) over TLS: it never shows', async (t, engine) => {
  const secret = 'sekret-Pa55';
  const server = await engine.startSecure(t, secret);
  if (!server) return;
  const cluster = { [engine.key]: server.url };
  // Go reads the certificates it trusts from SSL_CERT_FILE.
  const env = { SSL_CERT_FILE: server.certPath, WSBROKER_LOG: 'info' };
  const [A, B] = await Promise.all([startNode(t, cluster, { env }), startNode(t, cluster, { env })]);
  const a = await connect(t, A);
  const b = await connect(t, B);
  await b.c.ask({ op: 'sub', ch: 'secure' });
  await settled(b.c);
  await a.c.ask({ op: 'pub', ch: 'secure', data: 'over TLS' });
  assert.equal((await b.c.next()).text, 'over TLS');
  const st = await clusterStats(a.c);
  assert.match(st.engine, new RegExp(`^${engine.shown(true)}$`));
  assert.ok(!JSON.stringify(st).includes(secret) && !A.server.stderr.includes(secret), 'no secret in stats or logs');

  // The wrong secret: start still resolves, says what is wrong, and does not say the secret.
  const wrong = 'not-the-Pa55word';
  const C = await startNode(t, { [engine.key]: server.url.replace(encodeURIComponent(secret), wrong) }, { env });
  await C.server.waitForStderr(new RegExp(`cannot reach ${engine.shown(true)} within 5s`));
  assert.match(C.server.stderr, engine.authFailed);
  const st2 = await clusterStats((await connect(t, C)).c);
  assert.ok(!st2.connected, JSON.stringify(st2));
  for (const shown of [C.server.stderr, JSON.stringify(st2)]) assert.ok(!shown.includes(wrong) && !shown.includes(secret), shown);
});

testEachEngine('the server unreachable at start: start resolves within 5 s, one line says so, local delivery works', async (t, engine) => {
  const port = await racyFreePort(); // a port that must be free on purpose: nothing listens there
  const started = Date.now();
  const A = await startNode(t, { [engine.key]: `${engine.key}://127.0.0.1:${port}` });
  assert.ok(Date.now() - started < 8000, `start took ${Date.now() - started} ms`);
  assert.match(A.server.stderr, new RegExp(`cluster: cannot reach ${engine.shown(false)} within 5s; local delivery works; retrying`));
  const a = await connect(t, A);
  const a2 = await connect(t, A);
  await a2.c.ask({ op: 'sub', ch: 'local' });
  await a.c.ask({ op: 'pub', ch: 'local', data: 'still here' });
  assert.equal((await a2.c.next()).text, 'still here');
  assert.equal((await clusterStats(a.c)).connected, false);
});

testEachEngine('cluster option errors never show a password or token; a different cluster is refused', async (t, engine) => {
  const server = await engine.start(t);
  if (!server) return;
  const child = new Child([fixture('cluster-options.mjs')], { env: { ENGINE: engine.key, ENGINE_URL: server.url } });
  const line = await child.waitForLine(/^results /, 20_000);
  await child.stop();
  const results = JSON.parse(line.input.slice('results '.length));
  // What the engine's parser refuses, past the URL checks of JS, is an Error of the engine.
  const fromEngine = new Set(['nats:// and tls:// mixed, with a token', 'different credentials']);
  for (const [name, got] of Object.entries(results)) {
    if (name === 'same cluster again') assert.equal(got, 'ok', name);
    else if (fromEngine.has(name)) assert.match(got, /^Error: nats: /, `${name}: ${got}`);
    else assert.match(got, /^TypeError: start: /, `${name}: ${got}`);
    assert.ok(!got.includes('hunter2'), `${name} shows the password: ${got}`);
  }
  assert.match(results['neither redis nor nats'], /exactly one of redis and nats.*got neither/);
  assert.match(results['both redis and nats'], /exactly one of redis and nats.*got both/);
  assert.match(results['unknown key'], /options\.cluster\.prefx; did you mean options\.cluster\.prefix\?/);
  assert.match(results['different cluster'], /differs from the cluster this process is in/);
  assert.match(results['cluster after a start without it'], /must be given to the first start/);
  if (engine.key === 'nats') assert.match(results['a bad scheme in one of several, with a token'], /got the scheme 'http:'/);
});

// ---- NATS only ----

test('NATS: three servers joined by routes, a node on each: channels and sends cross the routes; a server killed, its node reconnects to another and delivery resumes', async (t) => {
  const natsc = await natsCluster(t, 3);
  if (!natsc) return;
  const { servers } = natsc;
  // Each node is given the three servers, its own first: it connects to that one (the order given
  // is kept), as the per-server interest below shows, and to the next when it goes.
  const nodes = await Promise.all(servers.map((_, i) => startNode(t, { nats: servers.map((_, j) => servers[(i + j) % servers.length].url).join(',') })));
  const [a, b, c] = await Promise.all(nodes.map((n) => connect(t, n)));
  for (const x of [a, b, c]) await x.c.ask({ op: 'sub', ch: 'room' });
  await settled(a.c, b.c, c.c);
  // A route carries a subject's interest once, however many clients of its server want it.
  for (const s of servers) await until(`room wanted on and through ${s.url}`, () => s.interest('wsb.c.room'), (n) => n.clients === 1 && n.routes === 2);
  await until('3 nodes', () => clusterStats(a.c), (s) => s.nodes === 3);

  await a.c.ask({ op: 'pub', ch: 'room', data: 'from A' });
  for (const x of [a, b, c]) assert.equal((await x.c.next()).text, 'from A');
  await b.c.ask({ op: 'sendTo', id: c.id, data: 'B to C' });
  assert.equal((await c.c.next()).text, 'B to C');
  assert.equal((await c.c.ask({ op: 'clusterCount', ch: 'room' })).result, 3);

  const [A] = nodes;
  await servers[0].kill();
  await A.server.waitForStderr(/cluster: lost nats:\/\/127\.0\.0\.1:\d+/);
  await until('A connected again', () => clusterStats(a.c), (s) => s.connected && s.connects === 2 && s.pendingSubscribes === 0);
  const left = servers.slice(1);
  await until('the three nodes subscribed on the two servers left, each server wanting room through the other',
    () => Promise.all(left.map((s) => s.interest('wsb.c.room'))),
    (seen) => seen.reduce((sum, n) => sum + n.clients, 0) === 3 && seen.every((n) => n.routes === 1));
  await b.c.ask({ op: 'pub', ch: 'room', data: 'after the kill' });
  for (const x of [a, b, c]) assert.equal((await x.c.next()).text, 'after the kill');
  await a.c.ask({ op: 'pub', ch: 'room', data: 'from A again' });
  for (const x of [a, b, c]) assert.equal((await x.c.next()).text, 'from A again');
  await c.c.ask({ op: 'sendTo', id: a.id, data: 'C to A' });
  assert.equal((await a.c.next()).text, 'C to A');
});

testEachEngine('hostile channel names reach exactly their own subscribers on another node', async (t, engine) => {
  const started = await startCluster(t, engine, 2);
  if (!started) return;
  const { nodes: [A, B] } = started;
  const long = 'x'.repeat(1100);
  const names = [
    '.', '*', '>', 'a.b', 'a.*', 'a.>', 'a b', ' ', '\t', '\0', 'a\0b', '%', '%2E', '%25', ':', 'a:b', '::', '',
    'é', '.'.repeat(400), `${long}1`, `${long}2`, 'ok',
  ];
  const a = await connect(t, A);
  const subscribers = [];
  for (const ch of names) {
    const s = await connect(t, B);
    assert.equal((await s.c.ask({ op: 'sub', ch })).result, true, JSON.stringify(ch));
    subscribers.push(s);
  }
  await settled(...subscribers.map((s) => s.c));
  for (const [i, ch] of names.entries()) await a.c.ask({ op: 'pub', ch, data: `to ${i}` });
  // What A publishes reaches B in order: the last publication on each channel closes its count.
  for (const ch of names) await a.c.ask({ op: 'pub', ch, data: 'end' });
  for (const [i, s] of subscribers.entries()) {
    const name = JSON.stringify(names[i].slice(0, 20));
    assert.equal((await s.c.next(undefined, 10_000, `the message on ${name}`)).text, `to ${i}`, `channel ${name}`);
    assert.equal((await s.c.next(undefined, 10_000, `the end of ${name}`)).text, 'end', `channel ${name} got another's message`);
  }
  assert.equal((await clusterStats(subscribers[0].c)).dropped.decode, 0);
});

test('NATS: a message over the server\'s max_payload is delivered locally only, counted, logged once; a smaller one crosses after it', async (t) => {
  const server = await natsServer(t, { maxPayload: 4096 });
  if (!server) return;
  const cluster = { nats: server.url };
  const [A, B] = await Promise.all([startNode(t, cluster), startNode(t, cluster)]);
  const a = await connect(t, A);
  const a2 = await connect(t, A);
  const b = await connect(t, B);
  for (const x of [a2, b]) await x.c.ask({ op: 'sub', ch: 'big' });
  await settled(a.c, b.c);
  const big = 'y'.repeat(8000);
  await a.c.ask({ op: 'pub', ch: 'big', data: big });
  assert.equal((await a2.c.next()).text, big);
  await until('one message too large', () => clusterStats(a.c), (s) => s.dropped.tooLarge === 1);
  await a.c.ask({ op: 'pub', ch: 'big', data: `${big}2` });
  assert.equal((await a2.c.next()).text, `${big}2`);
  await a.c.ask({ op: 'pub', ch: 'big', data: 'small' });
  assert.equal((await a2.c.next()).text, 'small');
  assert.equal((await b.c.next()).text, 'small', 'B got the small message, and nothing before it');
  const st = await clusterStats(a.c);
  assert.equal(st.dropped.tooLarge, 2, JSON.stringify(st.dropped));
  assert.ok(st.connected, 'the connection survived');
  const lines = A.server.stderr.split('\n').filter((l) => /larger than nats:\/\/127\.0\.0\.1:\d+ takes/.test(l));
  assert.equal(lines.length, 1, `one line for two such messages:\n${A.server.stderr}`);
});
