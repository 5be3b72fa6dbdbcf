// The benchmark application (bench/README.md) on Socket.IO 4.8: one node, alone or sharing its
// rooms with other nodes through @socket.io/redis-adapter. Each message of the bench protocol is
// the one string argument of an event "m", both ways; channels are rooms.
//
//   node bench/servers/socketio.mjs [port]   prints "listening 127.0.0.1:<port>" once ready
//
// REDIS_URL=redis://host:port: the Redis adapter (node-redis clients), as Socket.IO's docs set it up.
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import http from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.argv[2] ?? process.env.PORT ?? 9003);
const host = process.env.HOST ?? '127.0.0.1';

let adapter;
if (process.env.REDIS_URL) {
  const pubClient = createClient({ url: process.env.REDIS_URL });
  const subClient = pubClient.duplicate();
  // node-redis reconnects by itself; without a listener an error event would end the process.
  for (const c of [pubClient, subClient]) c.on('error', (err) => console.error('socketio server: redis:', err.message));
  await Promise.all([pubClient.connect(), subClient.connect()]);
  // The adapter does not wait on its publish (a broadcast is fire-and-forget), so a publish that
  // fails while Redis is down is an unhandled rejection, which would end the process: counted
  // and dropped instead, as a deployment that keeps its nodes up through an outage must.
  let failedPublishes = 0;
  process.on('unhandledRejection', (err) => {
    if (failedPublishes++ === 0) console.error('socketio server: a Redis command failed (counting the others):', err?.message ?? err);
  });
  process.on('exit', () => failedPublishes && console.error(`socketio server: ${failedPublishes} Redis commands failed`));
  adapter = createAdapter(pubClient, subClient);
}

const io = new Server({ transports: ['websocket'], perMessageDeflate: false, adapter });

io.on('connection', (socket) => {
  const token = socket.handshake.headers['x-bench-token'];
  if (token !== undefined) socket.data.token = token;
  socket.on('m', (text) => {
    if (typeof text !== 'string' || text.charCodeAt(1) !== 58 /* : */) return;
    switch (text.charCodeAt(0)) {
      case 101: // e:<payload>
        socket.emit('m', text.slice(2));
        break;
      case 115: // s:<channel>
        socket.join(text.slice(2));
        socket.emit('m', 'ok');
        break;
      case 112: { // p:<channel>:<payload>
        const i = text.indexOf(':', 2);
        if (i >= 0) io.to(text.slice(2, i)).emit('m', text.slice(i + 1));
        break;
      }
      case 114: { // r:<channel>:<payload>
        const i = text.indexOf(':', 2);
        if (i >= 0) {
          const payload = text.slice(i + 1);
          socket.emit('m', payload);
          io.to(text.slice(2, i)).emit('m', payload);
        }
        break;
      }
      case 105: // i: the sender's socket id
        socket.emit('m', socket.id);
        break;
      case 100: { // d:<socket id>:<payload>, to a socket of any node (each socket is in a room of its id)
        const i = text.indexOf(':', 2);
        if (i >= 0) io.to(text.slice(2, i)).emit('m', text.slice(i + 1));
        break;
      }
      case 109: { // m: the V8 heap and the memory it holds outside that heap (buffers), in bytes
        const m = process.memoryUsage();
        socket.emit('m', JSON.stringify({ jsHeap: m.heapTotal, jsExternal: m.external }));
        break;
      }
    }
  });
});

const server = http.createServer();
io.attach(server);
server.on('error', (err) => {
  console.error('socketio server:', err.message);
  process.exit(1);
});
server.listen(port, host, () => console.log(`listening ${host}:${port}`));
