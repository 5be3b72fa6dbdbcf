// The ws benchmark server (ws.mjs, unchanged) under Node's cluster module: WORKERS processes share
// the port, the primary handing each new connection to one of them in turn. A channel lives in one
// worker, so a broadcast reaches only that worker's subscribers: plain ws has no fan-out across
// processes, and the runner gives this server the echo scenario only.
//
//   WORKERS=<n> node bench/servers/ws-cluster.mjs [port]
//
// WORKERS defaults to the cores this process may run on. Once every worker listens it prints
// "listening 127.0.0.1:<port> workers <pid>,<pid>,…", so that the runner counts the workers' CPU
// with the primary's.
import cluster from 'node:cluster';
import os from 'node:os';

if (cluster.isPrimary) {
  const count = Number(process.env.WORKERS ?? os.availableParallelism());
  // silent: each worker's own "listening" line would tell the runner it is ready before all are.
  cluster.setupPrimary({ silent: true });
  const workers = Array.from({ length: count }, () => cluster.fork());
  for (const worker of workers) {
    worker.process.stdout.resume();
    worker.process.stderr.pipe(process.stderr);
  }
  let listening = 0;
  cluster.on('listening', (worker, address) => {
    listening++;
    if (listening === count) console.log(`listening ${address.address}:${address.port} workers ${workers.map((w) => w.process.pid).join(',')}`);
  });
  let stopping = false;
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    console.error(`ws cluster: worker ${worker.process.pid} exited (${signal ?? code})`);
    process.exit(1);
  });
  // The runner stops the primary: the workers go first, so that none still runs into the next run.
  process.on('SIGTERM', async () => {
    stopping = true;
    const exited = workers.map((w) => (w.isDead() ? undefined : new Promise((resolve) => w.once('exit', resolve))));
    for (const worker of workers) worker.process.kill('SIGTERM');
    await Promise.all(exited);
    process.exit(0);
  });
} else {
  await import('./ws.mjs');
}
