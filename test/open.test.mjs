// End to end: handleOpen's refusals with a status, headers and body of its choice, and its fifth
// argument (the query and cookies), through the `ws` client (which hands over a refused response
// in its 'unexpected-response' event) and raw sockets, against a server in a child process
// running test/fixtures/refusal-worker.mjs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient } from './harness.mjs';
import { Client, fixture, refusedResponse, startServer } from './helpers.mjs';

let server;
let port;

before(async () => {
  server = await startServer({ servers: [{ bind: '127.0.0.1:0', workerPath: fixture('refusal-worker.mjs'), threads: 2 }] });
  [port] = server.ports;
});
after(() => server?.stop());

/** The refusal of an upgrade to `path` of the server (see refusedResponse). */
const refusal = (path, options) => refusedResponse(port, { path, ...options });

test('401 with WWW-Authenticate, repeated Set-Cookie and a body', async () => {
  const r = await refusal('/?mode=401');
  assert.equal(r.status, 401);
  assert.equal(r.headers['www-authenticate'], 'Bearer realm="chat"');
  assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
  assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(r.headers['content-length'], '12');
  assert.equal(r.headers.connection, 'close');
  assert.equal(r.body, 'Log in first');
});

test('429 with Retry-After (a number) and the reason phrase as its default body', async () => {
  const r = await refusal('/?mode=429');
  assert.equal(r.status, 429);
  assert.equal(r.headers['retry-after'], '30');
  assert.equal(r.headers['x-unset'], undefined);
  assert.equal(r.body, 'Too Many Requests');
});

test('a body in bytes with a Content-Type of its own', async () => {
  const r = await refusal('/?mode=json');
  assert.equal(r.status, 403);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(r.body), { error: 'banned' });
});

test('an async handleOpen refusing: what it sent meanwhile is dropped', async () => {
  const r = await refusal('/?mode=async-401');
  assert.equal(r.status, 401);
  assert.equal(r.body, 'Log in first');
});

test('invalid refusals are logged and answered with 500, never accepted', async () => {
  const cases = {
    'status-600': 'status 600 is not from 400 to 599',
    'status-200': 'status 200 is not from 400 to 599',
    'status-float': 'status 401.5 is not an integer from 400 to 599',
    'status-string': "status '401' is not an integer from 400 to 599",
    crlf: 'the value of header \\"X-Evil\\" holds a CR, LF',
    'reserved-header': 'header \\"Content-Length\\" is written by the server',
    'bad-headers': 'header \\"X-A\\" must be a string, a number or an array of strings',
    'bad-body': 'body must be a string',
    'huge-body': 'its headers and body take 65537 bytes, over 65536',
  };
  for (const [mode, logged] of Object.entries(cases)) {
    const r = await refusal(`/?mode=${mode}`);
    assert.equal(r.status, 500, mode);
    assert.equal(r.body, 'Internal Server Error', mode);
    assert.equal(r.headers['set-cookie'], undefined, mode);
    await server.waitForStderr(logged);
  }
  assert.match(server.stderr, /handleOpen's refusal is answered with HTTP 500/);
});

test('a CRLF in a header value does not reach the wire', async () => {
  await assert.rejects(RawClient.connect(port, { headers: { 'X-Mode': 'crlf' } }), { message: 'upgrade refused: HTTP/1.1 500 Internal Server Error' });
});

test('the old verdicts: false and a throw answer 403, an object without status accepts', async () => {
  assert.equal((await refusal('/?mode=false')).status, 403);
  assert.equal((await refusal('/?mode=throw')).status, 403);
  await server.waitForStderr('handleOpen refused by throwing');
  const c = await Client.connect(port, { path: '/?mode=no-status' });
  c.send('still here');
  assert.equal((await c.next()).text, 'still here');
  c.terminate();
});

test("the fifth argument: the query, parsed as a URL's", async () => {
  const c = await Client.connect(port, { path: '/chat?room=a+b&room=%E2%9C%93&token=x%zz&empty=' });
  const { json } = await c.next();
  assert.equal(json.url, '/chat?room=a+b&room=%E2%9C%93&token=x%zz&empty=');
  assert.deepEqual(json.query, [['room', 'a b'], ['room', '✓'], ['token', 'x%zz'], ['empty', '']]);
  assert.equal(json.sameObjects, true);
  c.terminate();
  // A request target with a fragment (no browser sends one): the query ends at '#'.
  const raw = await RawClient.connect(port, { path: '/?a=1#b=2' });
  assert.deepEqual(JSON.parse((await raw.nextFrame((f) => f.op === 1)).payload.toString()).query, [['a', '1']]);
  raw.destroy();
});

test('the fifth argument: cookies from repeated Cookie headers, joined with "; "', async () => {
  const raw = await RawClient.connect(port, {
    headers: { Cookie: 'session=abc; theme="dark"; junk; =nameless; bad=%E2%9C', cookie: 'session=second; check=%E2%9C%93; __proto__=x' },
  });
  const report = JSON.parse((await raw.nextFrame((f) => f.op === 1)).payload.toString());
  assert.equal(report.cookieHeader, 'session=abc; theme="dark"; junk; =nameless; bad=%E2%9C; session=second; check=%E2%9C%93; __proto__=x');
  assert.deepEqual(report.cookies, JSON.parse('{"session":"abc","theme":"dark","bad":"%E2%9C","check":"✓","__proto__":"x"}'));
  assert.equal(report.cookiesPrototype, null);
  raw.destroy();
});
