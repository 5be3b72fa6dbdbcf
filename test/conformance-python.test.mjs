// Protocol conformance with a client nobody here wrote: Python's `websockets` (Debian's
// python3-websockets, installed by `make deps`), run by test/fixtures/python-client.py against
// test/fixtures/e2e-server.mjs in a child process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Client } from './helpers.mjs';
import { Proc, closeCounts, e2eServer, fixture } from './harness.mjs';

const PYTHON = '/usr/bin/python3';
const MAX_PAYLOAD = 2 * 1024 * 1024;

function requirePythonWebsockets() {
  const missing = `Python's websockets client is needed: ${PYTHON} with the Debian package python3-websockets ('make deps' installs it)`;
  if (!existsSync(PYTHON)) throw new Error(`${missing}; ${PYTHON} does not exist`);
  try {
    return execFileSync(PYTHON, ['-c', 'import websockets; print(websockets.__version__)'], { encoding: 'utf8' }).trim();
  } catch (err) {
    throw new Error(`${missing}; importing it failed: ${err.stderr || err.message}`);
  }
}

test("Python's websockets: echo, fragments, ping/pong, close codes, 1009 over maxPayload; handleClose once each", async (t) => {
  const version = requirePythonWebsockets();
  const { server, port, events } = await e2eServer(t, { maxPayload: MAX_PAYLOAD });
  const observer = await Client.connect(port, { headers: { 'x-observer': '1' } });
  t.after(() => observer.terminate());

  const py = new Proc(PYTHON, [fixture('python-client.py'), String(port), String(MAX_PAYLOAD)]);
  t.after(() => py.stop());
  await py.waitForLine(/^done$/, 150_000);
  const status = await py.exited;
  assert.deepEqual(status, { code: 0, signal: null }, `python-client.py failed:\n${py.stderr}`);
  const seen = Object.fromEntries(
    py.lines.filter((l) => l.startsWith('obs ')).map((l) => {
      const [, name, ...json] = l.split(' ');
      return [name, JSON.parse(json.join(' '))];
    }),
  );
  console.log(`websockets ${version}: ${JSON.stringify(seen['close-4000'])}`);

  for (const name of ['text-empty', 'text-ascii', 'text-non-ascii', 'text-1mib', 'binary-empty', 'binary-one', 'binary-bytes', 'binary-1mib']) {
    assert.deepEqual({ ...seen[name], length: undefined }, { same_type: true, equal: true, length: undefined }, `${name}: ${JSON.stringify(seen[name])}`);
  }
  assert.equal(seen['text-1mib'].length, 512 * 1024);
  assert.equal(seen['binary-1mib'].length, 1 << 20);
  assert.equal(seen['fragmented-text'].equal, true, JSON.stringify(seen['fragmented-text']));
  assert.equal(seen['fragmented-binary'].equal, true, JSON.stringify(seen['fragmented-binary']));
  assert.deepEqual(seen['ping-between-fragments'], { pong: true, equal: true });
  for (const name of ['ping-text', 'ping-binary', 'ping-empty']) assert.deepEqual(seen[name], { pong: true }, `${name}: a pong with the same payload`);
  // The broker echoes the client's close code (DESIGN: "client's own code echoed").
  assert.equal(seen['close-4000'].code, 4000);
  for (const name of ['too-big-text', 'too-big-binary', 'too-big-fragmented']) {
    assert.deepEqual(seen[name], { closed: true, code: 1009 }, name);
  }

  // handleClose ran exactly once for each of the four connections.
  const ids = seen['socket-ids'];
  assert.equal(ids.length, 4);
  for (const id of ids) await observer.next((m) => m.text === `close ${id}`, 10_000, `handleClose of ${id}`);
  // stop() resolves once every handleClose has been delivered: no duplicate can come later.
  await server.ask('stop', /^stopped$/, 15_000);
  for (const [id, n] of closeCounts(events, ids)) assert.equal(n, 1, `handleClose of socket ${id} ran ${n} times`);
});
