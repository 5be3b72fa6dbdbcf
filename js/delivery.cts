// Event delivery on this thread: registerWorkerThread, the sink that the addon's batches are
// decoded into, the calls of the handlers (and ordered mode, where a socket's next event waits for
// its previous handler's promise), and what this thread is to the broker (its worker id).
import { isMainThread, threadId } from 'node:worker_threads';
import { native } from './addon.cjs';
import { decodeBatch, tokenAsBytes, utf8Slice, type BatchSink, type TokenReader } from './batch.cjs';
import { jsonTokenHandler, type TypedWorkerInterface, type WorkerDefinition } from './define.cjs';
import { errorText, log as logLine, LogLevel } from './log.cjs';
import { HANDLER_NAMES } from './module.cjs';
import { ParsedRequest, SERVER_ERROR, verdictOf, type OpenVerdict } from './open.cjs';
import { DEFAULT_DELIVERY, registrationOf } from './options.cjs';
import { CloseCode, EventKind, HandlerBit } from './protocol.gen.cjs';
import type { DeliveryOptions, WorkerInterface } from './types.cjs';

/** This thread's worker id in the broker once registerWorkerThread succeeded (0 before). */
let workerId = 0;

/** This thread's worker id in the broker once registerWorkerThread succeeded (0 before). */
export function thisWorkerId(): number {
  return workerId;
}

/**
 * The handlers registered on this thread, those made by defineWorker unwrapped: each gets the
 * token as its kind's reader in `tokenReaders` reads it (a Buffer, or a JSON value).
 */
let handlers: TypedWorkerInterface<unknown> | undefined;
/** How each kind of event's token is read for this thread's handler of it (see BatchSink.tokens). */
let tokenReaders: Array<TokenReader | undefined> = [];
/** Where the event being handled ends in the current batch; the addon reads it (see batch.cts). */
const progress = new Int32Array(1);

/** How this thread delivers events (registerWorkerThread's options). */
let delivery: Required<DeliveryOptions> = DEFAULT_DELIVERY;

type EventHandler = 'handleTextMessage' | 'handleBinaryMessage' | 'handleClose' | 'handleDrain';

/** What `deliver` calls: a handler, or the answer to a catch-up event, which waits behind them. */
type Delivered = EventHandler | 'caughtUp';

/** Ordered mode: the sockets whose handler promise has not settled, with the events waiting for it. */
const waiting = new Map<number, Array<[Delivered, () => unknown]>>();

/** Whether the main thread is a registered worker (as `start` without `workerPath` needs one). */
export function isMainThreadRegistered(): boolean {
  return isMainThread && handlers !== undefined;
}

/** Removes the main thread from the broker's workers, if it is one (`stop` does). */
export function unregisterMainThread(): void {
  if (!isMainThreadRegistered()) return;
  native.unregisterWorker();
  handlers = undefined;
}

/** The bit of the handler mask that each handler asks for. */
const HANDLER_BITS: Record<(typeof HANDLER_NAMES)[number], number> = {
  handleOpen: HandlerBit.Open,
  handleTextMessage: HandlerBit.Text,
  handleBinaryMessage: HandlerBit.Binary,
  handleClose: HandlerBit.Close,
  handleDrain: HandlerBit.Drain,
};

/**
 * Registers the calling thread as a worker: the broker delivers events of the connections pinned
 * to this thread to the given handlers. `start` with a `workerPath` does this in every thread it
 * spawns, so this is only needed to handle events in a thread of your own (the main thread, or a
 * `Worker` you created). Calling it again on the same thread replaces the handlers.
 *
 * @param worker - An object with any of the `WorkerInterface` handlers, or what `defineWorker`
 * returns (its handlers get the token decoded from JSON).
 * @param options - Optional: how events are delivered on this thread (see `DeliveryOptions`).
 * @throws {TypeError} when `worker` is not an object, one of its handlers is present but not a
 * function, an option is out of range, or `options` has a key that is not one of
 * `DeliveryOptions` (the message names it and the nearest valid one).
 */
export function registerWorkerThread<T>(worker: WorkerInterface | WorkerDefinition<T>, options: DeliveryOptions = {}): void {
  const nextDelivery = registrationOf(worker, options);
  let mask = 0;
  for (const name of HANDLER_NAMES) {
    if (worker[name] !== undefined) mask |= HANDLER_BITS[name];
  }
  if (nextDelivery.ordered) mask |= HandlerBit.CatchUp;
  const given = worker as TypedWorkerInterface<unknown>;
  const previous = { handlers, tokenReaders };
  delivery = nextDelivery;
  tokenReaders = [];
  handlers = {
    handleOpen: given.handleOpen,
    handleTextMessage: withTokenOf(EventKind.Text, 'handleTextMessage', given.handleTextMessage),
    handleBinaryMessage: withTokenOf(EventKind.Binary, 'handleBinaryMessage', given.handleBinaryMessage),
    handleClose: withTokenOf(EventKind.Close, 'handleClose', given.handleClose),
    handleDrain: withTokenOf(EventKind.Drain, 'handleDrain', given.handleDrain),
  };
  try {
    workerId = native.registerWorker(dispatch, mask, progress, process.versions.bun !== undefined);
  } catch (err) {
    ({ handlers, tokenReaders } = previous);
    throw err;
  }
  log(LogLevel.Debug, 'worker registered');
}

/**
 * Sets how the token of `kind`'s events is read for `handler`: decoded from JSON for a handler made
 * by defineWorker (returned unwrapped), as bytes for any other, not at all without a handler.
 */
function withTokenOf<H>(kind: EventKind, name: string, handler: H | undefined): H | undefined {
  const typed = jsonTokenHandler(handler);
  tokenReaders[kind] = handler === undefined ? undefined : typed !== undefined ? jsonTokenFor(name) : tokenAsBytes;
  return (typed as H | undefined) ?? handler;
}

/** Reads a token as JSON for handler `name`: `undefined`, and an error logged, when it does not parse. */
function jsonTokenFor(name: string): TokenReader {
  return (batch, start, end, socketId) => {
    try {
      return JSON.parse(utf8Slice(batch, start, end)) as unknown;
    } catch {
      // The parser's message quotes the token, which may be a secret.
      log(LogLevel.Error, `the token of socket ${socketId} (${end - start} bytes) is not JSON, so ${name} gets undefined`, socketId);
      return undefined;
    }
  };
}

/** Writes a line about this thread, its worker, and the socket `socketId` (0: none). */
function log(level: LogLevel, message: string, socketId = 0): void {
  logLine(level, message, socketId, threadId, workerId);
}

function logHandlerError(handler: string, socketId: number, err: unknown): void {
  log(LogLevel.Error, `${handler} failed for socket ${socketId} (worker thread ${threadId}): ${errorText(err)}`, socketId);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** Makes an addon call that follows up an event of socket `socketId`; a failure is logged, never thrown. */
function followUp(what: string, socketId: number, call: () => void): void {
  try {
    call();
  } catch (err) {
    log(LogLevel.Error, `${what} failed for socket ${socketId}: ${errorText(err)}`, socketId);
  }
}

function acceptOpen(socketId: number, accept: boolean): void {
  followUp('acceptOpen', socketId, () => native.acceptOpen(socketId, accept));
}

/** Gives the verdict that handleOpen's result (or its promise's value) asks for. */
function settleOpen(socketId: number, result: unknown): void {
  let verdict: OpenVerdict;
  try {
    verdict = verdictOf(result);
  } catch (err) {
    log(LogLevel.Error, `handleOpen's refusal is answered with HTTP 500: ${(err as TypeError).message}`, socketId);
    verdict = SERVER_ERROR;
  }
  if ('accept' in verdict) acceptOpen(socketId, verdict.accept);
  else followUp('refuseOpen', socketId, () => native.refuseOpen(socketId, verdict.refusal, verdict.body));
}

/** Calls a handler now, or, in ordered mode, once the socket's previous handler has settled. */
function deliver(socketId: number, name: Delivered, call: () => unknown): void {
  const queue = waiting.get(socketId);
  if (queue !== undefined) queue.push([name, call]);
  else run(socketId, name, call);
}

/** Calls a handler now; with `ordered`, the socket's later events wait for its promise. */
function run(socketId: number, name: Delivered, call: () => unknown, ordered = delivery.ordered): void {
  let result: unknown;
  try {
    result = call();
  } catch (err) {
    failed(socketId, name, err, ordered);
    return;
  }
  if (!isThenable(result)) return;
  if (!ordered) {
    Promise.resolve(result).then(undefined, (err: unknown) => logHandlerError(name, socketId, err));
    return;
  }
  // Later events of this socket wait until the promise settles, or until handlerTimeout.
  if (!waiting.has(socketId)) waiting.set(socketId, []);
  let done = false;
  const settle = (err?: unknown) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    if (err !== undefined) failed(socketId, name, err);
    release(socketId);
  };
  const timer = setTimeout(() => settle(new Error(`${name} did not settle within ${delivery.handlerTimeout} ms`)), delivery.handlerTimeout);
  Promise.resolve(result).then(
    () => settle(),
    (err: unknown) => settle(err ?? new Error(`${name} rejected with ${String(err)}`)),
  );
}

/** Runs the events that waited for the socket's settled handler, until one holds it again. */
function release(socketId: number): void {
  const queue = waiting.get(socketId) ?? [];
  waiting.delete(socketId);
  while (queue.length > 0) {
    const [name, call] = queue.shift()!;
    run(socketId, name, call);
    const held = waiting.get(socketId);
    if (held !== undefined) {
      held.push(...queue);
      return;
    }
  }
}

/** A handler threw or rejected: log it; in ordered mode the socket is closed with 1011. */
function failed(socketId: number, name: Delivered, err: unknown, ordered = delivery.ordered): void {
  logHandlerError(name, socketId, err);
  if (!ordered || name === 'handleClose') return;
  followUp('close', socketId, () => native.close(socketId, CloseCode.HandlerFailed, `${name} failed`));
}

const sink: BatchSink = {
  get tokens() {
    return tokenReaders;
  },
  open(socketId, _token, ip, url, headers) {
    const fn = handlers?.handleOpen;
    if (fn === undefined) {
      acceptOpen(socketId, true);
      return;
    }
    let result: unknown;
    try {
      result = fn(socketId, ip, headers, url, new ParsedRequest(url, headers.cookie));
    } catch (err) {
      logHandlerError('handleOpen', socketId, err);
      acceptOpen(socketId, false);
      return;
    }
    if (isThenable(result)) {
      Promise.resolve(result).then(
        (value) => settleOpen(socketId, value),
        (err: unknown) => {
          logHandlerError('handleOpen', socketId, err);
          acceptOpen(socketId, false);
        },
      );
    } else {
      settleOpen(socketId, result);
    }
  },
  text(socketId, token, data) {
    const fn = handlers?.handleTextMessage;
    if (fn !== undefined) deliver(socketId, 'handleTextMessage', () => fn(data, socketId, token));
  },
  binary(socketId, token, data) {
    const fn = handlers?.handleBinaryMessage;
    if (fn !== undefined) deliver(socketId, 'handleBinaryMessage', () => fn(data, socketId, token));
  },
  close(socketId, token, code, reason) {
    const fn = handlers?.handleClose;
    if (fn !== undefined) deliver(socketId, 'handleClose', () => fn(socketId, token, code, reason));
  },
  drain(socketId, token) {
    const fn = handlers?.handleDrain;
    if (fn === undefined) return;
    // Never held behind the socket's pending handler (ordered mode): that handler may be a
    // producer awaiting this very call. So it runs, and fails, as in unordered mode.
    run(socketId, 'handleDrain', () => fn(socketId, token), false);
  },
  catchUp(socketId) {
    // In ordered mode this waits for the socket's pending handler promises, like its events.
    deliver(socketId, 'caughtUp', () => followUp('caughtUp', socketId, () => native.caughtUp(socketId)));
  },
};

/**
 * Called by the addon on this thread with a batch of events: the first `length` bytes of `memory`,
 * which the addon reuses for the next batch (decodeBatch copies out what it hands on). Never throws.
 */
function dispatch(memory: ArrayBuffer, length: number): void {
  try {
    decodeBatch(Buffer.from(memory, 0, length), sink, progress, native.takeParcel);
  } catch (err) {
    log(LogLevel.Error, `wsbroker: dropped the rest of an event batch (worker thread ${threadId}): ${errorText(err)}`);
  }
}
