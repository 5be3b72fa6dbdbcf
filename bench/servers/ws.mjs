// The benchmark application (bench/README.md) on `ws` 8 with `bufferutil`: what a Node developer
// would write instead of WSBroker. Channels are a Map<string, Set<WebSocket>>.
//
//   node bench/servers/ws.mjs [port]      prints "listening 127.0.0.1:<port>" once listening
import { WebSocketServer } from 'ws';
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

const wss = new WebSocketServer({ host, port, perMessageDeflate: false, clientTracking: false });

wss.on('connection', (socket, req) => {
  const token = req.headers['x-bench-token'];
  if (token !== undefined) socket.token = token;
  socket.on('message', (data, isBinary) => {
    if (isBinary) return;
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

wss.on('listening', () => console.log(`listening ${host}:${wss.address().port}`));
wss.on('error', (err) => {
  console.error('ws server:', err.message);
  process.exit(1);
});
