// Flow control as JavaScript sees it: send's result, bufferedAmount and handleDrain, with a real
// client that stops reading and resumes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Proc, fixture, listeningPorts, refusedStatus, withTimeout } from './helpers.mjs';

/** Starts test/fixtures/flow-server.mjs with `options`; resolves with { port, httpPort (with `attach`), stats }. */
async function flowServer(t, options, env = {}) {
  const server = new Proc(process.execPath, [fixture('flow-server.mjs'), JSON.stringify(options)], { env: { WSBROKER_LOG: 'warn', ...env } });
  t.after(() => server.stop());
  const [port, httpPort] = await listeningPorts(server);
  const stats = async () => JSON.parse((await server.ask('stats', /^stats (.*)$/))[1]);
  return { port, httpPort, stats };
}

/** A client that has joined `observers`. */
async function observer(t, port) {
  const c = await Client.connect(port);
  t.after(() => c.terminate());
  c.send('observe');
  await c.next((m) => m.text === 'observing');
  return c;
}

const report = (c, re) => c.next((m) => re.test(m.text ?? ''), 20_000, `a report matching ${re}`).then((m) => re.exec(m.text));

for (const ordered of [false, true]) {
  test(`a client that stops reading (ordered: ${ordered}): send returns false, the producer waits for handleDrain, and once the client reads again nothing is lost or closed`, async (t) => {
    const threshold = 256 << 10;
    // handleOpen returns send's result for a welcome over the threshold: the upgrade is accepted.
    const { port } = await flowServer(t, { backpressureThreshold: threshold, ordered }, { WELCOME_BYTES: String(threshold + 1000) });
    const watch = await observer(t, port);
    const slow = await Client.connect(port);
    t.after(() => slow.terminate());
    assert.match((await slow.next()).text, /^welcome\.+$/);
    slow.ws._socket.pause(); // reads nothing more: the server's queue for it grows
    const count = 400;
    slow.send(`stream ${count} 65536`); // 25 MiB, more than the kernel's buffers hold
    const [, id, queued] = await report(watch, /^waiting (\d+) (\d+)$/);
    assert.ok(Number(queued) > threshold, `bufferedAmount ${queued} when send returned false, threshold ${threshold}`);

    slow.ws._socket.resume();
    // (The kernel may take more of the queue while the client is paused, so a drain may come before.)
    const [, atDrain] = await report(watch, new RegExp(`^drained ${id} (\\d+)$`));
    assert.equal(Number(atDrain), 0, 'the queue is written out when handleDrain runs');
    const [, falses, drains] = await report(watch, new RegExp(`^streamed ${id} (\\d+) (\\d+)$`));
    assert.ok(Number(falses) >= 1);
    assert.equal(drains, falses, 'every false was followed by one handleDrain');
    watch.send(`buffered ${id}`);
    const [, left] = await report(watch, new RegExp(`^buffered ${id} (\\d+)$`));
    assert.ok(Number(left) <= threshold, `bufferedAmount ${left} once the stream is sent`);
    for (let i = 0; i < count; i++) {
      const m = await slow.next(undefined, 20_000, `message ${i}`);
      assert.equal(m.binary?.readUInt32BE(0), i, `message ${i} in order`);
    }
    slow.send('still open');
    assert.equal((await slow.next()).text, 'still open');
  });
}

test('backpressureThreshold above maxBackpressure is a TypeError', async (t) => {
  const server = new Proc(process.execPath, [fixture('flow-server.mjs'), JSON.stringify({ maxBackpressure: 65536, backpressureThreshold: 65537 })]);
  t.after(() => server.stop());
  await withTimeout(server.exited, 30_000, 'the server to fail');
  assert.match(server.stderr, /TypeError: start: options\.backpressureThreshold must not exceed maxBackpressure \(65536\)/);
});

test('maxMessagesPerSecond: the message over the bucket closes the connection with 1008 and says why; pings do not count', async (t) => {
  const { port, stats } = await flowServer(t, { maxMessagesPerSecond: 2 });
  const c = await Client.connect(port);
  t.after(() => c.terminate());
  await c.next(); // the welcome
  // In one write, so that no time passes for the bucket to refill between them.
  c.ws._socket.cork();
  for (let i = 0; i < 10; i++) c.ws.ping();
  for (let i = 0; i < 3; i++) c.send(`message ${i}`);
  c.ws._socket.uncork();
  assert.deepEqual(await withTimeout(c.closed, 10_000, 'the close'), { code: 1008, reason: 'message rate limit exceeded' });
  const figures = await stats();
  assert.equal(figures.closedForRate, 1);
  assert.equal(figures.messagesIn, 2, 'the message over the limit is not delivered');
});

test('maxConnectionsPerIp: one more connection from an address gets HTTP 429, counted over bind and an attached server, and freed when one ends', async (t) => {
  const { port: bindPort, httpPort, stats } = await flowServer(t, { maxConnectionsPerIp: 2, attach: true });
  const watch = await observer(t, bindPort); // from 127.0.0.1: one of its two
  const second = await Client.connect(httpPort);
  t.after(() => second.terminate());
  assert.equal(await refusedStatus(bindPort), 429);
  assert.equal(await refusedStatus(httpPort), 429);
  const elsewhere = await Client.connect(bindPort, { localAddress: '127.0.0.2' }); // another address
  t.after(() => elsewhere.terminate());
  await second.close();
  await report(watch, /^closed \d+$/); // handleClose comes after the count is released
  const again = await Client.connect(bindPort);
  again.terminate();
  assert.equal((await stats()).refusedPerIp, 2);
});

test('maxConnectionsPerIp counts the address that trustProxy gives: the forwarded client, not the proxy', async (t) => {
  const { port } = await flowServer(t, { maxConnectionsPerIp: 1, trustProxy: 'loopback' });
  const from = (client) => ({ headers: { 'x-forwarded-for': client } });
  const one = await Client.connect(port, from('203.0.113.1'));
  t.after(() => one.terminate());
  assert.equal(await refusedStatus(port, from('203.0.113.1')), 429);
  const other = await Client.connect(port, from('203.0.113.2'));
  t.after(() => other.terminate());
});
