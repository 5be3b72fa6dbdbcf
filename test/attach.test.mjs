// start({ server, path }): WebSockets on the port of a Node http.Server (plain, Express, Fastify),
// served by WSBroker as on its own listener, while the app keeps its other requests. The servers
// run in a child (test/fixtures/attach-server.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Child, Client, fixture, listeningPorts, makeCert, refusedStatus } from './helpers.mjs';
import { clientFrame, FIN, OP, RawClient } from './harness.mjs';

/** Starts the fixture with `app`; resolves with { port, direct } (the app's port, WSBroker's own). */
async function attachServer(t, app, { otherListener = false } = {}) {
  const child = new Child([fixture('attach-server.mjs'), JSON.stringify({ app, otherListener })], { env: { WSBROKER_LOG: 'warn' } });
  t.after(() => child.stop());
  const [port, direct] = await listeningPorts(child);
  return { port, direct };
}

/** An upgrade request to `path` with headers of every kind: repeated, mixed case, odd spacing. */
function upgradeRequest(path) {
  const key = crypto.randomBytes(16).toString('base64');
  return (
    `GET ${path} HTTP/1.1\r\nHost: example.test:8080\r\nupgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nX-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2\r\n` +
    `Cookie: a=1\r\nCookie: b=2\r\nX-Spaced:   value with  spaces  \r\nOrigin: http://example.test\r\n\r\n`
  );
}

/** The text of the frames of `client` with opcode text, in order, waiting for `count`. */
async function texts(client, count) {
  const out = [];
  for (let i = 0; i < count; i++) out.push((await client.nextFrame((f) => f.op === OP.text, 10_000, `text frame ${i + 1}`)).payload.toString());
  return out;
}

for (const app of ['http', 'express', 'fastify']) {
  test(`${app}: the app's page and WSBroker's WebSockets on one port`, { timeout: 60_000 }, async (t) => {
    const { port } = await attachServer(t, app);
    const page = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(await page.text(), `page ${app}`);

    const client = await Client.connect(port, { path: '/ws?room=1' });
    t.after(() => client.terminate());
    const open = await client.nextType('open');
    assert.equal(open.url, '/ws?room=1');
    assert.equal(open.ip, '127.0.0.1');
    client.send('hello');
    assert.equal((await client.next((m) => m.text === 'hello')).text, 'hello');

    // handleOpen's refusal with a status of its own, as on its own listener.
    assert.equal(await refusedStatus(port, { path: '/ws?refuse' }), 401);
    // Another path, and no other 'upgrade' listener: 404, as the app would answer it.
    assert.equal(await refusedStatus(port, { path: '/nowhere' }), 404);
    // The app still serves after the upgrades.
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), `page ${app}`);
  });
}

test("another 'upgrade' listener keeps the paths WSBroker does not take", { timeout: 60_000 }, async (t) => {
  const { port } = await attachServer(t, 'http', { otherListener: true });
  const other = await Client.connect(port, { path: '/other' });
  t.after(() => other.terminate());
  other.send('hi');
  assert.equal((await other.next()).text, 'other: hi');
  const ours = await Client.connect(port, { path: '/ws' });
  t.after(() => ours.terminate());
  assert.equal((await ours.nextType('open')).url, '/ws');
});

test('handleOpen gets the same ip, headers and url as on its own listener; bytes sent with the request reach it', { timeout: 60_000 }, async (t) => {
  const { port, direct } = await attachServer(t, 'http');
  const opens = {};
  for (const [name, p] of [['attached', port], ['own listener', direct]]) {
    const request = upgradeRequest('/ws?token=a%20b&x=1');
    // A text frame in the same write as the request: Node has read it with the request.
    const raw = await RawClient.connect(p, { request: Buffer.concat([Buffer.from(request, 'latin1'), clientFrame(FIN | OP.text, Buffer.from('pipelined'))]) });
    t.after(() => raw.destroy());
    const [open, echo] = await texts(raw, 2);
    assert.equal(echo, 'pipelined', name);
    const { ip, headers, url } = JSON.parse(open);
    delete headers['sec-websocket-key'];
    opens[name] = { ip, headers, url };
  }
  assert.deepEqual(opens.attached, opens['own listener']);
});

test("the attached path's limits: maxPayload closes with 1009, maxConnections answers 503", { timeout: 60_000 }, async (t) => {
  const { port } = await attachServer(t, 'http');
  const first = await Client.connect(port, { path: '/small' });
  t.after(() => first.terminate());
  await first.nextType('open');
  assert.equal(await refusedStatus(port, { path: '/small' }), 503);
  // /ws is another start() call: its own limits.
  const other = await Client.connect(port, { path: '/ws' });
  t.after(() => other.terminate());
  await other.nextType('open');
  first.send('x'.repeat(101));
  assert.equal((await first.closed).code, 1009);
});

test('start() refuses a server it cannot take with a TypeError', async (t) => {
  const { start } = await import('@wsbroker/wsbroker');
  const { certPath, keyPath } = makeCert(t);
  const cases = [
    [{ server: https.createServer({ cert: readFileSync(certPath), key: readFileSync(keyPath) }) }, /TLS server.*options\.tls.*proxy/],
    [{ server: () => {} }, /options\.server must be an http\.Server.*got a function/],
    [{ server: new net.Server() }, /options\.server must be an http\.Server.*got a Server/],
    [{ bind: '127.0.0.1:1', path: '/ws' }, /options\.path applies to options\.server/],
    [{ server: http.createServer(), path: 'ws' }, /options\.path must be a path like '\/ws'/],
    [{ server: http.createServer(), tls: { cert: certPath, key: keyPath } }, /options\.tls applies to the listeners of options\.bind/],
  ];
  for (const [options, message] of cases) {
    await assert.rejects(start({ workerPath: fixture('attach-worker.mjs'), ...options }), (err) => err instanceof TypeError && message.test(err.message));
  }
});

test('two start() calls given one server and path at once: one takes its upgrades, the other is a TypeError', async (t) => {
  const { start, stop } = await import('@wsbroker/wsbroker');
  t.after(() => stop());
  const server = http.createServer();
  const results = await Promise.allSettled([1, 2].map(() => start({ server, path: '/ws', workerPath: fixture('attach-worker.mjs'), threads: 1 })));
  assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
  const { reason } = results.find((r) => r.status === 'rejected');
  assert.ok(reason instanceof TypeError && /upgrades to '\/ws' are already taken/.test(reason.message), reason);
});
