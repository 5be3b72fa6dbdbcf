// The benchmark application (bench/README.md) on WSBroker through its public API. The handlers
// are in wsbroker-worker.mjs.
//
//   node bench/servers/wsbroker.mjs [port]   THREADS=<n> (default 1); prints "listening 127.0.0.1:<port>"
import { start } from 'wsbroker';
import { fileURLToPath } from 'node:url';

const port = Number(process.argv[2] ?? process.env.PORT ?? 9001);
const host = process.env.HOST ?? '127.0.0.1';
const threads = Number(process.env.THREADS ?? 1);

await start({
  bind: `${host}:${port}`,
  workerPath: fileURLToPath(new URL('./wsbroker-worker.mjs', import.meta.url)),
  threads,
});
console.log(`listening ${host}:${port}`);
