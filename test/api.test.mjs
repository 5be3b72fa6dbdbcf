// End to end: every exported function and handler, through real WebSocket clients, against a
// server in a child process running test/fixtures/worker.mjs, once with `threads: 0` (handlers on
// the main thread) and once with `threads: 4`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, fixture, refusedStatus, startServer } from './helpers.mjs';

const MIB = 1024 * 1024;
/** Where two long strings first differ, for readable failures. */
function firstDifference(actual, expected) {
  if (typeof actual !== 'string') return `got ${typeof actual}`;
  let i = 0;
  while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++;
  if (i === actual.length && i === expected.length) return 'equal';
  return `first difference at ${i}: ${JSON.stringify(actual.slice(i, i + 20))} vs ${JSON.stringify(expected.slice(i, i + 20))}`;
}

const mibPattern = () => {
  const b = Buffer.alloc(MIB);
  for (let i = 0; i < b.length; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
};

for (const threads of [0, 4]) {
  describe(`threads: ${threads}`, () => {
    let server;
    let port;
    const clients = [];
    const connect = async (options) => {
      const c = await Client.connect(port, options);
      clients.push(c);
      return c;
    };

    before(async () => {
      server = await startServer({ servers: [{ bind: '127.0.0.1:0', workerPath: fixture('worker.mjs'), threads }] });
      [port] = server.ports;
    });
    after(async () => {
      for (const c of clients) c.terminate();
      await server?.stop();
    });

    test('handleOpen sees the socket id, the peer ip without port and lower-cased headers', async () => {
      const c = await connect({ headers: { 'X-Report-Open': 'yes', 'X-Mixed-Case': 'Value' } });
      const open = await c.nextType('open');
      assert.ok(Number.isSafeInteger(open.socketId) && open.socketId >= 1, `socket id ${open.socketId}`);
      assert.equal(open.ip, '127.0.0.1');
      assert.equal(open.headers['x-mixed-case'], 'Value');
      assert.equal(open.headers.upgrade.toLowerCase(), 'websocket');
      assert.equal(open.headers.host, `127.0.0.1:${port}`);
      for (const name of Object.keys(open.headers)) assert.equal(name, name.toLowerCase());
      const me = await c.ask({ op: 'whoami' });
      assert.equal(me.socketId, open.socketId);
    });

    test('socket ids are unique and start at 1 or above', async () => {
      const ids = [];
      for (let i = 0; i < 5; i++) ids.push((await (await connect()).ask({ op: 'whoami' })).socketId);
      assert.equal(new Set(ids).size, ids.length);
      for (const id of ids) assert.ok(Number.isSafeInteger(id) && id >= 1);
    });

    test('handleOpen refusals answer HTTP 403: false, throw, async false, async reject', async () => {
      for (const mode of ['false', 'throw', 'async-false', 'async-reject']) {
        assert.equal(await refusedStatus(port, { headers: { 'x-open': mode } }), 403, mode);
      }
      await server.waitForStderr('handleOpen refused by throwing');
      await server.waitForStderr('handleOpen refused by rejecting');
    });

    test('handleOpen acceptances: async true, undefined, 0', async () => {
      const a = await connect({ headers: { 'x-open': 'async-true' } });
      const hello = await a.nextType('async-open');
      assert.equal(hello.socketId, (await a.ask({ op: 'whoami' })).socketId);
      const b = await connect({ headers: { 'x-open': 'zero' } });
      await b.ask({ op: 'whoami' });
      const c = await connect();
      await c.ask({ op: 'whoami' });
    });

    test('the socket id is live during handleOpen: setToken, subscribe, send, sendToChannel', async () => {
      const c = await connect({ headers: { 'x-open': 'live' } });
      const hello = await c.nextType('hello');
      assert.equal(hello.subscribed, true);
      const live = await c.nextType('live-channel');
      assert.equal(live.socketId, hello.socketId);
      // Sent during handleOpen, so it arrives first.
      assert.equal(c.messages[0].json.type, 'hello');
      const me = await c.ask({ op: 'whoami' });
      assert.equal(me.token, `open-token-${hello.socketId}`);
      assert.equal(me.tokenIsBuffer, true);
    });

    test('the browser origin case: an Origin from another port is accepted and seen by handleOpen', async () => {
      const c = await connect({ origin: 'http://localhost:3000', headers: { 'x-report-open': '1' } });
      const open = await c.nextType('open');
      assert.equal(open.headers.origin, 'http://localhost:3000');
    });

    test('text round trips: empty, 1 byte, non-ASCII, 1 MiB', async () => {
      const c = await connect();
      for (const text of ['', 'a', 'grüße, 世界 ✓ 😀', 'é'.repeat(512 * 1024)]) {
        c.send(text);
        const m = await c.next(undefined, 20_000, `the echo of ${text.length} characters`);
        assert.ok(m.text === text, `echo of ${text.length} characters: got ${m.text?.length} characters${m.binary ? ' as a binary frame' : ''}, ${firstDifference(m.text, text)}`);
      }
      const expected = { empty: '', one: 'a', nonascii: 'grüße, 世界 ✓ 😀', mibtext: 'é'.repeat(512 * 1024) };
      for (const [name, text] of Object.entries(expected)) {
        c.cmd({ op: 'text', payload: name });
        const m = await c.next(undefined, 20_000, `text payload ${name}`);
        assert.ok(m.text === text, `${name}: got ${m.text?.length} characters, ${firstDifference(m.text, text)}`);
      }
    });

    test('binary round trips: empty, 1 byte, bytes, 1 MiB (echoed as Buffers)', async () => {
      const c = await connect();
      for (const data of [Buffer.alloc(0), Buffer.from([0xff]), Buffer.from([0, 1, 2, 253, 254, 255]), mibPattern()]) {
        c.send(data);
        const m = await c.next(undefined, 20_000, `the echo of ${data.length} bytes`);
        assert.ok(m.binary, `a binary frame for ${data.length} bytes`);
        assert.ok(m.binary.equals(data), `${data.length} bytes intact`);
      }
    });

    test('large binary messages stay whole in the Buffers a handler keeps while more large messages come and go', async () => {
      const c = await connect();
      await c.ask({ op: 'keep' });
      const kept = [64 * 1024, 300 * 1024, MIB].map((size, n) => Buffer.alloc(size, n + 1));
      for (const data of kept) {
        c.send(data);
        const text = String.fromCharCode(0x41 + kept.indexOf(data)).repeat(200 * 1024); // echoed as it comes
        c.send(text);
        const m = await c.next(undefined, 20_000, `the echo of ${text.length} characters`);
        assert.ok(m.text === text, `a text echo of ${text.length} characters, ${firstDifference(m.text, text)}`);
      }
      c.cmd({ op: 'kept' });
      for (const data of kept) {
        const m = await c.next(undefined, 20_000, `the kept ${data.length} bytes`);
        assert.ok(m.binary?.equals(data), `the kept ${data.length} bytes, whole: got ${m.binary?.length} bytes, first ${m.binary?.[0]}`);
      }
    });

    test('send takes every byte type, honouring offsets: Buffer, pooled Buffer, Uint8Array, DataView, ArrayBuffer, SharedArrayBuffer, Uint16Array', async () => {
      const c = await connect();
      const variants = ['buffer', 'pooled', 'uint8array', 'dataview', 'arraybuffer', 'sharedarraybuffer', 'uint16array'];
      for (const variant of variants) {
        for (const [payload, bytes] of [
          ['abcdef', Buffer.from('abcdef')],
          ['empty', Buffer.alloc(0)],
          ['mib', mibPattern()],
        ]) {
          c.cmd({ op: 'bytes', variant, payload });
          const m = await c.next(undefined, 20_000, `${variant} ${payload}`);
          assert.ok(m.binary, `${variant} ${payload}: a binary frame`);
          assert.ok(m.binary.equals(bytes), `${variant} ${payload}: got ${m.binary.length} bytes`);
        }
      }
      c.cmd({ op: 'bytes', variant: 'pooled', payload: 'z' });
      assert.deepEqual([...(await c.next()).binary], [0x7a]);
    });

    test('subscribe, sendToChannel, unsubscribe, and their booleans', async () => {
      const ch = `ch-${threads}`;
      const a = await connect();
      const b = await connect();
      assert.equal((await a.ask({ op: 'sub', ch })).result, true);
      assert.equal((await a.ask({ op: 'sub', ch })).result, false, 'already subscribed');
      assert.equal((await b.ask({ op: 'sub', ch })).result, true);
      // subscribe takes effect before it returns, so the publisher's own message reaches it.
      b.cmd({ op: 'pub', ch, data: 'to both' });
      assert.equal((await a.next((m) => m.text === 'to both')).text, 'to both');
      assert.equal((await b.next((m) => m.text === 'to both')).text, 'to both');
      assert.equal((await a.ask({ op: 'unsub', ch })).result, true);
      assert.equal((await a.ask({ op: 'unsub', ch })).result, false, 'not subscribed any more');
      assert.equal((await a.ask({ op: 'unsub', ch: 'never-joined' })).result, false);
      b.cmd({ op: 'pub', ch, data: 'to b only' });
      await b.next((m) => m.text === 'to b only');
      // a, unsubscribed, gets nothing: it gets the reply to a later command and nothing before it.
      const me = await a.ask({ op: 'whoami' });
      assert.ok(me);
      assert.equal(a.messages.filter((m) => m.text === 'to b only').length, 0);
      // Binary broadcast.
      b.cmd({ op: 'pub', ch, data: 'bin!', variant: 'dataview' });
      assert.ok((await b.next((m) => m.binary !== undefined)).binary.equals(Buffer.from('bin!')));
    });

    test('sends and broadcasts made back to back reach each socket in the order they were made', async () => {
      // The messages of a burst are handled in one or a few batches, whose sends and broadcasts
      // are written per socket when the batch is done: the order must survive that.
      const ch = `order-${threads}`;
      const a = await connect();
      const b = await connect();
      assert.equal((await a.ask({ op: 'sub', ch })).result, true);
      assert.equal((await b.ask({ op: 'sub', ch })).result, true);
      const n = 50;
      const wantA = [];
      for (let i = 0; i < n; i++) {
        a.cmd({ op: 'pub', ch, data: `p${i}` });
        a.send(`e${i}`); // not JSON: echoed
        wantA.push(`p${i}`, JSON.stringify({ type: 'pub' }), `e${i}`);
      }
      await a.next((m) => m.text === `e${n - 1}`);
      await b.next((m) => m.text === `p${n - 1}`);
      const texts = (c, re) => c.messages.map((m) => m.text).filter((t) => re.test(t));
      assert.deepEqual(texts(a, /^(p\d+|e\d+|\{"type":"pub"\})$/), wantA);
      assert.deepEqual(texts(b, /^p\d+$/), Array.from({ length: n }, (_, i) => `p${i}`));
    });

    test('a channel named by a string and by its UTF-8 bytes is the same channel', async () => {
      const ch = `bytes-ch-${threads}-ü`;
      const a = await connect();
      for (const variant of ['buffer', 'pooled', 'dataview', 'arraybuffer', 'sharedarraybuffer']) {
        assert.equal((await a.ask({ op: 'sub', ch, variant })).result, true, variant);
        a.cmd({ op: 'pub', ch, data: `via ${variant}` });
        assert.equal((await a.next((m) => m.text?.startsWith('via '))).text, `via ${variant}`);
        a.cmd({ op: 'pub', ch, chVariant: variant, data: `bytes-named ${variant}` });
        assert.equal((await a.next((m) => m.text?.startsWith('bytes-named '))).text, `bytes-named ${variant}`);
        assert.equal((await a.ask({ op: 'unsub', ch })).result, true, `unsubscribe by string after ${variant}`);
      }
    });

    test('copySubscriptions is a one-time copy', async () => {
      const from = `from-${threads}`;
      const to = `to-${threads}`;
      const a = await connect();
      const b = await connect();
      await a.ask({ op: 'sub', ch: from });
      const copied = await b.ask({ op: 'copy', from, to });
      assert.equal(copied.result, null, 'returns nothing');
      b.cmd({ op: 'pub', ch: to, data: 'via copy' });
      await a.next((m) => m.text === 'via copy');
      // Not a live alias: a later subscriber of `from` is not in `to`.
      await b.ask({ op: 'sub', ch: from });
      b.cmd({ op: 'pub', ch: to, data: 'second' });
      await a.next((m) => m.text === 'second');
      await b.ask({ op: 'whoami' });
      assert.equal(b.messages.filter((m) => m.text === 'second').length, 0);
      // A subscriber copied to `to` stays there after leaving `from`.
      await a.ask({ op: 'unsub', ch: from });
      b.cmd({ op: 'pub', ch: to, data: 'third' });
      await a.next((m) => m.text === 'third');
    });

    test('tokens: none is undefined, bytes or string tokens come back as Buffers, handleClose gets the last one', async () => {
      const watcher = await connect();
      await watcher.ask({ op: 'sub', ch: 'closes' });
      const c = await connect();
      const first = await c.ask({ op: 'whoami' });
      assert.equal(first.token, null, 'no token: undefined');
      await c.ask({ op: 'token', value: 'user:42' });
      assert.equal((await c.ask({ op: 'whoami' })).token, 'user:42');
      for (const variant of ['pooled', 'dataview', 'arraybuffer', 'sharedarraybuffer', 'uint8array']) {
        await c.ask({ op: 'token', value: `tok-${variant}`, variant });
        const me = await c.ask({ op: 'whoami' });
        assert.equal(me.token, `tok-${variant}`);
        assert.equal(me.tokenIsBuffer, true);
      }
      await c.ask({ op: 'token', value: 'final ✓' });
      // A token for an unknown socket is a no-op.
      await c.ask({ op: 'token', id: 2 ** 53 - 1, value: 'nobody' });
      await c.close();
      const closed = await watcher.next((m) => m.json?.type === 'closed' && m.json.socketId === first.socketId);
      assert.deepEqual(closed.json, {
        type: 'closed',
        socketId: first.socketId,
        token: 'final ✓',
        tokenIsBuffer: true,
        resubscribed: false,
      });
    });

    test('handleClose runs once for each accepted socket, also when the client just drops', async () => {
      const watcher = await connect();
      await watcher.ask({ op: 'sub', ch: 'closes' });
      const a = await connect();
      const b = await connect();
      const ida = (await a.ask({ op: 'whoami' })).socketId;
      const idb = (await b.ask({ op: 'whoami' })).socketId;
      a.terminate(); // TCP reset, no close frame
      await b.close();
      const closedA = await watcher.next((m) => m.json?.type === 'closed' && m.json.socketId === ida);
      assert.equal(closedA.json.token, null);
      await watcher.next((m) => m.json?.type === 'closed' && m.json.socketId === idb);
      // Exactly once: another round trip later, no duplicate.
      await watcher.ask({ op: 'whoami' });
      const closes = watcher.messages.filter((m) => m.json?.type === 'closed' && [ida, idb].includes(m.json.socketId));
      assert.equal(closes.length, 2);
    });

    test('unknown socket ids and empty channels are silent no-ops', async () => {
      const c = await connect();
      const edge = await c.ask({ op: 'edge' });
      assert.deepEqual(edge.results, {
        'send(2**53-1)': true,
        'subscribe(2**53-1)': false,
        'unsubscribe(2**53-1)': false,
        'setToken(2**53-1)': null,
        'sendToChannel(empty)': null,
        'copySubscriptions(empty)': null,
      });
      await c.ask({ op: 'sendTo', id: 123456789, data: 'nobody' });
    });

    test('wrong argument types throw TypeErrors with a clear message (called in the worker)', async () => {
      const c = await connect();
      const { results } = await c.ask({ op: 'wrong' });
      for (const [call, outcome] of Object.entries(results)) {
        assert.match(outcome, /^TypeError: /, call);
        const fn = call.slice(0, call.indexOf('('));
        assert.ok(outcome.includes(fn), `${call}: the message names the function: ${outcome}`);
      }
      assert.match(results['send(0, "x")'], /socketId must be an integer from 1 to 2\^53-1, got number 0/);
      assert.match(results['send(1, {})'], /data must be a string, an ArrayBuffer/);
      // The server is fine afterwards.
      await c.ask({ op: 'whoami' });
    });

    test('a handler that throws or rejects is logged with its stack; the server carries on', async () => {
      const c = await connect();
      const other = await connect();
      c.cmd({ op: 'throw', message: `sync failure ${threads}` });
      c.cmd({ op: 'reject', message: `async failure ${threads}` });
      // Events after the failing ones (in the same batch or not) are still delivered.
      await c.ask({ op: 'whoami' });
      await other.ask({ op: 'whoami' });
      await server.waitForStderr(`sync failure ${threads}`);
      await server.waitForStderr(`async failure ${threads}`);
      const line = server.stderr.split('\n').find((l) => l.includes(`sync failure ${threads}`));
      assert.match(line, /handleTextMessage/);
      assert.match(line, /worker\.mjs/, 'the stack names the module');
    });

    test('a send from a timer, outside any handler, is written without another event to carry it', async () => {
      const c = await connect();
      await c.ask({ op: 'timer' });
    });

    test('an async handler runs on after an await, and the socket\'s next message is delivered without waiting for its promise', async () => {
      const c = await connect();
      c.cmd({ op: 'await', key: 'k' });
      c.cmd({ op: 'release', key: 'k' });
      await c.nextType('released');
      const types = c.messages.map((m) => m.json?.type).filter((type) => type === 'release' || type === 'released');
      assert.deepEqual(types, ['release', 'released']);
    });

    if (threads === 4) {
      test('connections are spread over several workers', async () => {
        const seen = new Set();
        for (let i = 0; i < 8; i++) seen.add((await (await connect()).ask({ op: 'whoami' })).threadId);
        assert.ok(seen.size >= 2, `threads seen: ${[...seen]}`);
        assert.ok(!seen.has(0), 'not on the main thread');
      });
    } else {
      test('with threads: 0 the handlers run on the main thread', async () => {
        const c = await connect();
        assert.equal((await c.ask({ op: 'whoami' })).threadId, 0);
      });
    }
  });
}
