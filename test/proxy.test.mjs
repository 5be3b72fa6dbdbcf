// trustProxy end to end: handleOpen's ip for a connection from a trusted proxy is the client its
// X-Forwarded-For or Forwarded header names, for one from anyone else the peer's address; a bad
// trustProxy entry makes start reject with a TypeError naming it. The parsing rules are tested in
// Go (internal/wsproto/forwarded_test.go, broker/proxy_test.go); nginx in front: test/readme.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Proc, fixture, withTimeout } from './helpers.mjs';
import { e2eServer } from './harness.mjs';

/** The ip handleOpen got for a connection with `headers`, as the e2e worker reports it. */
async function ipSeen(t, port, headers) {
  const client = await Client.connect(port, { headers });
  t.after(() => client.terminate());
  client.send('!open');
  return (await client.next()).json.ip;
}

test('trustProxy: a trusted peer\'s X-Forwarded-For or Forwarded names the client, skipping trusted hops', async (t) => {
  const { port } = await e2eServer(t, { trustProxy: ['127.0.0.1', '10.0.0.0/8', 'fd00::/8'] });
  assert.equal(await ipSeen(t, port, {}), '127.0.0.1', 'no header: the peer');
  assert.equal(await ipSeen(t, port, { 'X-Forwarded-For': '198.51.100.1, 203.0.113.7, 10.1.2.3' }), '203.0.113.7');
  assert.equal(await ipSeen(t, port, { 'X-Forwarded-For': '10.0.0.9, fd00::5' }), '10.0.0.9', 'every hop trusted: the leftmost');
  assert.equal(await ipSeen(t, port, { Forwarded: 'for=198.51.100.1, for="[2001:db8::17]:4711";proto=https' }), '2001:db8::17');
  assert.equal(await ipSeen(t, port, { 'X-Forwarded-For': '203.0.113.7', Forwarded: 'for=198.51.100.1' }), '203.0.113.7', 'X-Forwarded-For wins');
  assert.equal(await ipSeen(t, port, { 'X-Forwarded-For': '203.0.113.7, 10.0.0.2, unknown' }), '127.0.0.1', 'an entry naming no address: the proxy that wrote it');
  assert.equal(await ipSeen(t, port, { 'X-Forwarded-For': '203.0.113.7, garbage, 10.0.0.2' }), '10.0.0.2');
});

test('trustProxy: the headers of a peer that is not listed are ignored; \'loopback\' lists 127.0.0.1', async (t) => {
  const headers = { 'X-Forwarded-For': '203.0.113.7' };
  const untrusting = await e2eServer(t, { trustProxy: '10.0.0.0/8' });
  assert.equal(await ipSeen(t, untrusting.port, headers), '127.0.0.1');
  const loopback = await e2eServer(t, { trustProxy: ['loopback'] });
  assert.equal(await ipSeen(t, loopback.port, headers), '203.0.113.7');
});

test('trustProxy: a bad entry is a TypeError that names it', async (t) => {
  const bad = [
    [true, /options\.trustProxy must be an array of your proxies' addresses or CIDRs, like \['127\.0\.0\.1', '10\.0\.0\.0\/8'\] \(true is refused: trusting every peer would let any client choose its ip\), got boolean true/],
    [1, /options\.trustProxy must be an array .*, got number 1/],
    ['10.0.0.1, 10.0.0.2', /options\.trustProxy must be an IPv4 or IPv6 address .*, got the string "10\.0\.0\.1, 10\.0\.0\.2"/],
    [['127.0.0.1', '10.0.0.0/33'], /options\.trustProxy\[1\] must be an IPv4 or IPv6 address \('10\.0\.0\.1', '::1'\), a CIDR \('10\.0\.0\.0\/8', 'fd00::\/8'\) or one of 'loopback', 'linklocal', 'uniquelocal', got the string "10\.0\.0\.0\/33"/],
    [['fe80::1%eth0'], /options\.trustProxy\[0\] must be .*, got the string "fe80::1%eth0"/],
    [['localhost'], /options\.trustProxy\[0\] must be .*, got the string "localhost"/],
    [['::1', null], /options\.trustProxy\[1\] must be .*, got null/],
  ];
  await Promise.all(bad.map(async ([trustProxy, message]) => {
    const child = new Proc(process.execPath, [fixture('e2e-server.mjs'), JSON.stringify({ bind: '127.0.0.1:1', workerPath: fixture('e2e-worker.mjs'), threads: 1, trustProxy })]);
    t.after(() => child.stop());
    await child.waitForStderr(new RegExp(`TypeError: start: ${message.source}`));
    assert.notEqual((await withTimeout(child.exited, 10_000, 'the process to exit')).code, 0);
  }));
});
