// The chat example under Bun (the `bun` devDependency ships its binary): the addon loads through
// Bun's Node-API, the chat logic runs in Bun's worker threads, and `ws` clients talk through it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Client, Proc, chatExamplePorts, root } from './helpers.mjs';

const BUN = path.join(root, 'node_modules', '.bin', 'bun');

test('the chat example runs under Bun', { timeout: 60_000 }, async (t) => {
  assert.ok(existsSync(BUN), `${BUN} is missing: 'make deps' installs the bun devDependency`);
  const version = new Proc(BUN, ['--version']);
  assert.equal((await version.exited).code, 0, `${BUN} --version failed (a placeholder left by npm ci --ignore-scripts? 'npm rebuild bun' installs it): ${version.stderr}`);

  // Under Bun the example's WebSockets are on a port of their own (start({ server }) needs Node).
  const server = new Proc(BUN, [path.join(root, 'lib', 'example', 'example.js')], {
    env: { WS_PORT: '0', HTTP_PORT: '0', WSBROKER_LOG: 'warn' },
  });
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.terminate();
    await server.stop();
  });
  const { httpPort, wsPort } = await chatExamplePorts(server);
  t.diagnostic(`bun ${version.lines[0]}`);

  assert.match(await (await fetch(`http://127.0.0.1:${httpPort}/`)).text(), /<form id="join-form"/);
  assert.equal(await (await fetch(`http://127.0.0.1:${httpPort}/config.js`)).text(), `window.CHAT_WS_PORT = ${wsPort};\n`, 'the page is told the port');
  const connect = async () => {
    const c = await Client.connect(wsPort, { origin: `http://localhost:${httpPort}` });
    clients.push(c);
    return c;
  };
  const alice = await connect();
  const bob = await connect();
  alice.cmd({ type: 'join', alias: 'alice', room: 'lobby' });
  assert.deepEqual(await alice.nextType('joined'), { type: 'joined', room: 'lobby', alias: 'alice' });
  bob.cmd({ type: 'join', alias: 'bob', room: 'lobby' });
  await bob.nextType('joined');
  assert.equal((await alice.nextType('user-joined')).alias, 'alice');
  assert.equal((await alice.nextType('user-joined')).alias, 'bob');

  bob.cmd({ type: 'message', body: 'hello from Bun ✓' });
  for (const c of [alice, bob]) assert.equal((await c.nextType('chat-message')).body, 'hello from Bun ✓');
  alice.cmd({ type: 'message', body: 'hi bob' });
  assert.equal((await bob.nextType('chat-message')).body, 'hi bob');

  bob.terminate();
  assert.equal((await alice.nextType('user-left')).alias, 'bob');
  assert.equal(server.exitStatus, undefined, 'the Bun process is still running');
});

test('start({ server }) under Bun is a TypeError that says to use bind', { timeout: 60_000 }, async () => {
  const script = `const http = require('node:http'); require(${JSON.stringify(path.join(root, 'lib', 'js', 'index.cjs'))})
    .start({ server: http.createServer(), threads: 0 }).catch((err) => { console.log(err.constructor.name + ': ' + err.message); });`;
  const run = new Proc(BUN, ['-e', script], { env: { WSBROKER_LOG: 'warn' } });
  assert.equal((await run.exited).code, 0, run.stderr);
  assert.match(run.lines.join('\n'), /^TypeError: start: options\.server needs Node\.js: .*options\.bind/m);
});
