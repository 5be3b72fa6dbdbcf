// The examples, end to end: the chat server (lib/example/example.js) and the authentication
// server (lib/example/auth.js), each in a child process, driven by `ws` clients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import path from 'node:path';
import { SignJWT, UnsecuredJWT, jwtVerify } from 'jose';
import { Child, Client, freePort, makeCert, refusedStatus, root } from './helpers.mjs';

test('the chat example: page, join, messages, room change, leave notices, errors', { timeout: 60_000 }, async (t) => {
  const httpPort = await freePort();
  const server = new Child([path.join(root, 'lib', 'example', 'example.js')], {
    env: { HTTP_PORT: String(httpPort) },
  });
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.terminate();
    await server.stop();
  });
  await server.waitForLine(/^Chat example: open http:\/\/localhost:\d+/, 30_000);

  // The page and its script are served; the WebSocket is on the page's port.
  const page = await fetch(`http://127.0.0.1:${httpPort}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /text\/html/);
  assert.match(await page.text(), /<form id="join-form"/);
  const config = await (await fetch(`http://127.0.0.1:${httpPort}/config.js`)).text();
  assert.match(config, /CHAT_WS_PORT = null/);
  assert.equal((await fetch(`http://127.0.0.1:${httpPort}/client.js`)).status, 200);
  assert.equal((await fetch(`http://127.0.0.1:${httpPort}/../package.json`)).status, 404);
  assert.equal((await fetch(`http://127.0.0.1:${httpPort}/%2e%2e/%2e%2e/package.json`)).status, 404);

  // Browsers send the page's origin.
  const connect = async () => {
    const c = await Client.connect(httpPort, { path: '/ws', origin: `http://localhost:${httpPort}` });
    clients.push(c);
    return c;
  };
  const alice = await connect();
  const bob = await connect();
  assert.match(alice.ws.extensions, /^permessage-deflate/, 'the chat negotiates compression');

  alice.cmd({ type: 'message', body: 'too early' });
  assert.deepEqual(await alice.nextType('error'), { type: 'error', body: 'Join a room before sending messages' });
  alice.send('not json');
  assert.equal((await alice.nextType('error')).body, 'Messages must be JSON');
  alice.cmd({ type: 'join', alias: 'a'.repeat(21), room: 'lobby' });
  assert.match((await alice.nextType('error')).body, /alias/);
  alice.cmd({ type: 'join', alias: 'alice', room: 'r'.repeat(31) });
  assert.match((await alice.nextType('error')).body, /room/);

  alice.cmd({ type: 'join', alias: 'alice', room: 'lobby' });
  assert.deepEqual(await alice.nextType('joined'), { type: 'joined', room: 'lobby', alias: 'alice' });
  const aliceJoined = await alice.nextType('user-joined');
  assert.equal(aliceJoined.alias, 'alice');
  assert.equal(typeof aliceJoined.timestamp, 'number');

  bob.cmd({ type: 'join', alias: 'bob', room: 'lobby' });
  await bob.nextType('joined');
  assert.equal((await alice.nextType('user-joined')).alias, 'bob');
  assert.equal((await bob.nextType('user-joined')).alias, 'bob');

  bob.cmd({ type: 'message', body: 'hello alice ✓' });
  for (const c of [alice, bob]) {
    const m = await c.nextType('chat-message');
    assert.equal(m.alias, 'bob');
    assert.equal(m.body, 'hello alice ✓');
    assert.equal(typeof m.timestamp, 'number');
  }
  bob.cmd({ type: 'message', body: 'x'.repeat(501) });
  assert.match((await bob.nextType('error')).body, /500/);

  // Joining another room leaves the old one, with a notice there.
  bob.cmd({ type: 'join', alias: 'bob', room: 'garden' });
  assert.deepEqual(await bob.nextType('joined'), { type: 'joined', room: 'garden', alias: 'bob' });
  assert.equal((await bob.nextType('user-joined')).alias, 'bob');
  assert.equal((await alice.nextType('user-left')).alias, 'bob');
  alice.cmd({ type: 'message', body: 'anyone?' });
  await alice.nextType('chat-message');
  bob.cmd({ type: 'message', body: 'in the garden' });
  assert.equal((await bob.nextType('chat-message')).body, 'in the garden');
  assert.equal(bob.messages.filter((m) => m.json?.body === 'anyone?').length, 0, 'bob left the lobby');

  // Disconnecting announces user-left to the room in the token.
  const carol = await connect();
  carol.cmd({ type: 'join', alias: 'carol', room: 'garden' });
  await carol.nextType('joined');
  assert.equal((await bob.nextType('user-joined')).alias, 'carol');
  carol.terminate();
  assert.equal((await bob.nextType('user-left')).alias, 'carol');
});

test('the chat example with TLS_CERT and TLS_KEY: the page over https://, the chat over wss://', { timeout: 60_000 }, async (t) => {
  const { cert, certPath, keyPath } = makeCert(t);
  const [wsPort, httpPort] = [await freePort(), await freePort()];
  const server = new Child([path.join(root, 'lib', 'example', 'example.js')], {
    env: { WS_PORT: String(wsPort), HTTP_PORT: String(httpPort), TLS_CERT: certPath, TLS_KEY: keyPath },
  });
  t.after(() => server.stop());
  await server.waitForLine(/^Chat example: open https:\/\/localhost:\d+ .*wss:\/\//, 30_000);

  const page = await new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port: httpPort, path: '/', ca: cert }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).on('error', reject);
  });
  assert.equal(page.status, 200);
  assert.match(page.body, /<form id="join-form"/);

  const alice = await Client.connect(wsPort, { ca: cert, origin: `https://localhost:${httpPort}` });
  t.after(() => alice.terminate());
  alice.cmd({ type: 'join', alias: 'alice', room: 'lobby' });
  assert.deepEqual(await alice.nextType('joined'), { type: 'joined', room: 'lobby', alias: 'alice' });
  alice.cmd({ type: 'message', body: 'over TLS ✓' });
  assert.equal((await alice.nextType('chat-message')).body, 'over TLS ✓');
});

test('the authentication example: a JWT at the upgrade or in a message, then direct messages', { timeout: 60_000 }, async (t) => {
  const port = await freePort();
  const secret = new TextEncoder().encode('test-secret');
  const server = new Child([path.join(root, 'lib', 'example', 'auth.js')], { env: { AUTH_PORT: String(port), AUTH_SECRET: 'test-secret' } });
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.terminate();
    await server.stop();
  });
  await server.waitForLine(/^Authentication example listening/, 30_000);
  const printed = (await server.waitForLine(/^A token for user "alice"/)).input.split(': ').pop();
  assert.equal((await jwtVerify(printed, secret)).payload.sub, 'alice');
  const sign = (subject, { key = secret, expires = '1h' } = {}) =>
    new SignJWT().setProtectedHeader({ alg: 'HS256' }).setSubject(subject).setExpirationTime(expires).sign(key);

  const a = await Client.connect(port);
  const b = await Client.connect(port);
  clients.push(a, b);
  a.cmd({ type: 'whoami' });
  assert.equal((await a.nextType('auth-required')).body, 'Please authenticate first');
  a.cmd({ type: 'authenticate', token: await sign('alice', { key: new TextEncoder().encode('wrong secret') }) });
  await a.nextType('auth-error');
  a.cmd({ type: 'authenticate', token: await sign('alice', { expires: Math.floor(Date.now() / 1000) - 10 }) });
  await a.nextType('auth-error');
  a.cmd({ type: 'authenticate', token: new UnsecuredJWT({ sub: 'alice' }).encode() });
  await a.nextType('auth-error');

  a.cmd({ type: 'authenticate', token: printed });
  assert.deepEqual(await a.nextType('authenticated'), { type: 'authenticated', userId: 'alice' });
  a.cmd({ type: 'whoami' });
  assert.deepEqual(await a.nextType('whoami'), { type: 'whoami', userId: 'alice' });

  // A message sent right behind 'authenticate' is answered for the authenticated user (without
  // `ordered: true` most of these would get auth-required: the check is asynchronous).
  for (let i = 0; i < 10; i++) {
    const c = await Client.connect(port);
    clients.push(c);
    c.cmd({ type: 'authenticate', token: printed });
    c.cmd({ type: 'whoami' });
    assert.deepEqual((await c.next()).json, { type: 'authenticated', userId: 'alice' });
    assert.deepEqual((await c.next()).json, { type: 'whoami', userId: 'alice' });
  }

  b.cmd({ type: 'authenticate', token: await sign('bob') });
  await b.nextType('authenticated');
  b.cmd({ type: 'direct', to: 'alice', body: 'hi alice' });
  assert.deepEqual(await a.nextType('direct'), { type: 'direct', from: 'bob', body: 'hi alice' });

  // At the upgrade: a valid token in the URL authenticates the connection before its first message,
  // an invalid one is refused.
  const carol = await Client.connect(port, { path: `/?token=${await sign('carol')}` });
  clients.push(carol);
  carol.cmd({ type: 'whoami' });
  assert.deepEqual(await carol.nextType('whoami'), { type: 'whoami', userId: 'carol' });
  b.cmd({ type: 'direct', to: 'carol', body: 'hi carol' });
  assert.deepEqual(await carol.nextType('direct'), { type: 'direct', from: 'bob', body: 'hi carol' });
  assert.equal(await refusedStatus(port, { path: `/?token=${await sign('carol', { key: new TextEncoder().encode('wrong secret') })}` }), 403);
});
