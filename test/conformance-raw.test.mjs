// RFC 6455 through the whole stack (Go core, addon, worker threads), with frames written byte by
// byte over a raw TCP socket: every malformed case gets its close code, handleClose runs once for
// every connection, and a bystander client is not disturbed. The server is
// test/fixtures/e2e-server.mjs in a child process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from './helpers.mjs';
import { FIN, OP, RawClient, clientFrame, closeCounts, closePayload, e2eServer, withTimeout } from './harness.mjs';

const cat = (...frames) => Buffer.concat(frames);
const bytes = (...b) => Buffer.from(b);

// [name, bytes the client writes (one byte per write), close code expected from the server]
const MALFORMED = [
  ['unmasked client frame', clientFrame(FIN | OP.text, 'hi', { mask: false }), 1002],
  ['unmasked client ping', clientFrame(FIN | OP.ping, 'p', { mask: false }), 1002],
  ['RSV1 without an extension', clientFrame(FIN | 0x40 | OP.text, 'hi'), 1002],
  ['RSV2', clientFrame(FIN | 0x20 | OP.binary, 'hi'), 1002],
  ['RSV3 on a ping', clientFrame(FIN | 0x10 | OP.ping, ''), 1002],
  ['reserved data opcode 0x3', clientFrame(FIN | 0x3, 'hi'), 1002],
  ['reserved data opcode 0x7', clientFrame(FIN | 0x7, ''), 1002],
  ['reserved control opcode 0xB', clientFrame(FIN | 0xb, ''), 1002],
  ['reserved control opcode 0xF', clientFrame(FIN | 0xf, 'x'), 1002],
  ['fragmented ping (FIN clear)', clientFrame(OP.ping, 'x'), 1002],
  ['fragmented close (FIN clear)', clientFrame(OP.close, closePayload(1000)), 1002],
  ['fragmented pong (FIN clear)', clientFrame(OP.pong, ''), 1002],
  ['ping payload of 126 bytes', clientFrame(FIN | OP.ping, Buffer.alloc(126, 0x70)), 1002],
  ['close payload of 126 bytes', clientFrame(FIN | OP.close, closePayload(1000, 'r'.repeat(124))), 1002],
  ['continuation without start (final)', clientFrame(FIN | OP.cont, 'x'), 1002],
  ['continuation without start (not final)', clientFrame(OP.cont, 'x'), 1002],
  ['a new text frame inside a fragmented message', cat(clientFrame(OP.text, 'a'), clientFrame(FIN | OP.text, 'b')), 1002],
  ['invalid UTF-8 text', clientFrame(FIN | OP.text, bytes(0x61, 0xc3, 0x28)), 1007],
  ['UTF-8 of a surrogate', clientFrame(FIN | OP.text, bytes(0xed, 0xa0, 0x80)), 1007],
  ['overlong UTF-8', clientFrame(FIN | OP.text, bytes(0xc0, 0xaf)), 1007],
  ['code point above U+10FFFF', clientFrame(FIN | OP.text, bytes(0xf4, 0x90, 0x80, 0x80)), 1007],
  ['invalid UTF-8 in a later fragment', cat(clientFrame(OP.text, 'fine'), clientFrame(FIN | OP.cont, bytes(0xff))), 1007],
  ['UTF-8 cut at the end of a fragmented message', cat(clientFrame(OP.text, bytes(0xe2, 0x82)), clientFrame(FIN | OP.cont, Buffer.alloc(0))), 1007],
  ['invalid UTF-8 in a close reason', clientFrame(FIN | OP.close, cat(closePayload(1000), bytes(0xff))), 1007],
  ['close code 1005', clientFrame(FIN | OP.close, closePayload(1005)), 1002],
  ['close code 999', clientFrame(FIN | OP.close, closePayload(999)), 1002],
  ['close code 0', clientFrame(FIN | OP.close, closePayload(0)), 1002],
  ['close code 1004', clientFrame(FIN | OP.close, closePayload(1004)), 1002],
  ['close code 1006', clientFrame(FIN | OP.close, closePayload(1006)), 1002],
  ['close code 1015', clientFrame(FIN | OP.close, closePayload(1015)), 1002],
  ['close code 2999', clientFrame(FIN | OP.close, closePayload(2999)), 1002],
  ['close code 5000', clientFrame(FIN | OP.close, closePayload(5000)), 1002],
  ['close payload of 1 byte', clientFrame(FIN | OP.close, bytes(0x03)), 1002],
];

/** Opens a raw client, learns its socket id and answer to `!id`. */
async function rawClient(port) {
  const c = await RawClient.connect(port, { headers: { 'x-tag': 'raw' } });
  const id = Number((await c.ask('!id')).split(' ')[1]);
  return { c, id };
}

/** Answers the server's close frame with one of its own and waits for the TCP connection to end. */
async function finishClose(c) {
  await c.write(clientFrame(FIN | OP.close, Buffer.alloc(0)), { byteByByte: false });
  c.socket.end();
  await withTimeout(c.ended, 10_000, 'the server to end the TCP connection');
}

test('raw frames, byte by byte: protocol errors → 1002, invalid UTF-8 → 1007, handleClose once, a bystander unaffected', async (t) => {
  const { server, port, events } = await e2eServer(t);
  const observer = await Client.connect(port, { headers: { 'x-observer': '1' } });
  const bystander = await Client.connect(port);
  t.after(() => {
    observer.terminate();
    bystander.terminate();
  });
  const ids = [];
  for (const [name, frame, code] of MALFORMED) {
    const { c, id } = await rawClient(port);
    t.after(() => c.destroy());
    ids.push(id);
    const before = c.frames.length;
    await c.write(frame);
    const close = await c.nextClose().catch((err) => assert.fail(`${name}: ${err.message}`));
    assert.equal(close.code, code, `${name}: close code`);
    // Nothing of the bad frame reached a handler: no echo came before the close frame.
    assert.deepEqual(c.frames.slice(before).map((f) => f.op), [OP.close], `${name}: only a close frame after the bad input`);
    assert.ok(c.frames.every((f) => f.fin && f.rsv === 0 && f.op !== -1), `${name}: server frames are final, unmasked, without RSV bits`);
    await finishClose(c);
    await observer.next((m) => m.text === `close ${id}`, 10_000, `handleClose of ${name}`);
    bystander.send(`still here after ${name}`);
    await bystander.next((m) => m.text === `still here after ${name}`, 10_000, `the bystander's echo after ${name}`);
  }
  await server.ask('stop', /^stopped$/, 15_000); // every handleClose delivered
  for (const [id, n] of closeCounts(events, ids)) assert.equal(n, 1, `handleClose of socket ${id} ran ${n} times`);
});

test('raw frames, byte by byte: what a client may do — fragments with control frames between them, pings, pongs, close codes echoed', async (t) => {
  const { server, port, events } = await e2eServer(t);
  const ids = [];
  const { c, id } = await rawClient(port);
  t.after(() => c.destroy());
  ids.push(id);
  const textFrame = () => c.nextFrame((f) => f.op === OP.text || f.op === OP.binary, 10_000, 'an echo');

  // A text message in three fragments, a code point split across them, a ping and an unsolicited
  // pong in between: the pong comes back at once with the ping's payload, the message whole.
  await c.write(clientFrame(OP.text, bytes(0x67, 0x72, 0xc3)));
  await c.write(clientFrame(FIN | OP.ping, 'between'));
  const pong = await c.nextFrame((f) => f.op === OP.pong, 10_000, 'the pong');
  assert.equal(pong.payload.toString(), 'between');
  assert.equal(pong.fin, true);
  await c.write(clientFrame(FIN | OP.pong, 'unsolicited'));
  await c.write(clientFrame(OP.cont, bytes(0xbc, 0xc3, 0x9f)));
  await c.write(clientFrame(FIN | OP.cont, bytes(0x65, 0xe2, 0x9c, 0x93)));
  let m = await textFrame();
  assert.deepEqual([m.op, m.fin, m.payload.toString()], [OP.text, true, 'grüße✓']);

  // Empty messages and a fragmented binary message with an empty first fragment.
  await c.write(clientFrame(FIN | OP.text, Buffer.alloc(0)));
  m = await textFrame();
  assert.deepEqual([m.op, m.payload.length], [OP.text, 0]);
  await c.write(cat(clientFrame(OP.binary, Buffer.alloc(0)), clientFrame(FIN | OP.cont, bytes(0, 255))));
  m = await textFrame();
  assert.deepEqual([m.op, [...m.payload]], [OP.binary, [0, 255]]);

  // Ping payloads of 0 and 125 bytes; a 16-bit and a 64-bit length header.
  for (const payload of [Buffer.alloc(0), Buffer.alloc(125, 0xa5)]) {
    await c.write(clientFrame(FIN | OP.ping, payload));
    const p = await c.nextFrame((f) => f.op === OP.pong, 10_000, `the pong of ${payload.length} bytes`);
    assert.ok(p.payload.equals(payload), `pong payload of ${payload.length} bytes`);
  }
  const medium = Buffer.alloc(300, 0x42);
  await c.write(clientFrame(FIN | OP.binary, medium));
  assert.ok((await textFrame()).payload.equals(medium));
  const large = Buffer.alloc(70_000, 0x43);
  await c.write(clientFrame(FIN | OP.binary, large), { byteByByte: false });
  assert.ok((await textFrame()).payload.equals(large));

  assert.ok(c.frames.every((f) => f.fin && f.rsv === 0 && f.op !== -1), 'server frames are final, unmasked, without RSV bits');

  // The client's close code is echoed; the server then ends the connection.
  await c.write(clientFrame(FIN | OP.close, closePayload(4000, 'done')));
  assert.equal((await c.nextClose()).code, 4000);
  c.socket.end();
  await withTimeout(c.ended, 10_000, 'the end of the connection');

  // Valid close codes are echoed; an empty close payload is answered with an empty one.
  for (const code of [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999, undefined]) {
    const r = await rawClient(port);
    t.after(() => r.c.destroy());
    ids.push(r.id);
    await r.c.write(clientFrame(FIN | OP.close, code === undefined ? Buffer.alloc(0) : closePayload(code, 'bye ✓')));
    assert.equal((await r.c.nextClose()).code, code, `close ${code} echoed`);
    r.c.socket.end();
    await withTimeout(r.c.ended, 10_000, 'the end of the connection');
  }
  await server.ask('stop', /^stopped$/, 15_000); // every handleClose delivered
  for (const [sid, n] of closeCounts(events, ids)) assert.equal(n, 1, `handleClose of socket ${sid} ran ${n} times`);
});

test('a message of maxPayload (16 MiB), text and binary, is echoed with the default limits', async (t) => {
  const { port } = await e2eServer(t);
  const c = await Client.connect(port);
  t.after(() => c.terminate());
  const size = 16 * 1024 * 1024;
  const text = 'abcdefghijklmnop'.repeat(size / 16);
  c.send(text);
  const echoed = await c.next(() => true, 60_000, 'the echo of 16 MiB of text');
  assert.equal(echoed.text?.length, size, 'a text echo of 16 MiB');
  assert.ok(echoed.text === text, 'the text echoed unchanged');
  const binary = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4096) binary[i] = i / 4096;
  c.send(binary);
  const back = await c.next(() => true, 60_000, 'the echo of 16 MiB of binary');
  assert.ok(back.binary?.equals(binary), 'the binary echoed unchanged');
  assert.equal(c.ws.readyState, c.ws.OPEN, 'still open');
});

// A message and, in the same write, what ends the connection: its echo, sent by a worker thread,
// comes before the close frame, every time; nothing after the close or the violation is read.
const ENDINGS = [
  ['a protocol error (reserved opcode)', clientFrame(FIN | 0x3, 'x'), 1002],
  ['invalid UTF-8', clientFrame(FIN | OP.text, bytes(0xff)), 1007],
  ['a close frame', clientFrame(FIN | OP.close, closePayload(1000)), 1000],
];

for (const [name, ending, code] of ENDINGS) {
  test(`a message then ${name} in one write, 200 times: the echo before the close frame (${code})`, async (t) => {
    const { port } = await e2eServer(t);
    const rounds = 200;
    const together = 20;
    const failures = [];
    for (let first = 0; first < rounds; first += together) {
      await Promise.all(Array.from({ length: together }, async (_, k) => {
        const round = first + k;
        const c = await RawClient.connect(port);
        t.after(() => c.destroy());
        const text = `echo ${round}`;
        await c.write(cat(clientFrame(FIN | OP.text, text), ending, clientFrame(FIN | OP.text, 'after')), { byteByByte: false });
        const close = await c.nextClose(10_000);
        const before = c.frames.slice(0, c.frames.findIndex((f) => f.op === OP.close)).map((f) => f.payload.toString());
        if (close.code !== code || before.length !== 1 || before[0] !== text) failures.push({ round, code: close.code, before });
        await finishClose(c);
      }));
    }
    assert.deepEqual(failures, [], `rounds without the echo before the close ${code}`);
  });
}

test('256 KiB of text, a close frame and a ping in one write (Autobahn 7.1.6): the text comes back, then the close', async (t) => {
  const { port } = await e2eServer(t);
  const c = await RawClient.connect(port);
  t.after(() => c.destroy());
  const text = 'BAsd7&jh23'.repeat(26214) + 'Ba';
  await c.write(cat(clientFrame(FIN | OP.text, text), clientFrame(FIN | OP.close, closePayload(1000)), clientFrame(FIN | OP.ping, 'ping')), { byteByByte: false });
  const close = await c.nextClose(10_000);
  assert.equal(close.code, 1000);
  assert.deepEqual(c.frames.map((f) => [f.op, f.payload.length]), [[OP.text, text.length], [OP.close, 2]], 'the text, then the close; no pong');
  assert.equal(c.frames[0].payload.toString(), text);
  await finishClose(c);
});
