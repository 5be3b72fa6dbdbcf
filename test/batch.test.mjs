// The event batch decoder (lib/js/batch.cjs), fed batches built by hand. Needs only `tsc`, not
// the native addon.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { decodeBatch } = require('../lib/js/batch.cjs');
const { Batch, EventKind } = require('../lib/js/protocol.gen.cjs');

// ---- an encoder for the format (internal/protocol): its constants are the generated ones, its layout written from the spec independently of the decoder ----
const u8 = (n) => Buffer.from([n]);
const u32 = (n) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const f64 = (n) => {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(n);
  return b;
};
const bytes = (v) => {
  const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v);
  return Buffer.concat([u32(b.length), b]);
};
const token = (t) => (t === undefined ? u32(Batch.NoToken) : bytes(t));
const head = (kind, id, tok) => Buffer.concat([u8(kind), f64(id), token(tok)]);

const open = (id, tok, ip, url, headers) =>
  Buffer.concat([
    head(EventKind.Open, id, tok),
    bytes(ip),
    bytes(url),
    u32(headers.length),
    ...headers.flatMap(([n, v]) => [bytes(n), bytes(v)]),
  ]);
const text = (id, tok, s) => Buffer.concat([head(EventKind.Text, id, tok), bytes(s)]);
const binary = (id, tok, b) => Buffer.concat([head(EventKind.Binary, id, tok), bytes(b)]);
const close = (id, tok, code = 1000, reason = '') => Buffer.concat([head(EventKind.Close, id, tok), u32(code), bytes(reason)]);
const catchUp = (id) => head(EventKind.CatchUp, id, undefined);
const drain = (id, tok) => head(EventKind.Drain, id, tok);

const inParcel = (kind, id, tok, parcelId) => Buffer.concat([head(kind, id, tok), u32(Batch.InParcel), f64(parcelId)]);

function collect(batch, takeParcel) {
  const events = [];
  const sink = {
    open: (socketId, tok, ip, url, headers) => events.push({ kind: 'open', socketId, token: tok, ip, url, headers }),
    text: (socketId, tok, data) => events.push({ kind: 'text', socketId, token: tok, data }),
    binary: (socketId, tok, data) => events.push({ kind: 'binary', socketId, token: tok, data }),
    close: (socketId, tok, code, reason) => events.push({ kind: 'close', socketId, token: tok, code, reason }),
    catchUp: (socketId) => events.push({ kind: 'catchUp', socketId }),
    drain: (socketId, tok) => events.push({ kind: 'drain', socketId, token: tok }),
  };
  const count = decodeBatch(batch, sink, undefined, takeParcel);
  assert.equal(count, events.length);
  return events;
}

test('NoToken is 0xFFFFFFFF', () => {
  assert.equal(Batch.NoToken, 0xffffffff);
});

test('an empty batch delivers nothing', () => {
  assert.deepEqual(collect(Buffer.alloc(0)), []);
});

test('every kind of event, in order, with and without tokens', () => {
  const batch = Buffer.concat([
    open(1, undefined, '127.0.0.1', '/chat?room=1', [
      ['host', 'localhost:8080'],
      ['origin', 'http://localhost:3000'],
      ['sec-websocket-key', 'dGhlIHNhbXBsZSBub25jZQ=='],
    ]),
    text(1, 'tok', 'héllo ✓ 😀'),
    binary(2, Buffer.from([0, 1, 2, 255]), Buffer.from([9, 8, 7])),
    close(1, 'tok'),
    text(2 ** 53 - 1, undefined, ''),
    binary(3, undefined, Buffer.alloc(0)),
    close(4, Buffer.alloc(0), 4000, 'gone: ✓'),
    catchUp(5),
    drain(6, 'user'),
  ]);
  const events = collect(batch);
  assert.equal(events.length, 9);

  assert.deepEqual(events[0], {
    kind: 'open',
    socketId: 1,
    token: undefined,
    ip: '127.0.0.1',
    url: '/chat?room=1',
    headers: { host: 'localhost:8080', origin: 'http://localhost:3000', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
  });
  assert.equal(Object.getPrototypeOf(events[0].headers), Object.prototype, 'headers is a plain object');

  assert.equal(events[1].kind, 'text');
  assert.equal(events[1].data, 'héllo ✓ 😀');
  assert.ok(Buffer.isBuffer(events[1].token));
  assert.equal(events[1].token.toString(), 'tok');

  assert.equal(events[2].kind, 'binary');
  assert.equal(events[2].socketId, 2);
  assert.ok(Buffer.isBuffer(events[2].data));
  assert.deepEqual([...events[2].data], [9, 8, 7]);
  assert.deepEqual([...events[2].token], [0, 1, 2, 255]);

  assert.deepEqual({ ...events[3], token: events[3].token.toString() }, { kind: 'close', socketId: 1, token: 'tok', code: 1000, reason: '' });

  assert.equal(events[4].socketId, 2 ** 53 - 1);
  assert.equal(events[4].data, '');
  assert.equal(events[4].token, undefined);

  assert.equal(events[5].data.length, 0);
  assert.ok(Buffer.isBuffer(events[5].data));

  assert.ok(Buffer.isBuffer(events[6].token), 'an empty token is a token, not "no token"');
  assert.equal(events[6].token.length, 0);
  assert.deepEqual(events[7], { kind: 'catchUp', socketId: 5 });
  assert.equal(events[6].code, 4000);
  assert.equal(events[6].reason, 'gone: ✓');
  assert.deepEqual({ ...events[8], token: events[8].token.toString() }, { kind: 'drain', socketId: 6, token: 'user' });
});

test('binary data and tokens are copies, not views of the batch', () => {
  // Like the addon's batches, this one has an allocation of its own (not a slice of Node's pool).
  const parts = Buffer.concat([binary(5, 'abc', Buffer.from('payload')), text(5, 'xyz', 'text')]);
  const batch = Buffer.allocUnsafeSlow(parts.length);
  parts.copy(batch);
  const events = collect(batch);
  batch.fill(0);
  assert.equal(events[0].data.toString(), 'payload');
  assert.equal(events[0].token.toString(), 'abc');
  assert.equal(events[1].token.toString(), 'xyz');
  assert.equal(events[1].data, 'text');
  // A view of the batch would share its ArrayBuffer.
  assert.ok(events[0].data.buffer !== batch.buffer && events[0].token.buffer !== batch.buffer);
});

test('a batch that is a slice of a larger allocation (non-zero byteOffset)', () => {
  const inner = Buffer.concat([text(7, undefined, 'one'), binary(8, undefined, Buffer.from([1, 2]))]);
  const outer = Buffer.alloc(inner.length + 37);
  inner.copy(outer, 13);
  const events = collect(outer.subarray(13, 13 + inner.length));
  assert.deepEqual(
    events.map((e) => [e.kind, e.socketId, typeof e.data === 'string' ? e.data : [...e.data]]),
    [
      ['text', 7, 'one'],
      ['binary', 8, [1, 2]],
    ],
  );
});

test('large payloads and many events', () => {
  const big = Buffer.alloc(1024 * 1024, 0xab);
  const bigText = 'ü'.repeat(300_000);
  const parts = [binary(1, undefined, big), text(2, undefined, bigText)];
  for (let i = 0; i < 10_000; i++) parts.push(text(100 + i, i % 2 ? `t${i}` : undefined, `m${i}`));
  const events = collect(Buffer.concat(parts));
  assert.equal(events.length, 10_002);
  assert.ok(events[0].data.equals(big));
  assert.equal(events[1].data, bigText);
  for (let i = 0; i < 10_000; i++) {
    const e = events[2 + i];
    assert.equal(e.socketId, 100 + i);
    assert.equal(e.data, `m${i}`);
    assert.equal(e.token?.toString(), i % 2 ? `t${i}` : undefined);
  }
});

test('a message in a parcel: its data is what takeParcel gives for its id, text or not, in order with the others', () => {
  const taken = [];
  const takeParcel = (id, asText) => {
    taken.push([id, asText]);
    return asText ? `text of ${id}` : Buffer.from(`bytes of ${id}`);
  };
  const batch = Buffer.concat([inParcel(EventKind.Text, 1, 'tk', 7), text(1, undefined, 'between'), inParcel(EventKind.Binary, 2, undefined, 2 ** 40)]);
  const events = collect(batch, takeParcel);
  assert.deepEqual(taken, [[7, true], [2 ** 40, false]]);
  assert.deepEqual(events.map((e) => [e.kind, e.socketId, Buffer.isBuffer(e.data) ? e.data.toString() : e.data]), [
    ['text', 1, 'text of 7'],
    ['text', 1, 'between'],
    ['binary', 2, `bytes of ${2 ** 40}`],
  ]);
  assert.equal(events[0].token.toString(), 'tk');
  // Without takeParcel, or with the id cut off: a RangeError after the events before it.
  assert.throws(() => collect(batch), RangeError);
  assert.throws(() => collect(batch.subarray(0, batch.length - 4), takeParcel), RangeError);
});

test('a header named __proto__ stays an ordinary key', () => {
  const [e] = collect(open(1, undefined, '::1', '/', [['__proto__', 'x'], ['a', 'b']]));
  assert.equal(Object.getPrototypeOf(e.headers), Object.prototype);
  assert.deepEqual(Object.keys(e.headers), ['__proto__', 'a']);
  assert.equal(Object.getOwnPropertyDescriptor(e.headers, '__proto__').value, 'x');
});

test('malformed batches throw a RangeError after delivering the events before the bad one', () => {
  const good = text(1, undefined, 'ok');
  const cases = {
    'truncated header': Buffer.concat([good, Buffer.from([2, 0, 0])]),
    'truncated token': Buffer.concat([good, u8(2), f64(2), u32(10), Buffer.from('abc')]),
    'truncated string': Buffer.concat([good, u8(2), f64(2), u32(0xffffffff), u32(100), Buffer.from('abc')]),
    'truncated header count': Buffer.concat([good, head(1, 2, undefined), bytes('1.2.3.4'), bytes('/'), Buffer.from([1])]),
    'truncated headers': Buffer.concat([good, head(1, 2, undefined), bytes('1.2.3.4'), bytes('/'), u32(3), bytes('a'), bytes('b')]),
    'unknown kind': Buffer.concat([good, head(9, 2, undefined)]),
  };
  for (const [name, batch] of Object.entries(cases)) {
    const seen = [];
    const sink = {
      open: () => seen.push('open'),
      text: (id, tok, data) => seen.push(data),
      binary: () => seen.push('binary'),
      close: () => seen.push('close'),
    };
    assert.throws(() => decodeBatch(batch, sink), RangeError, name);
    assert.deepEqual(seen, ['ok'], name);
  }
});
