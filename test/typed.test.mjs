// Typed per-socket data: handlers made by defineWorker get the token decoded from JSON, wherever
// they are exported from (a module's default export, named exports, TypeScript's CommonJS), next to
// plain handlers that still get Buffers; setToken stores plain objects and arrays as JSON, on this
// node and on another one; what it refuses, and a module that exports handlers two ways.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Child, Client, fixture, listeningPorts } from './helpers.mjs';
import { redisServer, until } from './harness.mjs';

const require = createRequire(import.meta.url);
const { defineWorker, setToken } = require('@wsbroker/wsbroker');

/** Starts test/fixtures/typed-server.mjs with `worker` (a fixture's name) and start's `options`; resolves with { server, port }. */
async function startTyped(t, worker, options = {}) {
  const server = new Child([fixture('typed-server.mjs'), fixture(worker), JSON.stringify(options)], { env: { WSBROKER_LOG: 'warn' } });
  t.after(() => server.stop());
  const [port] = await listeningPorts(server);
  return { server, port };
}

async function connect(t, port, path) {
  const c = await Client.connect(port, { path });
  t.after(() => c.terminate());
  return c;
}

/** What the fixture's handleTextMessage got, asked with a plain text message. */
async function tokenSeen(c) {
  c.send('token?');
  return (await c.next((m) => m.json?.handler === 'handleTextMessage')).json;
}

/** Sends a command of the fixture and waits for its `{ done }`. */
async function command(c, text) {
  c.send(text);
  await c.next((m) => m.json?.done === text.split(' ')[0]);
}

test('a default export made by defineWorker: every handler gets the token decoded from JSON, undefined without one', async (t) => {
  const { port } = await startTyped(t, 'typed-worker.mjs');
  const watcher = await connect(t, port);
  await command(watcher, 'watch');

  const anon = await connect(t, port);
  const none = await tokenSeen(anon);
  assert.equal(none.type, 'undefined');
  assert.equal('token' in none, false);
  const token = { user: 'ann', roles: ['admin', 'ops'], level: 1.5, ok: true, none: null, nested: { 'a-b': [{}] }, text: 'é ✓ 😀' };
  await command(anon, `set ${JSON.stringify(token)}`);
  const seen = await tokenSeen(anon);
  assert.deepEqual(seen.token, token);
  assert.equal(seen.type, 'object');
  anon.send(Buffer.from([1, 2]));
  assert.deepEqual((await anon.next((m) => m.json?.handler === 'handleBinaryMessage')).json.token, token);

  // Set in handleOpen: the first message and handleClose carry it.
  const bob = await connect(t, port, '/?user=bob');
  const first = await tokenSeen(bob);
  assert.deepEqual(first.token, { user: 'bob' });
  await bob.close();
  const closed = (await watcher.next((m) => m.json?.handler === 'handleClose' && m.json.socketId === first.socketId)).json;
  assert.deepEqual(closed.token, { user: 'bob' });
  assert.equal(closed.type, 'object');
});

test('a token that is not JSON: defineWorker handlers get undefined, and each such event logs one error naming the socket, not the token', async (t) => {
  const { server, port } = await startTyped(t, 'typed-worker.mjs');
  const c = await connect(t, port);
  await command(c, 'raw secret-not-json');
  const seen = await tokenSeen(c);
  assert.equal(seen.type, 'undefined');
  const line = `the token of socket ${seen.socketId} (15 bytes) is not JSON, so handleTextMessage gets undefined`;
  await command(c, 'set ["fixed"]');
  assert.deepEqual((await tokenSeen(c)).token, ['fixed']);
  // Two events carried it, `token?` and the `set` that replaced it: one error each.
  const escaped = line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  await server.waitForStderr(new RegExp(`${escaped}[^]*${escaped}`));
  assert.equal(server.stderr.split(line).length - 1, 2, `one error per event:\n${server.stderr}`);
  assert.doesNotMatch(server.stderr, /secret-not-json/, 'the token is not logged');
});

test('handlers defineWorker made, exported by name, get JSON tokens; a plain handler of the same module still gets a Buffer', async (t) => {
  const { port } = await startTyped(t, 'typed-named-worker.mjs');
  const watcher = await connect(t, port);
  await command(watcher, 'watch');
  const c = await connect(t, port);
  assert.equal((await tokenSeen(c)).type, 'undefined');
  await command(c, 'set {"room":"lobby"}');
  assert.deepEqual(await tokenSeen(c), { handler: 'handleTextMessage', token: { room: 'lobby' }, type: 'object' });
  await c.close();
  assert.deepEqual((await watcher.next((m) => m.json?.handler === 'handleClose')).json, { handler: 'handleClose', token: '{"room":"lobby"}', type: 'Buffer' });
});

for (const threads of [2, 0]) {
  test(`TypeScript's CommonJS form of \`export default defineWorker(…)\`, threads: ${threads}`, async (t) => {
    const { port } = await startTyped(t, 'typed-worker.cjs', { threads });
    const c = await connect(t, port);
    assert.deepEqual(await tokenSeen(c), { handler: 'handleTextMessage', token: ['cjs', 1], type: 'object' });
  });
}

test('a module with a default export made by defineWorker and a handler exported by name does not load', async (t) => {
  const server = new Child([fixture('typed-server.mjs'), fixture('typed-conflict-worker.mjs')], { env: { WSBROKER_LOG: 'warn' } });
  t.after(() => server.stop());
  const [, message] = await server.waitForLine(/^start-error (.*)$/, 30_000);
  assert.equal(
    message,
    `Cannot load worker module ${fixture('typed-conflict-worker.mjs')}: it exports handleClose by name and a default export made by defineWorker: export the handlers one way, either \`export default defineWorker({ … })\` or each handler by name`,
  );
});

test('a JSON token set on a socket of another node reaches it (Redis)', async (t) => {
  const redis = await redisServer(t);
  if (!redis) return;
  const options = { threads: 1, cluster: { redis: redis.url } };
  const [A, B] = await Promise.all([startTyped(t, 'typed-worker.mjs', options), startTyped(t, 'typed-worker.mjs', options)]);
  const a = await connect(t, A.port);
  const b = await connect(t, B.port);
  const { socketId } = await tokenSeen(b);
  const token = { user: 'across', n: [1, 2] };
  await command(a, `set-for ${socketId} ${JSON.stringify(token)}`);
  // The token travels through Redis: B applies it a moment after A's call returned.
  await until('the token set from node A', () => tokenSeen(b), (seen) => seen.type === 'object');
  assert.deepEqual((await tokenSeen(b)).token, token);
});

test('setToken takes plain objects and arrays, and refuses what JSON would change or lose, saying where', () => {
  // Well-formed tokens for an unknown socket are no-ops.
  for (const token of [{ a: 1 }, [1, 'x', null], Object.create(null), { skipped: undefined }, []]) setToken(2 ** 53 - 1, token);
  const cycle = { a: [] };
  cycle.a.push(cycle);
  class Session {}
  const refused = [
    [new Date(0), /^setToken: token is a Date, which JSON does not store as it is/],
    [new Session(), /^setToken: token is a Session, which JSON does not store/],
    [{ at: new Map() }, /^setToken: token\.at is a Map/],
    [{ list: [1, undefined] }, /^setToken: token\.list\[1\] is undefined, which JSON turns into null in an array$/],
    [{ 'a b': { f() {} } }, /^setToken: token\["a b"\]\.f is a function, which JSON leaves out$/],
    [[10n], /^setToken: token\[0\] is a BigInt, which JSON cannot store$/],
    [{ n: Infinity }, /^setToken: token\.n is the number Infinity, which JSON turns into null$/],
    [{ s: Symbol('s') }, /^setToken: token\.s is a symbol, which JSON leaves out$/],
    [{ b: Buffer.from('x') }, /^setToken: token\.b is a Buffer/],
    [{ toJSON: () => 'x' }, /^setToken: token is an object with a toJSON method/],
    [cycle, /^setToken: token cannot be stored as JSON: Converting circular structure to JSON/],
    [null, /^setToken: token must be a string, an ArrayBuffer, a SharedArrayBuffer, an ArrayBufferView \(Buffer, typed array, DataView\), a plain object or an array, got null$/],
    [42, /got number 42$/],
    [undefined, /got undefined$/],
    [() => {}, /got a function$/],
  ];
  for (const [token, message] of refused) assert.throws(() => setToken(1, token), { name: 'TypeError', message }, String(message));
});

test('defineWorker checks its argument and freezes what it returns, whose handlers pass the token as given when called directly', () => {
  for (const bad of [undefined, null, 5, 'x']) {
    assert.throws(() => defineWorker(bad), { name: 'TypeError', message: /^defineWorker: handlers must be an object with handler functions/ });
  }
  assert.throws(() => defineWorker({ handleClose: 'no' }), { name: 'TypeError', message: /^defineWorker: handlers\.handleClose must be a function, got the string "no"$/ });
  assert.throws(() => defineWorker({ handleMessage() {} }), {
    name: 'TypeError',
    message: /^defineWorker: unknown handler handlers\.handleMessage; did you mean handlers\.handleTextMessage\?/,
  });
  const calls = [];
  const worker = defineWorker({ handleTextMessage: (data, socketId, token) => calls.push([data, socketId, token]) });
  assert.ok(Object.isFrozen(worker));
  assert.deepEqual(Object.keys(worker), ['handleTextMessage']);
  worker.handleTextMessage('hi', 7, { user: 'direct' });
  assert.deepEqual(calls, [['hi', 7, { user: 'direct' }]], 'called directly, a handler passes the token as given');
});
