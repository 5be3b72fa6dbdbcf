// Entry point of the Worker threads that start() spawns: imports the user's module, registers its
// handlers for this thread and tells the main thread it is ready (or why it could not be).
import { parentPort, workerData } from 'node:worker_threads';
import { registerWorkerThread } from './index.cjs';
import { importWorkerModule } from './module.cjs';

/** What the main thread passes to each worker it spawns. */
export interface WorkerData {
  modulePath: string;
}

/** Messages from a spawned worker to the main thread. */
export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'failed'; error: { name: string; message: string; stack?: string } };

async function main(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('wsbroker: lib/js/worker.cjs is meant to run in a Worker spawned by start()');
  const { modulePath } = workerData as WorkerData;
  try {
    registerWorkerThread(await importWorkerModule(modulePath));
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    const msg: WorkerMessage = { type: 'failed', error: { name: e.name, message: e.message, stack: e.stack } };
    port.postMessage(msg);
    return;
  }
  // A listener keeps this thread's event loop alive for as long as the main thread keeps the
  // Worker; the events themselves arrive through the addon.
  port.on('message', () => {});
  const ready: WorkerMessage = { type: 'ready' };
  port.postMessage(ready);
}

void main();
