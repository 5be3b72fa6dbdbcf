// The chat example: a small node:http server on port 3000 serves the browser client in
// example/client/ and, on the same port, hands the page's WebSocket (path /ws) to WSBroker, which
// runs the chat logic of worker.ts in worker threads.
//   make example        (or: npm run build && node lib/example/example.js)
// then open http://localhost:3000 in two browser tabs. HTTP_PORT changes the port (0: a free one,
// printed).
// With REDIS_URL, the server is one node of a cluster: run it twice on other ports with the same
// Redis, and two tabs on two nodes chat in one room:
//   REDIS_URL=redis://127.0.0.1:6379 make example
//   REDIS_URL=redis://127.0.0.1:6379 HTTP_PORT=3001 make example
// NATS_URL does the same through NATS (e.g. nats://127.0.0.1:4222).
// With TLS_CERT and TLS_KEY (paths of PEM files), the page is served over https:// and the chat
// over wss:// by WSBroker's own listener on WS_PORT (8080; a TLS session inside Node cannot move to
// WSBroker; under Bun, whose sockets cannot either, the chat is on WS_PORT too), e.g. with a
// self-signed certificate for localhost:
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
//     -subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout key.pem -out cert.pem
//   TLS_CERT=cert.pem TLS_KEY=key.pem make example
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { start } from '@wsbroker/wsbroker';

const WS_PORT = Number(process.env.WS_PORT ?? 8080);
const HTTP_PORT = Number(process.env.HTTP_PORT ?? 3000);
const { TLS_CERT, TLS_KEY } = process.env;
const tls = TLS_CERT && TLS_KEY ? { cert: TLS_CERT, key: TLS_KEY } : undefined;
// WSBroker listens on a port of its own where the HTTP server cannot hand its sockets over.
const ownPort = tls !== undefined || process.versions.bun !== undefined;
const cluster = process.env.REDIS_URL ? { redis: process.env.REDIS_URL }
  : process.env.NATS_URL ? { nats: process.env.NATS_URL } : undefined;
// The port WSBroker's own listener bound (WS_PORT, or the one chosen for 0), once it listens.
let wsPort: number | null = null;

// This file runs as lib/example/example.js; the client files are served from the source tree.
const clientDir = path.resolve(__dirname, '..', '..', 'example', 'client');

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
};

function serveClient(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  if (url.pathname === '/config.js') {
    // Tells the page where the WebSocket server is: its own port, else this one's /ws.
    res.writeHead(200, { 'content-type': contentTypes['.js'], 'cache-control': 'no-store' });
    res.end(`window.CHAT_WS_PORT = ${JSON.stringify(wsPort)};\n`);
    return;
  }
  const file = path.resolve(clientDir, `.${url.pathname === '/' ? '/index.html' : decodeURIComponent(url.pathname)}`);
  if (!file.startsWith(clientDir + path.sep)) {
    res.writeHead(404).end('Not found');
    return;
  }
  fs.readFile(file, (err, body) => {
    if (err) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found');
      return;
    }
    res.writeHead(200, { 'content-type': contentTypes[path.extname(file)] ?? 'application/octet-stream' });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
}

async function main(): Promise<void> {
  // worker.ts is compiled next to this file.
  // Chat messages are JSON text: compression (browsers offer it) saves bandwidth on the longer ones.
  const chat = { workerPath: path.join(__dirname, 'worker.js'), compression: true, cluster };
  const server = tls
    ? https.createServer({ cert: fs.readFileSync(tls.cert), key: fs.readFileSync(tls.key) }, serveClient)
    : http.createServer(serveClient);
  const chatServer = await start(ownPort ? { bind: `0.0.0.0:${WS_PORT}`, tls, ...chat } : { server: server as http.Server, path: '/ws', ...chat });
  if (ownPort) wsPort = chatServer.addresses[0].port;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(HTTP_PORT, resolve);
  });
  const { port: httpPort } = server.address() as AddressInfo;
  const where = ownPort ? `WebSocket server on port ${wsPort}${tls ? ', wss://' : ''}` : 'WebSocket on /ws';
  console.log(`Chat example: open ${tls ? 'https' : 'http'}://localhost:${httpPort} (${where}${cluster ? `, a node of the cluster on ${cluster.redis ? 'REDIS_URL' : 'NATS_URL'}` : ''})`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
