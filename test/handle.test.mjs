// What start() resolves to: the addresses bound (port 0 included) and close(), which ends one
// call's listeners and connections while the others go on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client, Proc, fixture, isListening, racyFreePort, refusedStatus, withTimeout } from './helpers.mjs';
import { until } from './harness.mjs';

/** Whether this machine has an IPv6 loopback to listen on. */
const hasIPv6 = await new Promise((resolve) => {
  const s = net.createServer().once('error', () => resolve(false));
  s.listen(0, '::1', () => s.close(() => resolve(true)));
});

/** Starts test/fixtures/handle-server.mjs; resolves with it and `start(options)`, which resolves with { index, addresses }. */
async function handleServer(t) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsbroker-handle-'));
  const server = new Proc(process.execPath, [fixture('handle-server.mjs')], { env: { EVENT_LOG: path.join(dir, 'events.log'), WSBROKER_LOG: 'warn' } });
  t.after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await server.waitForLine(/^ready$/, 30_000);
  const start = async (options) => {
    const [, index, addresses] = await server.ask(`start ${JSON.stringify(options)}`, /^started (\d+) (.*)$/, 30_000);
    return { index: Number(index), addresses: JSON.parse(addresses) };
  };
  const attach = async (options = {}) => {
    const [, index, port] = await server.ask(`attach ${JSON.stringify(options)}`, /^attached (\d+) (\d+)$/, 30_000);
    return { index: Number(index), port: Number(port) };
  };
  const close = async (index, grace = '') => JSON.parse((await server.ask(`close ${index} ${grace}`.trim(), new RegExp(`^closed ${index} (.*)$`), 30_000))[1]);
  return { server, start, attach, close };
}

/** The close code handleClose of socket `id` got, per the `close ID CODE` lines of the worker's log; undefined if it did not run. */
const closeCode = (closes, id) => closes.find((l) => l.startsWith(`close ${id} `))?.split(' ')[2];

/** Opens a client on `address` ({ host, port }, and `path`) and returns it with its socket id. */
async function client({ host, port }, path) {
  const c = await Client.connect(port, { host: host.includes(':') ? `[${host}]` : host, path });
  c.send('id');
  const id = Number((await c.next((m) => m.text?.startsWith('id '))).text.slice(3));
  return { c, id };
}

async function echoes(c, text) {
  c.send(`echo ${text}`);
  assert.equal((await c.next()).text, text);
}

test('port 0: addresses are those bound, one per bind address, in order, each serving', async (t) => {
  const { start } = await handleServer(t);
  const bind = ['127.0.0.1:0', ...(hasIPv6 ? ['[::1]:0'] : []), '127.0.0.1:0'];
  const { addresses } = await start({ bind });
  assert.deepEqual(addresses.map((a) => a.host), ['127.0.0.1', ...(hasIPv6 ? ['::1'] : []), '127.0.0.1']);
  for (const { port } of addresses) assert.ok(Number.isInteger(port) && port > 0, `port ${port}`);
  assert.equal(new Set(addresses.map((a) => a.port)).size, addresses.length, 'distinct ports');
  for (const address of addresses) await echoes((await client(address)).c, `on ${address.host}`);
});

test("close(): that call's clients get 1001 and its handleClose runs before it resolves; another call's go on; its ports are free again", async (t) => {
  const { server, start, close } = await handleServer(t);
  // The metrics server's port is not in `addresses`: a free one is picked, to check that it closes.
  const metrics = await racyFreePort();
  const closing = await start({ bind: ['127.0.0.1:0', '127.0.0.1:0'], metrics: `127.0.0.1:${metrics}` });
  const staying = await start({ bind: '127.0.0.1:0' });
  const closingClients = [await client(closing.addresses[0]), await client(closing.addresses[1])];
  const other = await client(staying.addresses[0]);

  const { same, closes } = await close(closing.index);
  assert.equal(same, true, 'a second close() returns the same promise');
  for (const { c, id } of closingClients) {
    assert.equal((await withTimeout(c.closed, 10_000, 'the close')).code, 1001);
    assert.equal(closeCode(closes, id), '1001', `handleClose of ${id} ran with 1001 before close() resolved: ${closes}`);
  }
  assert.equal(closeCode(closes, other.id), undefined, 'the other call was not closed');
  for (const port of [...closing.addresses.map((a) => a.port), metrics]) assert.equal(await isListening(port), false, `port ${port} closed`);
  await echoes(other.c, 'still served');
  assert.equal((await close(closing.index)).same, true, 'close() again resolves');

  // The freed port takes a new start.
  const again = await start({ bind: `127.0.0.1:${closing.addresses[0].port}` });
  assert.deepEqual(again.addresses, [closing.addresses[0]]);
  await echoes((await client(again.addresses[0])).c, 'on the same port');

  // After stop(), close() resolves at once.
  await server.ask('stop', /^stopped$/, 30_000);
  assert.equal((await other.c.closed).code, 1001);
  await close(staying.index);
});

test('close({ grace }): no new connections; open ones go on until they end or the grace is over, then 1001; a bad grace is a TypeError', async (t) => {
  const { server, start, close } = await handleServer(t);
  const first = await start({ bind: '127.0.0.1:0' });
  const { c, id } = await client(first.addresses[0]);
  const closed = close(first.index, 600_000);
  await until('the listener to close', () => isListening(first.addresses[0].port), (listening) => !listening);
  await echoes(c, 'during the grace');
  c.ws.close(1000);
  const { closes } = await closed;
  assert.equal(closeCode(closes, id), '1000', 'the client that left (1000) ended the grace');

  const second = await start({ bind: '127.0.0.1:0' });
  const late = await client(second.addresses[0]);
  const started = Date.now();
  await close(second.index, 300);
  assert.ok(Date.now() - started >= 300, 'the grace was given');
  assert.equal((await late.c.closed).code, 1001);

  const [, message] = await server.ask(`badclose ${second.index}`, /^badclose (.*)$/);
  assert.equal(message, 'TypeError: close: options.grace must be an integer from 0 to 2147483647 (milliseconds), got number -1');
});

test("close() of a start({ server }) call: its clients get 1001 and handleClose runs before it resolves; its path is no longer taken; the app serves on", async (t) => {
  const { start, attach, close } = await handleServer(t);
  const staying = await start({ bind: '127.0.0.1:0' });
  const attached = await attach();
  const { c, id } = await client({ host: '127.0.0.1', port: attached.port }, '/ws');
  const other = await client(staying.addresses[0]);
  await echoes(c, 'through the app');

  const { closes } = await close(attached.index);
  assert.equal((await withTimeout(c.closed, 10_000, 'the close')).code, 1001);
  assert.equal(closeCode(closes, id), '1001', `handleClose of ${id} ran with 1001 before close() resolved: ${closes}`);
  assert.equal(closeCode(closes, other.id), undefined, 'the other call was not closed');
  await echoes(other.c, 'still served');
  assert.equal(await (await fetch(`http://127.0.0.1:${attached.port}/`)).text(), 'page', 'the app still serves');
  // The upgrade listener is gone: with no other, Node hands the request to the app as any other.
  assert.equal(await refusedStatus(attached.port, { path: '/ws' }), 200);
});
