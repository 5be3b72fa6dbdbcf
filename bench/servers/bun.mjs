// The benchmark application (bench/README.md) on Bun's own WebSocket server (uWebSockets inside):
// channels are Bun's topics. Run with the `bun` binary of the `bun` npm package (after
// `npm ci --ignore-scripts`, as `make` installs, the binary is node_modules/@oven/bun-linux-x64/bin/bun):
//
//   node_modules/.bin/bun bench/servers/bun.mjs [port]   prints "listening 127.0.0.1:<port>"
//
// BACKPRESSURE=<bytes> closes a socket that has more queued (default: Bun's 16 MiB, over which it
// drops messages instead). COMPRESSION=1: permessage-deflate with Bun's shared compressor and
// decompressor (no context takeover, as WSBroker), every message sent compressed (Bun compresses
// only when send and publish are asked to; it has no size threshold). TLS_CERT and TLS_KEY (PEM
// files): wss://. MAX_PAYLOAD=<bytes>: the largest message taken (default Bun's 16 MiB). A binary
// message is sent back as it is.
const port = Number(process.argv[2] ?? process.env.PORT ?? 9004);
const host = process.env.HOST ?? '127.0.0.1';
const limit = Number(process.env.BACKPRESSURE ?? 0);
const maxPayload = Number(process.env.MAX_PAYLOAD ?? 0);
const compress = process.env.COMPRESSION === '1';
const tls = process.env.TLS_CERT ? { cert: Bun.file(process.env.TLS_CERT), key: Bun.file(process.env.TLS_KEY) } : undefined;

// memory is the answer to "m:": the JavaScript heap (JavaScriptCore's here) and the memory it
// holds outside that heap (buffers), in bytes.
function memory() {
  const m = process.memoryUsage();
  return JSON.stringify({ jsHeap: m.heapTotal, jsExternal: m.external });
}

const server = Bun.serve({
  hostname: host,
  port,
  tls,
  fetch(req, srv) {
    const token = req.headers.get('x-bench-token');
    if (srv.upgrade(req, { data: { token: token ?? undefined } })) return undefined;
    return new Response('WebSocket only', { status: 400 });
  },
  websocket: {
    perMessageDeflate: compress ? { compress: 'shared', decompress: 'shared' } : false,
    ...(limit > 0 ? { backpressureLimit: limit, closeOnBackpressureLimit: true } : {}),
    ...(maxPayload > 0 ? { maxPayloadLength: maxPayload } : {}),
    message(ws, text) {
      if (typeof text !== 'string') {
        ws.send(text, compress); // a Buffer: binary
        return;
      }
      if (text.charCodeAt(1) !== 58 /* : */) return;
      switch (text.charCodeAt(0)) {
        case 101: // e:<payload>
          ws.send(text.slice(2), compress);
          break;
        case 115: // s:<channel>
          ws.subscribe(text.slice(2));
          ws.send('ok', compress);
          break;
        case 112: { // p:<channel>:<payload> (server.publish: the publisher too, if subscribed)
          const i = text.indexOf(':', 2);
          if (i >= 0) server.publish(text.slice(2, i), text.slice(i + 1), compress);
          break;
        }
        case 114: { // r:<channel>:<payload>
          const i = text.indexOf(':', 2);
          if (i >= 0) {
            const payload = text.slice(i + 1);
            ws.send(payload, compress);
            server.publish(text.slice(2, i), payload, compress);
          }
          break;
        }
        case 109: // m:
          ws.send(memory(), compress);
          break;
      }
    },
  },
});
console.log(`listening ${host}:${server.port}`);
