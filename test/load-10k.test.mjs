// 10,000 simultaneous connections through the whole stack: the clients (test/fixtures/
// many-clients.mjs) and the server (test/fixtures/e2e-server.mjs) each run in a child process whose
// limit on open files is raised, the clients spread over 16 source addresses. Every connection
// opens, is subscribed to one channel, receives one broadcast exactly once and closes; every
// handleClose is delivered. The time taken and the server's RSS are printed, not asserted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from './helpers.mjs';
import { e2eServer, fixture, mib, nodeWithManyFiles, rssOf } from './harness.mjs';

const COUNT = 10_000;
const NEEDED_FILES = COUNT + 200;

test(`${COUNT} simultaneous connections: all open, one broadcast each exactly once, all close, every handleClose`, { timeout: 120_000 }, async (t) => {
  const { server, port, events } = await e2eServer(t, { threads: 2 }, { manyFiles: true });
  const serverFiles = Number((await server.waitForLine(/^nofile (\d+)$/))[1]);
  assert.ok(serverFiles >= NEEDED_FILES, `the server may open only ${serverFiles} files (hard limit: ulimit -Hn); ${NEEDED_FILES} are needed`);
  const baseline = rssOf(server.pid);

  // The observer hears every open and close the worker records.
  const observer = await Client.connect(port, { headers: { 'x-observer': '1' } });
  t.after(() => observer.terminate());
  let opens = 0;
  let closes = 0;
  let allClosed;
  const allClosedP = new Promise((resolve) => {
    allClosed = resolve;
  });
  observer.ws.on('message', (data) => {
    const line = data.toString();
    if (line.endsWith(' load')) opens++;
    else if (line.startsWith('close ') && ++closes === COUNT) allClosed();
  });

  const started = Date.now();
  const clients = nodeWithManyFiles([fixture('many-clients.mjs'), String(port), String(COUNT), 'load-channel', '16']);
  t.after(() => clients.stop());
  const clientFiles = Number((await clients.waitForLine(/^nofile (\d+)$/))[1]);
  assert.ok(clientFiles >= NEEDED_FILES, `the client process may open only ${clientFiles} files (hard limit: ulimit -Hn); ${NEEDED_FILES} are needed`);

  // Rejects when the clients report an error; never settles otherwise.
  const failure = clients.waitForLine(/^error /, 100_000).then(
    (m) => assert.fail(`many-clients.mjs: ${m.input}\n${clients.stderr}`),
    () => new Promise(() => {}),
  );
  const openedMs = Number((await Promise.race([clients.waitForLine(/^opened \d+ (\d+)$/, 90_000), failure]))[1]);
  const rssOpen = rssOf(server.pid);
  const received = JSON.parse((await Promise.race([clients.waitForLine(/^received (.*)$/, 60_000), failure]))[1]);
  const closed = JSON.parse((await Promise.race([clients.waitForLine(/^closed (.*)$/, 60_000), failure]))[1]);
  await Promise.race([allClosedP, failure, new Promise((_, reject) => setTimeout(() => reject(new Error(`only ${closes} of ${COUNT} handleClose calls were announced`)), 30_000).unref())]);
  const total = Date.now() - started;
  const rssAfter = rssOf(server.pid);
  console.log(
    `${COUNT} connections: opened in ${openedMs} ms, broadcast delivered to all in ${received.ms} ms, ` +
      `closed in ${closed.ms} ms, every handleClose after ${total} ms in all; server RSS ${mib(baseline)} before, ` +
      `${mib(rssOpen)} with ${COUNT} open (${((rssOpen - baseline) / COUNT / 1024).toFixed(1)} KiB per connection), ${mib(rssAfter)} after`,
  );

  assert.equal(received.ok, COUNT, `connections that got exactly "hello" then "end": ${received.ok}; some others: ${JSON.stringify(received.bad)}`);
  assert.deepEqual(closed.codes, { 1000: COUNT }, 'every close echoed with 1000');
  assert.equal(closed.extra, 0, 'nothing arrived after the broadcast');
  assert.equal(opens, COUNT, 'handleOpen announced for every connection');
  assert.deepEqual(await clients.exited, { code: 0, signal: null });

  // The log: one open and exactly one close for each of the 10,000 sockets.
  await server.ask('stop', /^stopped$/, 30_000); // every handleClose delivered
  const loadIds = new Set();
  const closeCount = new Map();
  for (const e of events()) {
    const [kind, id, tag] = e.split(' ');
    if (kind === 'open' && tag === 'load') loadIds.add(id);
    else if (kind === 'close') closeCount.set(id, (closeCount.get(id) ?? 0) + 1);
  }
  assert.equal(loadIds.size, COUNT);
  const wrong = [...loadIds].filter((id) => closeCount.get(id) !== 1);
  assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} sockets without exactly one handleClose`);
});
