// The benchmark application (bench/README.md) on WSBroker through its public API. The handlers
// are in wsbroker-worker.mjs.
//
//   node bench/servers/wsbroker.mjs [port]   prints "listening 127.0.0.1:<port>"
//
// THREADS=<n> worker threads (default 1; "default": start's own default); BACKPRESSURE=<bytes> the
// maxBackpressure (default 16 MiB); MAX_PAYLOAD=<bytes> the maxPayload (default 16 MiB);
// COMPRESSION=1 compression: true (permessage-deflate); TLS_CERT and TLS_KEY (PEM files) serve wss://;
// CLUSTER_REDIS=redis://host:port one node of several: cluster: { redis }; CLUSTER_NATS=nats://host:port
// the same through NATS: cluster: { nats } (a build without cluster mode rejects them with a
// TypeError naming options.cluster). ATTACH=1: a Node http.Server listens on the port and WSBroker
// takes its upgrades (start({ server })) instead of listening itself.
import http from 'node:http';
import { start } from '@wsbroker/wsbroker';
import { fileURLToPath } from 'node:url';

const port = Number(process.argv[2] ?? process.env.PORT ?? 9001);
const host = process.env.HOST ?? '127.0.0.1';
const threads = process.env.THREADS === 'default' ? undefined : Number(process.env.THREADS ?? 1);
const maxBackpressure = process.env.BACKPRESSURE ? Number(process.env.BACKPRESSURE) : undefined;
const maxPayload = process.env.MAX_PAYLOAD ? Number(process.env.MAX_PAYLOAD) : undefined;
const compression = process.env.COMPRESSION === '1';
const tls = process.env.TLS_CERT ? { cert: process.env.TLS_CERT, key: process.env.TLS_KEY } : undefined;
const cluster = process.env.CLUSTER_REDIS ? { redis: process.env.CLUSTER_REDIS }
  : process.env.CLUSTER_NATS ? { nats: process.env.CLUSTER_NATS } : undefined;

let listenOn = { bind: `${host}:${port}` };
if (process.env.ATTACH === '1') {
  const server = http.createServer((req, res) => res.end('page'));
  await new Promise((resolve) => server.listen(port, host, resolve));
  listenOn = { server };
}
await start({
  ...listenOn,
  workerPath: fileURLToPath(new URL('./wsbroker-worker.mjs', import.meta.url)),
  threads,
  maxBackpressure,
  maxPayload,
  compression,
  tls,
  ...(cluster && { cluster }),
});
console.log(`listening ${host}:${port}`);
