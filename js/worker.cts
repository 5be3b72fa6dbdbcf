// Entry point of the Worker threads that start() spawns: imports the user's module, registers its
// handlers for this thread and tells the main thread it is ready (or why it could not be).
import { parentPort, workerData } from 'node:worker_threads';
import { registerWorkerThread, thisWorkerId } from './delivery.cjs';
import { importWorkerModule } from './module.cjs';
import type { MainMessage, WorkerData, WorkerMessage } from './types.cjs';

async function main(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('wsbroker: lib/js/worker.cjs is meant to run in a Worker spawned by start()');
  const { modulePath, delivery } = workerData as WorkerData;
  try {
    registerWorkerThread(await importWorkerModule(modulePath), delivery);
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    const msg: WorkerMessage = { type: 'failed', error: { name: e.name, message: e.message, stack: e.stack } };
    port.postMessage(msg);
    return;
  }
  // The main thread's watchdog pings; a thread whose event loop is stuck cannot answer.
  const pong: WorkerMessage = { type: 'pong' };
  port.on('message', (msg: MainMessage) => {
    if (msg?.type === 'ping') port.postMessage(pong);
  });
  const ready: WorkerMessage = { type: 'ready', worker: thisWorkerId() };
  port.postMessage(ready);
}

void main();
