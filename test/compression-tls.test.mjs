// The compression and tls options of start(), end to end: the `ws` client with and without
// permessage-deflate, Python's websockets with it, and wss:// with a certificate made here
// (Chromium checks both in conformance-browser.test.mjs). Servers: test/fixtures/e2e-server.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import zlib from 'node:zlib';
import { Client, makeCert, refusedStatus } from './helpers.mjs';
import { FIN, OP, Proc, RawClient, clientFrame, e2eServer, until, withTimeout } from './harness.mjs';

const MAX_PAYLOAD = 1024 * 1024;
const BIG = 'compress me, '.repeat(10_000); // 130 KB that deflate shrinks to a few hundred bytes

/** Bytes this client's socket read and wrote while `fn` ran. */
async function traffic(client, fn) {
  const socket = client.ws._socket;
  const [read, written] = [socket.bytesRead, socket.bytesWritten];
  await fn();
  return { read: socket.bytesRead - read, written: socket.bytesWritten - written };
}

test('compression: `ws` with permessage-deflate exchanges compressed messages, without it plain ones; a broadcast reaches both; an inflate bomb closes with 1009', async (t) => {
  const { port } = await e2eServer(t, { compression: true, maxPayload: MAX_PAYLOAD });
  const zipped = await Client.connect(port, { perMessageDeflate: true, headers: { 'x-sub': 'room' } });
  const plain = await Client.connect(port, { perMessageDeflate: false, headers: { 'x-sub': 'room' } });
  t.after(() => {
    zipped.terminate();
    plain.terminate();
  });
  assert.match(zipped.ws.extensions, /^permessage-deflate/);
  assert.equal(plain.ws.extensions, '');

  // Echo both ways: compressed on the wire for one client, plain for the other.
  const z = await traffic(zipped, async () => {
    zipped.send(BIG);
    assert.equal((await zipped.next()).text, BIG);
  });
  assert.ok(z.written < BIG.length / 20 && z.read < BIG.length / 20, `compressed echo: ${JSON.stringify(z)}`);
  const p = await traffic(plain, async () => {
    plain.send(BIG);
    assert.equal((await plain.next()).text, BIG);
  });
  assert.ok(p.read > BIG.length, `plain echo: ${JSON.stringify(p)}`);
  const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) & 0xff));
  zipped.send(bytes);
  assert.deepEqual((await zipped.next()).binary, bytes);

  // A broadcast: compressed for the compressing subscriber, plain for the other.
  const zb = await traffic(zipped, async () => {
    const pb = await traffic(plain, async () => {
      zipped.send(`!pub room ${BIG}`);
      assert.equal((await plain.next()).text, BIG);
    });
    assert.ok(pb.read > BIG.length, `plain broadcast: ${JSON.stringify(pb)}`);
    assert.equal((await zipped.next()).text, BIG);
  });
  assert.ok(zb.read < BIG.length / 20, `compressed broadcast: ${JSON.stringify(zb)}`);

  // 2 MiB of zeros compress to a few KB but inflate past maxPayload.
  zipped.send(Buffer.alloc(2 * MAX_PAYLOAD));
  assert.equal((await withTimeout(zipped.closed, 10_000, 'the close of the bomb')).code, 1009);
  // The other connection is unaffected.
  plain.send('still here');
  assert.equal((await plain.next()).text, 'still here');
});

test("compression: Python's websockets negotiates permessage-deflate and exchanges compressed messages", async (t) => {
  const { port } = await e2eServer(t, { compression: true });
  const script = `
import asyncio, json, sys, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:${port}/", max_size=None, ping_interval=None) as ws:
        big = "compress me, " * 10000
        await ws.send(big)
        text = await asyncio.wait_for(ws.recv(), 15)
        await ws.send(bytes(range(256)) * 300)
        data = await asyncio.wait_for(ws.recv(), 15)
        print(json.dumps({"extensions": [e.name for e in ws.extensions], "text": text == big, "binary": data == bytes(range(256)) * 300}))
asyncio.run(main())
`;
  const py = new Proc('/usr/bin/python3', ['-c', script]);
  t.after(() => py.stop());
  const [line] = await py.waitForLine(/^\{.*\}$/, 30_000);
  assert.deepEqual(JSON.parse(line), { extensions: ['permessage-deflate'], text: true, binary: true }, py.stderr);
});

test('tls: wss:// with a certificate file, compression over TLS, a plain-HTTP request answered with 400, closes from either side', async (t) => {
  const { cert, certPath, keyPath } = makeCert(t);
  const { port } = await e2eServer(t, { tls: { cert: certPath, key: keyPath }, compression: true });
  const client = await Client.connect(port, { ca: cert, perMessageDeflate: true });
  t.after(() => client.terminate());
  assert.match(client.ws.extensions, /^permessage-deflate/);
  client.send('grüße über TLS');
  assert.equal((await client.next()).text, 'grüße über TLS');
  const c = await traffic(client, async () => {
    client.send(BIG);
    assert.equal((await client.next()).text, BIG);
  });
  assert.ok(c.read < BIG.length / 20, `compressed over TLS: ${JSON.stringify(c)}`);

  // Plain HTTP to the TLS port: an HTTP answer a person can read, and the server carries on.
  assert.equal(await refusedStatus(port, { perMessageDeflate: false }), 400);
  const response = await new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
  assert.match(response, /^HTTP\/1\.1 400 Bad Request\r\n[^]*this is a TLS \(wss:\/\/\) server$/);
  const again = await Client.connect(port, { ca: cert });
  again.send('after the plain requests');
  assert.equal((await again.next()).text, 'after the plain requests');
  again.terminate();

  // Closing over TLS, from either side: the client gets the server's close frame (the server
  // echoes a client's code without its reason), Node's TLS reports no error, and handleClose runs.
  const observer = await Client.connect(port, { ca: cert, headers: { 'x-observer': '1' } });
  t.after(() => observer.terminate());
  for (const [side, code, reason, echoed] of [['server', 4001, 'server says bye', 'server says bye'], ['client', 4002, 'client says bye', '']]) {
    const c = await Client.connect(port, { ca: cert });
    const errors = [];
    c.ws.on('error', (e) => errors.push(e.message));
    c.send('!id');
    const id = (await c.next()).text.split(' ')[1];
    if (side === 'server') c.send(`!close ${code} ${reason}`);
    else c.ws.close(code, reason);
    assert.deepEqual(await c.closed, { code, reason: echoed }, `closed by the ${side}`);
    await observer.next((m) => m.text === `close ${id}`, 10_000, `handleClose of the socket closed by the ${side}`);
    assert.deepEqual(errors, [], `closed by the ${side}`);
  }
});

/** A chat-like JSON text of about `n` bytes (the same for the same `seed`). */
function chatText(n, seed = 1) {
  const words = 'the a broker message channel socket worker hello world compress deflate json user text time room join leave typing'.split(' ');
  let x = seed;
  const next = (m) => (x = (x * 1103515245 + 12345) % 2 ** 31) % m;
  const entries = [];
  for (let len = 0; len < n; ) {
    const e = JSON.stringify({ user: `user${next(1000)}`, room: `room${next(20)}`, ts: 1732579200000 + next(1e6), text: Array.from({ length: 8 }, () => words[next(words.length)]).join(' ') });
    entries.push(e);
    len += e.length + 1;
  }
  return `[${entries.join(',')}]`.slice(0, n);
}

test('compression: every permessage-deflate offer of Autobahn 13.* (a limited server window, context takeover or not) is accepted by `ws`, and messages of 1 KiB to 64 KiB echo compressed', async (t) => {
  const servers = {
    'compression: true': await e2eServer(t, { compression: true }),
    'serverContextTakeover': await e2eServer(t, { compression: { serverContextTakeover: true } }),
  };
  for (const [name, { port }] of Object.entries(servers)) {
    for (const serverNoContextTakeover of [false, true]) {
      for (const serverMaxWindowBits of [undefined, 8, 9, 15]) {
        for (const clientMaxWindowBits of [undefined, 10]) {
          const perMessageDeflate = { serverNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits, clientNoContextTakeover: true, threshold: 0 };
          const what = `${name}, client ${JSON.stringify(perMessageDeflate)}`;
          const client = await Client.connect(port, { perMessageDeflate });
          // What ws accepted from the response: the server's window is at most what was asked for,
          // and the server keeps its context only with the option and when the client allows it.
          const { params } = client.ws._extensions['permessage-deflate'];
          const takeover = name === 'serverContextTakeover' && !serverNoContextTakeover && (serverMaxWindowBits ?? 15) === 15;
          assert.deepEqual(
            { ...params },
            {
              ...(serverMaxWindowBits === undefined ? {} : { server_max_window_bits: serverMaxWindowBits }),
              ...(takeover ? {} : { server_no_context_takeover: true }),
              client_no_context_takeover: true,
              // Not in the response: ws fills in its own limit.
              ...(clientMaxWindowBits === undefined ? {} : { client_max_window_bits: clientMaxWindowBits }),
            },
            what,
          );
          for (const size of [1024, 16 * 1024, 64 * 1024]) {
            const text = chatText(size);
            const c = await traffic(client, async () => {
              client.send(text);
              assert.equal((await client.next()).text, text, `${what}: ${size} bytes`);
            });
            assert.ok(c.read < size / 2, `${what}: ${size} bytes came back in ${c.read}`);
          }
          client.terminate();
        }
      }
    }
  }
});

test('compression: with serverContextTakeover, a message like the one before comes back in a few bytes (raw frames); without it, at full size', async (t) => {
  const offer = { 'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits' };
  for (const [compression, takeover] of [[{ serverContextTakeover: true }, true], [true, false]]) {
    const { port } = await e2eServer(t, { compression });
    const raw = await RawClient.connect(port, { headers: offer });
    t.after(() => raw.destroy());
    const text = chatText(2048);
    const payloads = [];
    for (let i = 0; i < 3; i++) {
      await raw.write(clientFrame(FIN | OP.text, Buffer.from(text)), { byteByByte: false });
      const f = await raw.nextFrame((x) => x.op === OP.text, 10_000, `echo ${i}`);
      assert.equal(f.rsv, 0x40, `echo ${i} is compressed`);
      payloads.push(f.payload);
    }
    // One decoder for the connection, as a client that keeps the server's window.
    const tail = Buffer.from([0, 0, 0xff, 0xff]);
    const inflated = zlib.inflateRawSync(Buffer.concat(payloads.flatMap((p) => [p, tail])), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    assert.equal(inflated.toString(), text.repeat(3));
    const [first, second, third] = payloads.map((p) => p.length);
    if (takeover) assert.ok(second < 50 && third < 50 && first > 500, `with takeover: ${first}, ${second}, ${third} bytes`);
    else assert.ok(second === first && third === first, `without takeover: ${first}, ${second}, ${third} bytes`);
  }
});

test('compression: a compressed message that is not valid deflate closes with 1007, RSV1 on a continuation frame with 1002; handleClose gets the code', async (t) => {
  const { port, stats } = await e2eServer(t, { compression: true });
  const offer = { 'sec-websocket-extensions': 'permessage-deflate' };
  const deflated = zlib.deflateRawSync('a compressed message', { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
  const cases = [
    ['not valid deflate (a reserved block type)', clientFrame(FIN | 0x40 | OP.text, Buffer.from([0xff, 0xff, 0xff])), 1007],
    ['RSV1 on a continuation frame', Buffer.concat([clientFrame(0x40 | OP.text, deflated.subarray(0, 4)), clientFrame(FIN | 0x40 | OP.cont, deflated.subarray(4))]), 1002],
  ];
  for (const [name, frames, code] of cases) {
    const raw = await RawClient.connect(port, { headers: offer });
    t.after(() => raw.destroy());
    await raw.write(clientFrame(FIN | 0x40 | OP.text, deflated), { byteByByte: false });
    const echo = await raw.nextFrame((f) => f.op === OP.text, 10_000, 'the echo');
    assert.equal(echo.rsv === 0x40 ? zlib.inflateRawSync(Buffer.concat([echo.payload, Buffer.from([0, 0, 0xff, 0xff])])).toString() : echo.payload.toString(), 'a compressed message', 'compression negotiated');
    await raw.write(frames, { byteByByte: false });
    assert.equal((await raw.nextClose(10_000)).code, code, name);
  }
  const closed = async () => (await stats()).closed;
  await until('handleClose of both', closed, (c) => c['1007'] === 1 && c['1002'] === 1);
});
