// The benchmark application (bench/README.md) on `ws` 8 with `bufferutil`: what a Node developer
// would write instead of WSBroker. Channels are a Map<string, Set<WebSocket>>.
//
//   node bench/servers/ws.mjs [port]      prints "listening 127.0.0.1:<port>" once listening
//
// COMPRESSION=1: permessage-deflate as WSBroker negotiates it (no context takeover either way,
// messages under 256 bytes sent plain), zlib's other settings as ws has them. TLS_CERT and
// TLS_KEY (PEM files): wss:// on an https server. MAX_PAYLOAD=<bytes>: the largest message taken
// (default ws's 100 MiB). A binary message is sent back as it is.
import { WebSocketServer } from 'ws';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
try {
  require('bufferutil'); // ws uses it when it can load it; say so if it cannot
} catch {
  console.error('ws server: bufferutil is not installed; ws falls back to JavaScript masking');
}

const port = Number(process.argv[2] ?? process.env.PORT ?? 9002);
const host = process.env.HOST ?? '127.0.0.1';

/** @type {Map<string, Set<import('ws').WebSocket>>} */
const channels = new Map();

function subscribe(socket, channel) {
  let set = channels.get(channel);
  if (!set) channels.set(channel, (set = new Set()));
  set.add(socket);
  (socket.channels ??= new Set()).add(channel);
}

function publish(channel, payload) {
  const set = channels.get(channel);
  if (!set) return;
  for (const s of set) s.send(payload);
}

const perMessageDeflate = process.env.COMPRESSION === '1'
  ? { serverNoContextTakeover: true, clientNoContextTakeover: true, threshold: 256 }
  : false;
const tls = process.env.TLS_CERT
  ? https.createServer({ cert: readFileSync(process.env.TLS_CERT), key: readFileSync(process.env.TLS_KEY) })
  : undefined;
const maxPayload = process.env.MAX_PAYLOAD ? Number(process.env.MAX_PAYLOAD) : undefined;
const wss = tls
  ? new WebSocketServer({ server: tls, perMessageDeflate, clientTracking: false, maxPayload })
  : new WebSocketServer({ host, port, perMessageDeflate, clientTracking: false, maxPayload });

wss.on('connection', (socket, req) => {
  const token = req.headers['x-bench-token'];
  if (token !== undefined) socket.token = token;
  socket.on('message', (data, isBinary) => {
    if (isBinary) {
      socket.send(data); // a Buffer: binary
      return;
    }
    const text = data.toString();
    if (text.charCodeAt(1) !== 58 /* : */) return;
    switch (text.charCodeAt(0)) {
      case 101: // e:<payload>
        socket.send(text.slice(2));
        break;
      case 115: // s:<channel>
        subscribe(socket, text.slice(2));
        socket.send('ok');
        break;
      case 112: { // p:<channel>:<payload>
        const i = text.indexOf(':', 2);
        if (i >= 0) publish(text.slice(2, i), text.slice(i + 1));
        break;
      }
      case 114: { // r:<channel>:<payload>
        const i = text.indexOf(':', 2);
        if (i >= 0) {
          const payload = text.slice(i + 1);
          socket.send(payload);
          publish(text.slice(2, i), payload);
        }
        break;
      }
      case 109: { // m: the V8 heap and the memory it holds outside that heap (buffers), in bytes
        const m = process.memoryUsage();
        socket.send(JSON.stringify({ jsHeap: m.heapTotal, jsExternal: m.external }));
        break;
      }
    }
  });
  socket.on('close', () => {
    if (!socket.channels) return;
    for (const ch of socket.channels) {
      const set = channels.get(ch);
      set.delete(socket);
      if (set.size === 0) channels.delete(ch);
    }
  });
  socket.on('error', () => {});
});

const listener = tls ?? wss;
listener.on('listening', () => console.log(`listening ${host}:${listener.address().port}`));
listener.on('error', (err) => {
  console.error('ws server:', err.message);
  process.exit(1);
});
tls?.listen(port, host);
