// The examples, end to end: the chat server (lib/example/example.js) and the authentication
// server (lib/example/auth.js), each in a child process, driven by `ws` clients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import path from 'node:path';
import { SignJWT, UnsecuredJWT, jwtVerify } from 'jose';
import { Child, Client, chatExamplePorts, makeCert, refusedResponse, root } from './helpers.mjs';

test('the chat example: page, join, messages, room change, leave notices, errors', { timeout: 60_000 }, async (t) => {
  const server = new Child([path.join(root, 'lib', 'example', 'example.js')], {
    env: { HTTP_PORT: '0' },
  });
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.terminate();
    await server.stop();
  });
  const { httpPort } = await chatExamplePorts(server);

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

  // A message right behind the join, without waiting for `joined`: its event was queued with the
  // token from before the join, and the worker's own memory of the member makes it count.
  const dan = await connect();
  dan.cmd({ type: 'join', alias: 'dan', room: 'garden' });
  dan.cmd({ type: 'message', body: 'hi at once' });
  assert.equal((await bob.nextType('user-joined')).alias, 'dan');
  assert.equal((await bob.nextType('chat-message')).body, 'hi at once');
  assert.equal(dan.messages.filter((m) => m.json?.type === 'error').length, 0);
  dan.terminate();
  assert.equal((await bob.nextType('user-left')).alias, 'dan');

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
  const server = new Child([path.join(root, 'lib', 'example', 'example.js')], {
    env: { WS_PORT: '0', HTTP_PORT: '0', TLS_CERT: certPath, TLS_KEY: keyPath },
  });
  t.after(() => server.stop());
  const { httpPort, wsPort } = await chatExamplePorts(server);

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

test('the authentication example: a JWT at the upgrade, in the URL or a cookie, or HTTP 401; then direct messages', { timeout: 60_000 }, async (t) => {
  const secret = new TextEncoder().encode('test-secret');
  const page = 'https://chat.example';
  const server = new Child([path.join(root, 'lib', 'example', 'auth.js')], {
    env: { AUTH_PORT: '0', AUTH_SECRET: 'test-secret', AUTH_ORIGINS: page },
  });
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.terminate();
    await server.stop();
  });
  const port = Number((await server.waitForLine(/^Authentication example listening on ws:\/\/localhost:(\d+)$/, 30_000))[1]);
  const printed = (await server.waitForLine(/^A token for user "alice"/)).input.split(': ').pop();
  assert.equal((await jwtVerify(printed, secret)).payload.sub, 'alice');
  const sign = (subject, { key = secret, expires = '1h' } = {}) =>
    new SignJWT().setProtectedHeader({ alg: 'HS256' }).setSubject(subject).setExpirationTime(expires).sign(key);
  const connect = async (options) => {
    const c = await Client.connect(port, options);
    clients.push(c);
    return c;
  };

  // Refused with 401 and a challenge: no token, a wrong signature, an expired token, an unsigned
  // one, a cookie from a page of another origin.
  const challenge = 'Bearer realm="wsbroker-example"';
  const invalid = `${challenge}, error="invalid_token"`;
  const refusals = [
    [{}, challenge, 'A token is required'],
    [{ path: `/?token=${await sign('alice', { key: new TextEncoder().encode('wrong secret') })}` }, invalid, 'Invalid token'],
    [{ path: `/?token=${await sign('alice', { expires: Math.floor(Date.now() / 1000) - 10 })}` }, invalid, 'Invalid token'],
    [{ path: `/?token=${new UnsecuredJWT({ sub: 'alice' }).encode()}` }, invalid, 'Invalid token'],
    [{ headers: { cookie: `token=${printed}` }, origin: 'https://evil.example' }, challenge, 'A token is required'],
  ];
  for (const [options, wwwAuthenticate, body] of refusals) {
    const { status, headers, body: text } = await refusedResponse(port, options);
    assert.deepEqual({ status, wwwAuthenticate: headers['www-authenticate'], body: text }, { status: 401, wwwAuthenticate, body }, JSON.stringify(options));
  }

  // Accepted: the printed token in the URL, a token in a cookie (from the page's origin, or from a
  // client that sends no Origin, which is no browser).
  const a = await connect({ path: `/?token=${printed}` });
  a.cmd({ type: 'whoami' });
  assert.deepEqual(await a.nextType('whoami'), { type: 'whoami', userId: 'alice' });
  const b = await connect({ headers: { cookie: `theme=dark; token=${await sign('bob')}` }, origin: page });
  b.cmd({ type: 'whoami' });
  assert.deepEqual(await b.nextType('whoami'), { type: 'whoami', userId: 'bob' });
  const carol = await connect({ headers: { cookie: `token=${await sign('carol')}` } });

  b.cmd({ type: 'direct', to: 'alice', body: 'hi alice' });
  assert.deepEqual(await a.nextType('direct'), { type: 'direct', from: 'bob', body: 'hi alice' });
  b.cmd({ type: 'direct', to: 'carol', body: 'hi carol' });
  assert.deepEqual(await carol.nextType('direct'), { type: 'direct', from: 'bob', body: 'hi carol' });
  a.send('not json');
  assert.equal((await a.nextType('error')).body, 'Messages must be JSON objects');

  // A token that expires while connected: the next message closes the connection with 4001.
  const expires = Math.floor(Date.now() / 1000) + 3;
  const dave = await connect({ path: `/?token=${await sign('dave', { expires })}` });
  dave.cmd({ type: 'whoami' });
  await dave.nextType('whoami');
  await new Promise((resolve) => setTimeout(resolve, expires * 1000 - Date.now() + 50)); // nothing to await but the clock
  dave.cmd({ type: 'whoami' });
  assert.deepEqual(await dave.closed, { code: 4001, reason: 'token expired' });
});

