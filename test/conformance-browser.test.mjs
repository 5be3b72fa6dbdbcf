// Protocol conformance with a browser: Debian's headless Chromium (installed by `make deps`),
// driven by playwright-core. A page served over HTTP from one loopback port opens a WebSocket to
// the broker on another port (test/fixtures/e2e-server.mjs in a child process): ws:// without
// compression, then wss:// (a certificate made here) with permessage-deflate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Client, makeCert } from './helpers.mjs';
import { closeCounts, e2eServer, launchChromium, withTimeout } from './harness.mjs';

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>wsbroker conformance</title></head>
<body><script>
// Runs the whole exchange and resolves with what the page saw.
window.exchange = (url) => new Promise((resolve, reject) => {
  const seen = { messages: [] };
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const steps = [];
  const next = () => new Promise((res) => steps.push(res));
  ws.onmessage = (e) => {
    const m = typeof e.data === 'string' ? { text: e.data } : { binary: Array.from(new Uint8Array(e.data)) };
    seen.messages.push(m);
    steps.shift()?.(m);
  };
  ws.onerror = () => { seen.error = true; };
  ws.onclose = (e) => {
    seen.close = { code: e.code, reason: e.reason, wasClean: e.wasClean };
    resolve(seen);
  };
  ws.onopen = async () => {
    seen.extensions = ws.extensions;
    try {
      ws.send('!open');
      seen.open = JSON.parse((await next()).text);
      ws.send('!id');
      seen.id = Number((await next()).text.split(' ')[1]);
      ws.send('grüße, 世界 ✓ 😀');
      seen.text = (await next()).text;
      const bytes = new Uint8Array([0, 1, 2, 127, 128, 254, 255]);
      ws.send(bytes.buffer);
      seen.binary = (await next()).binary;
      const big = new Uint8Array(256 * 1024).map((_, i) => (i * 7) & 0xff);
      ws.send(big);
      const back = (await next()).binary;
      seen.bigEqual = back.length === big.length && back.every((b, i) => b === big[i]);
      ws.send('!close 4001 bye');
    } catch (err) {
      reject(err);
    }
  };
});
</script></body></html>`;

test('headless Chromium: origin seen by handleOpen, text and ArrayBuffer echo, close(4001, "bye") in the CloseEvent; the same over wss:// with compression', async (t) => {
  // The wss:// server (compression on, the certificate as PEM text) starts meanwhile.
  const { cert, key } = makeCert(t);
  const secureStarted = e2eServer(t, { tls: { cert, key }, compression: true });
  const { server, port, events } = await e2eServer(t);
  const observer = await Client.connect(port, { headers: { 'x-observer': '1' } });
  t.after(() => observer.terminate());

  const web = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(PAGE);
  });
  await new Promise((resolve) => web.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => web.close(resolve)));
  const pageOrigin = `http://127.0.0.1:${web.address().port}`;

  const browser = await launchChromium(t);
  const exchange = async (page, url) => {
    const consoleLines = [];
    page.on('console', (m) => consoleLines.push(m.text()));
    await page.goto(`${pageOrigin}/`, { timeout: 15_000 });
    const seen = await withTimeout(page.evaluate((u) => window.exchange(u), url), 20_000, `the page's exchange with ${url} (console: ${consoleLines.join(' | ')})`);
    assert.deepEqual(seen.open, { ip: '127.0.0.1', origin: pageOrigin }, 'handleOpen saw the page origin');
    assert.equal(seen.text, 'grüße, 世界 ✓ 😀');
    assert.deepEqual(seen.binary, [0, 1, 2, 127, 128, 254, 255]);
    assert.equal(seen.bigEqual, true, '256 KiB binary echo');
    assert.deepEqual(seen.close, { code: 4001, reason: 'bye', wasClean: true });
    assert.equal(seen.error, undefined, 'no error event');
    return seen;
  };
  // The same exchange over wss:// with compression, at the same time (Chromium does not trust the
  // self-signed certificate).
  const secure = await secureStarted;
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const [seen, seenTLS] = await Promise.all([
    exchange(await browser.newPage(), `ws://127.0.0.1:${port}/`),
    exchange(await context.newPage(), `wss://127.0.0.1:${secure.port}/`),
  ]);
  assert.equal(seen.extensions, '', 'no compression unless the compression option is on');
  assert.match(seenTLS.extensions, /^permessage-deflate/);

  await observer.next((m) => m.text === `close ${seen.id}`, 10_000, 'handleClose of the browser socket');
  await server.ask('stop', /^stopped$/, 15_000); // every handleClose delivered
  assert.equal(closeCounts(events, [seen.id]).get(seen.id), 1, 'handleClose ran once');
});
