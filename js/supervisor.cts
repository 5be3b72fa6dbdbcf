// The worker threads that start() spawns, on the main thread: each runs in a WorkerSlot that
// replaces it when it dies (with a growing delay when it keeps dying) and terminates it when its
// event loop stops answering the watchdog's pings.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { errorText, log, LogLevel } from './log.cjs';
import type { DeliveryOptions, MainMessage, WorkerData, WorkerMessage } from './types.cjs';

const WORKER_ENTRY = path.join(__dirname, 'worker.cjs');
const FAST_DEATH_MS = 1000;
/** The watchdog pings every worker this often and terminates one that has not answered for HANG_MS. */
const PING_MS = 1000;
const HANG_MS = 4000;
const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 30_000;

/** The standard error types, to rebuild an error that a worker reported by name. */
const ERROR_TYPES: Record<string, ErrorConstructor> = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
};

/** The delay before replacing a worker that died soon after starting, when the last delay was `previous` (0: none). */
export function nextBackoff(previous: number): number {
  return Math.min(previous === 0 ? FIRST_BACKOFF_MS : previous * 2, MAX_BACKOFF_MS);
}

/** Spawned workers that are running or being replaced: the pool that start() can count on. */
const liveSlots = new Set<WorkerSlot>();

/** Stops the given workers for good and waits until they are gone. */
export async function retireAll(slots: WorkerSlot[]): Promise<void> {
  await Promise.all(slots.map((slot) => slot.retire()));
}

/** Whether a worker spawned by start() is running or being replaced. */
export function hasLiveWorkers(): boolean {
  return liveSlots.size > 0;
}

/** Stops every worker that start() spawned and waits until they are gone. */
export async function retireLiveWorkers(): Promise<void> {
  await retireAll([...liveSlots]);
}

/**
 * Spawns `count` workers on the module at `modulePath` and resolves with them once all are ready.
 * If one cannot be, all are stopped and the promise rejects with that one's reason.
 */
export async function launchWorkers(modulePath: string, count: number, delivery: DeliveryOptions): Promise<WorkerSlot[]> {
  const slots = Array.from({ length: count }, () => new WorkerSlot(modulePath, delivery));
  const started = await Promise.allSettled(slots.map((slot) => slot.launch()));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) {
    await retireAll(slots);
    throw failed.reason;
  }
  return slots;
}

/**
 * One place in the pool: runs a Worker on the module and, once that worker has been ready, keeps
 * replacing it whenever it dies, until retired.
 */
export class WorkerSlot {
  private worker: Worker | undefined;
  private retired = false;
  private readyAt = 0;
  private backoff = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly modulePath: string,
    readonly delivery: DeliveryOptions,
  ) {}

  /** Spawns the worker; resolves when it is ready, rejects with the reason it could not be. */
  launch(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const data: WorkerData = { modulePath: this.modulePath, delivery: this.delivery };
      const worker = new Worker(WORKER_ENTRY, { workerData: data });
      this.worker = worker;
      const id = worker.threadId;
      let ready = false;
      let failure: unknown;
      let hung: string | undefined;
      let lastPong = 0;
      let brokerWorker = 0;
      const ping: MainMessage = { type: 'ping' };
      const watchdog = setInterval(() => {
        if (!ready) return; // importing the module may take its time
        if (Date.now() - lastPong < HANG_MS) {
          worker.postMessage(ping);
        } else if (hung === undefined) {
          hung = `its event loop did not answer for ${HANG_MS} ms (a handler that never returns?); terminated`;
          void worker.terminate();
        }
      }, PING_MS);
      watchdog.unref();
      worker.on('message', (msg: WorkerMessage) => {
        if (msg?.type === 'pong') {
          lastPong = Date.now();
        } else if (msg?.type === 'ready' && !ready) {
          ready = true;
          brokerWorker = msg.worker;
          this.readyAt = lastPong = Date.now();
          liveSlots.add(this);
          resolve();
        } else if (msg?.type === 'failed' && !ready) {
          const Ctor = ERROR_TYPES[msg.error.name] ?? Error;
          const cause = new Ctor(msg.error.message);
          if (cause.name !== msg.error.name) cause.name = msg.error.name;
          if (msg.error.stack !== undefined) cause.stack = msg.error.stack;
          failure = cause;
          reject(cause);
          void worker.terminate();
        }
      });
      worker.on('error', (err) => {
        failure ??= err;
        if (!ready) reject(err);
      });
      worker.on('exit', (code) => {
        clearInterval(watchdog);
        if (this.worker === worker) this.worker = undefined;
        if (!ready) {
          reject(failure ?? new Error(`worker thread ${id} exited with code ${code} before it was ready`));
          return;
        }
        if (this.retired) return;
        const why = hung ?? (failure !== undefined ? `uncaught exception: ${errorText(failure)}` : `exit code ${code}`);
        this.replace(`worker thread ${id} (${this.modulePath}) died (${why})`, Date.now() - this.readyAt < FAST_DEATH_MS, id, brokerWorker);
      });
    });
  }

  /** Schedules a new worker after one died (or failed to start while being replaced). */
  private replace(what: string, fast: boolean, nodeThread = 0, worker = 0): void {
    this.backoff = fast ? nextBackoff(this.backoff) : 0;
    log(LogLevel.Error, `wsbroker: ${what}; starting a new worker${this.backoff > 0 ? ` in ${this.backoff} ms` : ''}`, 0, nodeThread, worker);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.retired) return;
      this.launch().then(undefined, (err: unknown) => {
        if (this.retired) return;
        this.replace(`a new worker for ${this.modulePath} failed to start: ${errorText(err)}`, true);
      });
    }, this.backoff);
  }

  /** Stops this slot for good: no more replacements; resolves once the worker has exited. */
  async retire(): Promise<void> {
    this.retired = true;
    liveSlots.delete(this);
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const worker = this.worker;
    this.worker = undefined;
    if (worker !== undefined) await worker.terminate();
  }
}
