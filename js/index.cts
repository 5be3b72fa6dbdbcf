// The public API of WSBroker (CommonJS entry; index.mts re-exports it for ES modules).
//
// Go owns the connections, channels and tokens; this file validates arguments, hands calls to the
// native addon, decodes the event batches the addon delivers to each registered thread and calls
// the handlers, and, on the main thread, spawns and supervises the worker threads of start().
import { readFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as util from 'node:util';
import { Worker, isMainThread, threadId } from 'node:worker_threads';
import { decodeBatch, type BatchSink } from './batch.cjs';
import { loadNative } from './load.cjs';
import { HANDLER_NAMES, importWorkerModule, loadError } from './module.cjs';
import { HandlerBit, LogLevel, type NativeBytes } from './native.cjs';
import { thread } from './thread.cjs';
import type { MainMessage, WorkerData, WorkerMessage } from './worker.cjs';

const native = loadNative();

/**
 * Starts a WebSocket server on `options.bind` and, when `options.workerPath` is given, the worker
 * threads that run the handlers of that module.
 *
 * Notes:
 * - Several servers can run at once on different addresses: call `start` once per address. They
 *   share one broker state (channels, subscriptions, tokens) and one pool of workers; a `start`
 *   with a `workerPath` adds its workers to that pool, one without uses the pool as it is.
 * - Without `workerPath`, a worker must already be registered: an earlier `start` with a
 *   `workerPath`, or `registerWorkerThread` called on the main thread. A `registerWorkerThread`
 *   call made in a `Worker` that `start` did not spawn cannot be seen from the main thread and does
 *   not count for this check.
 * - Each connection is pinned, when it arrives, to one worker (round-robin); all its events reach
 *   that worker, in order. A spawned worker that exits or crashes is replaced by a new one running
 *   the same module, and its connections are handed to the live workers; a module that keeps
 *   crashing is restarted with a growing delay (100 ms doubling up to 30 s), and every death is
 *   logged. A spawned worker whose event loop stays blocked (a handler that never returns) is
 *   detected within 5 s, terminated and replaced the same way.
 * - A listening server keeps the Node.js process alive, like an `http.Server`.
 *
 * @param options - What to start:
 * - `bind`: required. The address to listen on, `host:port` as Go's `net.Listen` takes it
 *   (`127.0.0.1:8080`, `0.0.0.0:8080`, `[::1]:8080`, `localhost:8080`), or an array of such
 *   addresses (all listen, with the same options, or none does).
 * - `workerPath`: optional. The worker module, absolute or relative to `process.cwd()`; an ES module
 *   or a CommonJS module exporting any of the `WorkerInterface` handlers (for CommonJS, on
 *   `module.exports`). It is imported in every worker thread and the handlers it exports are
 *   registered there.
 * - `threads`: optional. How many worker threads to spawn for `workerPath`, default
 *   `Math.max(os.cpus().length, 4)`. With `0`, the module is imported and registered on the main
 *   thread and no worker thread is spawned (its handlers stay registered even if `start` then
 *   fails to listen).
 * - the limits of this listener, each optional (see `StartOptions`): `maxPayload` (16 MiB),
 *   `idleTimeout` (120000 ms, `0` disables), `handshakeTimeout` (10000 ms), `maxHeaderBytes`
 *   (16 KiB), `maxConnections` (`0`: no limit), `maxBackpressure` (16 MiB), `openTimeout`
 *   (10000 ms); and `protocols`, the subprotocols this listener speaks.
 * - `compression`: optional. `true` negotiates permessage-deflate with clients that offer it;
 *   `{ serverContextTakeover: true }` also keeps the server's context between messages.
 * - `tls`: optional. `{ cert, key }` serves `wss://` on these addresses.
 * - `metrics`: optional. An address where `stats()` is served in Prometheus text format.
 * @returns A Promise that resolves once the workers of this call are ready and the address is
 * listening. Listening is all or none: if one address (or the `metrics` address) cannot be
 * listened on, nothing of this call stays bound.
 * @throws {TypeError} (a rejection) when `options` is not an object, or has a key that is not one
 * of `StartOptions` (the message names it and the nearest valid one; so do `tls` and `compression`
 * objects with a key of their own), `bind` is not a string or a non-empty array of strings,
 * `threads` is present but not a non-negative integer, `workerPath` is present but not a string,
 * a limit is not an integer in its range, `compression` is neither a boolean nor
 * `{ serverContextTakeover: boolean }`, or `tls` is not an
 * object whose `cert` and `key` are strings or Buffers.
 * @throws {Error} (a rejection) when the worker module cannot be imported (the message names its
 * path, `cause` is the original error; the workers of this call are stopped and nothing listens);
 * when no `workerPath` is given and no worker is registered (`At least one worker must be
 * registered before starting the server`); when the address cannot be listened on (the message
 * names the address and the reason, e.g. the port is in use; the workers of this call are stopped);
 * when a `tls` file cannot be read (the message names the option and the path) or the certificate
 * and key are not valid PEM or do not match (the message says which).
 */
export async function start(options: StartOptions): Promise<void> {
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`start: options must be an object like { bind: '127.0.0.1:8080' }, got ${describe(options)}`);
  }
  rejectUnknownKeys(options, START_OPTIONS, 'start', 'options');
  const { bind, workerPath, threads } = options;
  const addresses = typeof bind === 'string' ? [bind] : bind;
  if (!Array.isArray(addresses) || addresses.length === 0 || !addresses.every((a) => typeof a === 'string' && !a.includes('\n'))) {
    throw new TypeError(`start: options.bind must be an address like '127.0.0.1:8080', or an array of them, got ${describe(bind)}`);
  }
  if (threads !== undefined && (typeof threads !== 'number' || !Number.isSafeInteger(threads) || threads < 0)) {
    throw new TypeError(`start: options.threads must be a non-negative integer, got ${describe(threads)}`);
  }
  if (workerPath !== undefined && typeof workerPath !== 'string') {
    throw new TypeError(`start: options.workerPath must be a string, got ${describe(workerPath)}`);
  }
  const { metrics } = options;
  if (metrics !== undefined && typeof metrics !== 'string') {
    throw new TypeError(`start: options.metrics must be an address like '127.0.0.1:9090', got ${describe(metrics)}`);
  }
  const workerDelivery = deliveryOf(options, 'start');
  const listenConfig = {
    bind: addresses,
    ...limitsOf(options),
    protocols: protocolsOf(options),
    ...compressionOf(options),
    tls: await tlsOf(options),
    metrics: metrics ?? '',
  };
  await stopping;

  let spawned: WorkerSlot[] = [];
  if (workerPath !== undefined) {
    const absPath = path.resolve(process.cwd(), workerPath);
    const count = threads ?? Math.max(os.cpus().length, 4);
    if (count === 0) {
      let exported: WorkerInterface;
      try {
        exported = await importWorkerModule(absPath);
      } catch (err) {
        throw loadError(absPath, err);
      }
      try {
        registerWorkerThread(exported, workerDelivery);
      } catch (err) {
        throw loadError(absPath, err);
      }
    } else {
      spawned = Array.from({ length: count }, () => new WorkerSlot(absPath, workerDelivery));
      const started = await Promise.allSettled(spawned.map((slot) => slot.launch()));
      const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed !== undefined) {
        await retireAll(spawned);
        throw loadError(absPath, failed.reason);
      }
    }
  } else if (!mainThreadRegistered && liveSlots.size === 0) {
    throw new Error('At least one worker must be registered before starting the server');
  }

  try {
    native.listen(JSON.stringify(listenConfig));
  } catch (err) {
    await retireAll(spawned);
    throw err;
  }
}

/**
 * The options of `start`. Sizes are in bytes, times in milliseconds; every limit applies to the
 * listeners that this `start` call opens, `ordered` and `handlerTimeout` (see `DeliveryOptions`)
 * to the workers it starts.
 */
export interface StartOptions extends DeliveryOptions {
  /** The address to listen on, `host:port` as Go's `net.Listen` takes it (`127.0.0.1:8080`, `0.0.0.0:8080`, `[::1]:8080`, `localhost:8080`), or an array of them: all listen, or none does. */
  bind: string | string[];
  /** The worker module, absolute or relative to `process.cwd()`. */
  workerPath?: string;
  /** How many worker threads to spawn for `workerPath`; default `Math.max(os.cpus().length, 4)`; `0` registers the module on the main thread. */
  threads?: number;
  /** The largest message a client may send, after reassembly of its fragments; a larger one closes the connection with code 1009. Default 16 MiB. */
  maxPayload?: number;
  /** A connection that sends nothing for this long is pinged; if it still sends nothing for as long again, it is closed with code 1001. While it is on, connections have no TCP keep-alive (the ping finds a dead peer); with `0`, Go's TCP keep-alive stays on (a probe after 15 s without traffic). `0` disables. Default 120000. */
  idleTimeout?: number;
  /** The time a client has to send its whole upgrade request; past it the TCP connection is closed. On Linux it runs from the client's first bytes: the kernel holds a connection that has sent nothing for about a second before the server sees it (`TCP_DEFER_ACCEPT`). Default 10000. */
  handshakeTimeout?: number;
  /** The largest upgrade request head (request line and headers); a larger one is answered with HTTP 431. Default 16384. */
  maxHeaderBytes?: number;
  /** How many connections this listener holds at most (upgrades waiting for `handleOpen` included); one more is answered with HTTP 503. `0`: no limit. Default 0. */
  maxConnections?: number;
  /** How many bytes may wait to be written to one connection (each message counts 32 bytes more). A send (`send`, or `sendToChannel` for each subscriber) to a connection whose queue is already over it closes that connection with code 1008 and frees its queue; a message sent into a queue under it is taken whole, whatever its size, so a queue holds at most this plus one message, and a message of `maxPayload` can be echoed with both at their defaults. Default 16 MiB. */
  maxBackpressure?: number;
  /** How long `handleOpen` (and the promise it returns) may take; past it the upgrade is answered with HTTP 503. Default 10000. */
  openTimeout?: number;
  /** The subprotocols this server speaks, e.g. `['chat.v2', 'chat.v1']`: the first one the client offers (`Sec-WebSocket-Protocol`) that is in this list is chosen in the handshake; `handleOpen` sees what the client offered in `headers['sec-websocket-protocol']`. Default: none. */
  protocols?: string[];
  /** An address (`host:port`) where the figures of `stats()` are served in Prometheus text format, at `/metrics`, until `stop()`. Default: none. */
  metrics?: string;
  /**
   * `true` negotiates permessage-deflate (RFC 7692) with every client that offers it (browsers and
   * `ws` do); others are served uncompressed. Every valid offer is accepted (the first of the
   * header), a window the client limits (`server_max_window_bits`, 8 to 15) included: what is sent
   * to it never refers back further. By default without context takeover, in both directions:
   * each message is compressed on its own, so a connection keeps no compressor or window between
   * messages (memory per connection stays as without compression), at the price of a lower ratio
   * than a shared window gives for streams of similar messages. Messages of 256 bytes or more are
   * sent compressed when that makes them smaller; a broadcast is compressed once for all its
   * subscribers with the same window. A compressed message from a client that inflates past
   * `maxPayload` closes the connection with code 1009, an invalid one with 1007. Default `false`.
   *
   * `{ serverContextTakeover: true }` is `true`, except that with a client whose offer allows it
   * (no `server_no_context_takeover`, a 15-bit window) the server keeps its context: a message may
   * refer back to the last 8 KiB sent compressed to that connection, so that a message like a
   * recent one costs a few bytes (a repeated 1 KiB chat message: ~20 bytes instead of ~380). Such
   * a connection holds those 8 KiB from its first compressed message to its end (8.0 KiB more of
   * Go heap per connection, before GC headroom; BENCHMARKS.md, "Compression and TLS"), and a
   * broadcast is compressed for each such subscriber. Clients are still asked not to keep theirs.
   */
  compression?: boolean | { serverContextTakeover: boolean };
  /**
   * Serves `wss://` (TLS, then the usual HTTP/1.1 upgrade) instead of `ws://`. `cert` is the
   * certificate chain and `key` its private key, each in PEM: a string containing `-----BEGIN` or
   * a Buffer is the PEM text itself, any other string is the path of a PEM file (read once, at
   * `start`). A plain-HTTP request to a TLS address is answered with HTTP 400. A TLS connection
   * holds about 17 KiB more memory than a plain one once it has received a 4 KiB message
   * (crypto/tls's state and the record buffers it keeps; BENCHMARKS.md, "Compression and TLS").
   * Default: none (plain `ws://`).
   */
  tls?: { cert: string | Buffer; key: string | Buffer };
}

/** Checks `options.compression` and returns it as the listen configuration carries it. */
function compressionOf(options: StartOptions): { compression: boolean; compressionContextTakeover: boolean } {
  const { compression } = options;
  if (compression === undefined || typeof compression === 'boolean') {
    return { compression: compression === true, compressionContextTakeover: false };
  }
  if (compression !== null && typeof compression === 'object') {
    rejectUnknownKeys(compression, COMPRESSION_OPTIONS, 'start', 'options.compression');
    const { serverContextTakeover } = compression;
    if (typeof serverContextTakeover === 'boolean') {
      return { compression: true, compressionContextTakeover: serverContextTakeover };
    }
  }
  throw new TypeError(`start: options.compression must be a boolean or { serverContextTakeover: boolean }, got ${describe(compression)}`);
}

/** Checks `options.tls` and returns the PEM text of its certificate and key (reading files). */
async function tlsOf(options: StartOptions): Promise<{ cert: string; key: string } | undefined> {
  const { tls } = options;
  if (tls === undefined) return undefined;
  const pemOrPath = (v: unknown): v is string | Uint8Array => typeof v === 'string' || v instanceof Uint8Array;
  if (tls !== null && typeof tls === 'object') rejectUnknownKeys(tls, TLS_OPTIONS, 'start', 'options.tls');
  if (tls === null || typeof tls !== 'object' || !pemOrPath(tls.cert) || !pemOrPath(tls.key)) {
    throw new TypeError(`start: options.tls must be { cert, key }, each PEM text (a string or Buffer) or the path of a PEM file, got ${describe(tls)}`);
  }
  const pem = async (name: 'cert' | 'key'): Promise<string> => {
    const value = tls[name];
    if (typeof value !== 'string') return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1');
    if (value.includes('-----BEGIN')) return value;
    try {
      return await readFile(value, 'latin1');
    } catch (err) {
      throw new Error(`start: cannot read options.tls.${name} from '${value}': ${(err as Error).message}`, { cause: err });
    }
  };
  return { cert: await pem('cert'), key: await pem('key') };
}

/** An HTTP token (RFC 9110), what a subprotocol name must be. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Checks `options.protocols`. */
function protocolsOf(options: StartOptions): string[] {
  const { protocols } = options;
  if (protocols === undefined) return [];
  if (!Array.isArray(protocols) || !protocols.every((p) => typeof p === 'string' && TOKEN.test(p))) {
    throw new TypeError(`start: options.protocols must be an array of subprotocol names (HTTP tokens, like 'chat.v1'), got ${describe(protocols)}`);
  }
  return protocols;
}

type LimitName = 'maxPayload' | 'idleTimeout' | 'handshakeTimeout' | 'maxHeaderBytes' | 'maxConnections' | 'maxBackpressure' | 'openTimeout';

/** The limits of `StartOptions`: name, default, and whether 0 is allowed (it means "off"). */
const LIMITS: ReadonlyArray<readonly [LimitName, number, boolean]> = [
  ['maxPayload', 16 * 1024 * 1024, false],
  ['idleTimeout', 120_000, true],
  ['handshakeTimeout', 10_000, false],
  ['maxHeaderBytes', 16 * 1024, false],
  ['maxConnections', 0, true],
  ['maxBackpressure', 16 * 1024 * 1024, false],
  ['openTimeout', 10_000, false],
];

/** Checks the limits of `options` and returns them with their defaults, as the addon takes them. */
function limitsOf(options: StartOptions): Record<LimitName, number> {
  const out = {} as Record<LimitName, number>;
  for (const [name, fallback, zeroAllowed] of LIMITS) {
    const value = options[name];
    if (value === undefined) {
      out[name] = fallback;
    } else if (typeof value === 'number' && Number.isSafeInteger(value) && (value > 0 || (zeroAllowed && value === 0))) {
      out[name] = value;
    } else {
      throw new TypeError(`start: options.${name} must be ${zeroAllowed ? 'a non-negative' : 'a positive'} integer, got ${describe(value)}`);
    }
  }
  return out;
}

/**
 * The handlers a worker module exports, or passes to `registerWorkerThread`. Every handler is
 * optional: an event without a handler is skipped (a connection without `handleOpen` is accepted).
 * Handlers may be `async`. A handler that throws, or whose promise rejects, is logged with its
 * stack; the other events are still delivered and the server carries on.
 */
export interface WorkerInterface {
  /**
   * Called when a client asks to open a WebSocket connection, before the upgrade is answered.
   * `ip` is the peer address without port (IPv4 as a dotted quad, also on dual-stack listeners);
   * `headers` holds the request headers with lower-case names, `origin` among them (the broker
   * checks no origin: decide here); `url` is the request target, path and query as the client sent
   * them (for instance `/chat?token=…`). Returning `false`, throwing, or returning a promise that
   * resolves to `false` or rejects refuses the connection with HTTP 403; anything else accepts it,
   * once the promise (if any) has settled. The socket id is live during this call: `setToken`,
   * `subscribe` and `send` work here, and what was sent is written once the upgrade completes
   * (dropped if the connection is refused).
   */
  handleOpen?: (socketId: number, ip: string, headers: Record<string, string>, url: string) => boolean | void | Promise<boolean | void>;
  /**
   * Called for every text message a client sends, with the message as a string. `token` is the
   * connection's token as a `Buffer` (the one set when the event was queued), `undefined` when none
   * is set.
   */
  handleTextMessage?: (data: string, socketId: number, token?: Buffer) => void | Promise<void>;
  /**
   * Called for every binary message a client sends, with the message as a `Buffer` of its own.
   * `token` as for `handleTextMessage`.
   */
  handleBinaryMessage?: (data: Buffer, socketId: number, token?: Buffer) => void | Promise<void>;
  /**
   * Called exactly once for every accepted connection when it has ended, whatever ended it. By then
   * the socket is in no channel and sends to it are no-ops. `token` as for `handleTextMessage`.
   * `code` and `reason` say why: those of the client's close frame (1005 if it had no code), or of
   * the server's own (your `close()`, 1001 for `stop()` or an idle client, 1002 or 1007 for a
   * protocol error, 1008 for backpressure, 1009 for a message over `maxPayload`), or 1006 when the
   * connection dropped without a close frame.
   */
  handleClose?: (socketId: number, token: Buffer | undefined, code: number, reason: string) => void | Promise<void>;
}

/** How a worker thread delivers events to its handlers. */
export interface DeliveryOptions {
  /**
   * With `true`, an `async` handler sees a socket's events strictly in order: the next event of a
   * socket waits until the promise of the previous handler settles (other sockets go on). A handler
   * that throws, rejects, or has not settled after `handlerTimeout` closes its socket with code
   * 1011 and a reason naming the handler. Default `false`: handlers are called as events arrive.
   */
  ordered?: boolean;
  /** With `ordered`, how long a handler's promise may take, in milliseconds. Default 30000. */
  handlerTimeout?: number;
}

/** The keys of each options object (the compiler checks each list against its type). */
const DELIVERY_OPTIONS: Record<keyof DeliveryOptions, true> = { ordered: true, handlerTimeout: true };
const START_OPTIONS: Record<keyof StartOptions, true> = {
  bind: true,
  workerPath: true,
  threads: true,
  maxPayload: true,
  idleTimeout: true,
  handshakeTimeout: true,
  maxHeaderBytes: true,
  maxConnections: true,
  maxBackpressure: true,
  openTimeout: true,
  protocols: true,
  metrics: true,
  compression: true,
  tls: true,
  ...DELIVERY_OPTIONS,
};
const TLS_OPTIONS: Record<keyof NonNullable<StartOptions['tls']>, true> = { cert: true, key: true };
const COMPRESSION_OPTIONS: Record<keyof Exclude<StartOptions['compression'], boolean | undefined>, true> = { serverContextTakeover: true };

/**
 * Throws a TypeError naming the first key of `options` that is not one of `known`, and the known
 * one nearest to it: a misspelt option would otherwise be ignored without a word.
 */
function rejectUnknownKeys(options: object, known: Record<string, true>, fn: string, where: string): void {
  const names = Object.keys(known);
  for (const key of Object.keys(options)) {
    if (Object.hasOwn(known, key)) continue;
    throw new TypeError(`${fn}: unknown option ${where}.${key}; did you mean ${where}.${nearest(key, names)}? (${where} takes ${names.join(', ')})`);
  }
}

/** The name in `names` with the fewest single-character edits from `key` (case ignored). */
function nearest(key: string, names: string[]): string {
  let best = names[0];
  let bestDistance = Infinity;
  for (const name of names) {
    const d = editDistance(key.toLowerCase(), name.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [name, d];
  }
  return best;
}

/** Levenshtein distance: insertions, deletions and substitutions. */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length];
}

function deliveryOf(options: unknown, fn: string): Required<DeliveryOptions> {
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`${fn}: options must be an object, got ${describe(options)}`);
  }
  const { ordered = false, handlerTimeout = 30_000 } = options as DeliveryOptions;
  if (typeof ordered !== 'boolean') throw new TypeError(`${fn}: ordered must be a boolean, got ${describe(ordered)}`);
  if (typeof handlerTimeout !== 'number' || !Number.isSafeInteger(handlerTimeout) || handlerTimeout <= 0) {
    throw new TypeError(`${fn}: handlerTimeout must be a positive integer, got ${describe(handlerTimeout)}`);
  }
  return { ordered, handlerTimeout };
}

/**
 * Registers the calling thread as a worker: the broker delivers events of the connections pinned
 * to this thread to the given handlers. `start` with a `workerPath` does this in every thread it
 * spawns, so this is only needed to handle events in a thread of your own (the main thread, or a
 * `Worker` you created). Calling it again on the same thread replaces the handlers.
 *
 * @param worker - An object with any of the `WorkerInterface` handlers.
 * @param options - Optional: how events are delivered on this thread (see `DeliveryOptions`).
 * @throws {TypeError} when `worker` is not an object, one of its handlers is present but not a
 * function, an option is out of range, or `options` has a key that is not one of
 * `DeliveryOptions` (the message names it and the nearest valid one).
 */
export function registerWorkerThread(worker: WorkerInterface, options: DeliveryOptions = {}): void {
  if (worker === null || (typeof worker !== 'object' && typeof worker !== 'function')) {
    throw new TypeError(`registerWorkerThread: worker must be an object with handler functions, got ${describe(worker)}`);
  }
  const nextDelivery = deliveryOf(options, 'registerWorkerThread');
  rejectUnknownKeys(options, DELIVERY_OPTIONS, 'registerWorkerThread', 'options');
  let mask = 0;
  for (const name of HANDLER_NAMES) {
    const fn = worker[name];
    if (fn === undefined) continue;
    if (typeof fn !== 'function') {
      throw new TypeError(`registerWorkerThread: worker.${name} must be a function, got ${describe(fn)}`);
    }
    mask |= HANDLER_BITS[name];
  }
  if (nextDelivery.ordered) mask |= HandlerBit.CatchUp;
  const previous = handlers;
  delivery = nextDelivery;
  handlers = {
    handleOpen: worker.handleOpen,
    handleTextMessage: worker.handleTextMessage,
    handleBinaryMessage: worker.handleBinaryMessage,
    handleClose: worker.handleClose,
  };
  try {
    thread.workerId = native.registerWorker(dispatch, mask, progress, process.versions.bun !== undefined);
  } catch (err) {
    handlers = previous;
    throw err;
  }
  if (isMainThread) mainThreadRegistered = true;
  log(LogLevel.Debug, 'worker registered');
}

/**
 * Sends a message to one connection: a string as a text frame, bytes as a binary frame. An unknown
 * or closed socket id is a silent no-op. The message is queued on the socket and written without
 * blocking this thread. What handlers send while handling one batch of events is written once the
 * batch is handled, one write per connection (while more events wait for this thread, with the
 * next batch's sends, within a millisecond); a send made outside a handler (from a timer, or after
 * an `await`) is written at once.
 *
 * @param socketId - The connection's socket id, as the handlers receive it.
 * @param data - The message: a string (sent as UTF-8 text) or bytes (`Buffer`, any typed array or
 * `DataView`, honouring its offset and length, `ArrayBuffer`, `SharedArrayBuffer`).
 * @throws {TypeError} when `socketId` is not an integer from 1 to 2^53-1, or `data` is none of the
 * types above.
 */
export function send(socketId: number, data: string | ArrayBuffer | SharedArrayBuffer | ArrayBufferView): void {
  checkSocketId(socketId, 'send');
  native.send(socketId, toBytes(data, 'send', 'data'));
}

/**
 * Sends a message to every connection subscribed to a channel, once each: a string as a text
 * frame, bytes as a binary frame. A channel without subscribers is a silent no-op. Queued and
 * written as `send` does, in order with what `send` queues for the same connections.
 *
 * @param channelName - The channel: a string or bytes; a string and its UTF-8 bytes name the same
 * channel.
 * @param data - The message, as for `send`.
 * @param exceptSocketId - Optional: a connection that does not get the message even if it is
 * subscribed (typically the sender).
 * @throws {TypeError} when `channelName` or `data` is not a string, `ArrayBuffer`,
 * `SharedArrayBuffer` or `ArrayBufferView`, or `exceptSocketId` is given but not an integer from 1
 * to 2^53-1.
 */
export function sendToChannel(
  channelName: string | ArrayBuffer | SharedArrayBuffer | ArrayBufferView,
  data: string | ArrayBuffer | SharedArrayBuffer | ArrayBufferView,
  exceptSocketId?: number,
): void {
  if (exceptSocketId !== undefined) checkSocketId(exceptSocketId, 'sendToChannel', 'exceptSocketId');
  native.sendToChannel(
    toBytes(channelName, 'sendToChannel', 'channelName'),
    toBytes(data, 'sendToChannel', 'data'),
    exceptSocketId,
  );
}

/**
 * Counts the connections subscribed to a channel.
 *
 * @param channelName - The channel: a string or bytes, as for `sendToChannel`.
 * @returns How many connections are subscribed to it (0 for an unknown channel).
 * @throws {TypeError} when `channelName` is not a string, `ArrayBuffer`, `SharedArrayBuffer` or
 * `ArrayBufferView`.
 */
export function subscriberCount(channelName: string | ArrayBuffer | SharedArrayBuffer | ArrayBufferView): number {
  return native.subscriberCount(toBytes(channelName, 'subscriberCount', 'channelName'));
}

/**
 * Lists the channels a connection is subscribed to, in no particular order.
 *
 * @param socketId - The connection's socket id.
 * @returns One `Buffer` per channel, holding its name's bytes (`.toString()` gives back a name
 * given as a string); an empty array for an unknown or closed socket.
 * @throws {TypeError} when `socketId` is not an integer from 1 to 2^53-1.
 */
export function subscriptions(socketId: number): Buffer[] {
  checkSocketId(socketId, 'subscriptions');
  return native.subscriptions(socketId);
}

/**
 * Subscribes a connection to a channel. It takes effect before this returns: a `sendToChannel`
 * right after it reaches the connection. A connection leaves all its channels when it closes.
 *
 * @param socketId - The connection's socket id.
 * @param channelName - The channel: a string or bytes, as for `sendToChannel`.
 * @returns `true` if the subscription was added; `false` if the connection was already subscribed,
 * or if the socket is unknown or closed (nothing is stored then).
 * @throws {TypeError} when `socketId` is not an integer from 1 to 2^53-1, or `channelName` is not a
 * string, `ArrayBuffer`, `SharedArrayBuffer` or `ArrayBufferView`.
 */
export function subscribe(socketId: number, channelName: string | ArrayBuffer | SharedArrayBuffer | ArrayBufferView): boolean {
  checkSocketId(socketId, 'subscribe');
  return native.subscribe(
    socketId,
    toBytes(channelName, 'subscribe', 'channelName'),
  );
}

/**
 * Unsubscribes a connection from a channel.
 *
 * @param socketId - The connection's socket id.
 * @param channelName - The channel: a string or bytes, as for `sendToChannel`.
 * @returns `true` if the subscription was removed, `false` if the connection was not subscribed.
 * @throws {TypeError} when `socketId` is not an integer from 1 to 2^53-1, or `channelName` is not a
 * string, `ArrayBuffer`, `SharedArrayBuffer` or `ArrayBufferView`.
 */
export function unsubscribe(socketId: number, channelName: string | ArrayBuffer | SharedArrayBuffer | ArrayBufferView): boolean {
  checkSocketId(socketId, 'unsubscribe');
  return native.unsubscribe(
    socketId,
    toBytes(channelName, 'unsubscribe', 'channelName'),
  );
}

/**
 * Attaches a token (for instance who the user is, once authenticated) to a connection, replacing
 * the previous one. It is passed, as a `Buffer`, with every event of that connection queued after
 * this call, `handleClose` included. An event already queued keeps the token it was queued with:
 * a message the client sent right behind the one being handled may still carry the previous
 * token (keep what must be seen at once in the worker too: a socket's events all reach the same
 * worker). An unknown or closed socket id is a silent no-op.
 *
 * @param socketId - The connection's socket id.
 * @param token - The token: a string (stored as its UTF-8) or bytes.
 * @throws {TypeError} when `socketId` is not an integer from 1 to 2^53-1, or `token` is not a
 * string, `ArrayBuffer`, `SharedArrayBuffer` or `ArrayBufferView`.
 */
export function setToken(socketId: number, token: string | ArrayBuffer | SharedArrayBuffer | ArrayBufferView): void {
  checkSocketId(socketId, 'setToken');
  native.setToken(socketId, toBytes(token, 'setToken', 'token'));
}

/**
 * Subscribes every connection that is subscribed to one channel to another channel as well. This
 * is a one-time copy, not a live alias: later changes to either channel do not affect the other.
 *
 * @param fromChannelName - The channel whose subscribers are copied.
 * @param toChannelName - The channel they are added to.
 * @throws {TypeError} when a channel name is not a string, `ArrayBuffer`, `SharedArrayBuffer` or
 * `ArrayBufferView`.
 */
export function copySubscriptions(
  fromChannelName: string | ArrayBuffer | SharedArrayBuffer | ArrayBufferView,
  toChannelName: string | ArrayBuffer | SharedArrayBuffer | ArrayBufferView,
): void {
  native.copySubscriptions(
    toBytes(fromChannelName, 'copySubscriptions', 'fromChannelName'),
    toBytes(toChannelName, 'copySubscriptions', 'toChannelName'),
  );
}

/**
 * Closes a connection from the server side with a close frame. `handleClose` follows, as for any
 * close, once the client has answered (or after a few seconds if it does not).
 *
 * @param socketId - The connection's socket id.
 * @param code - The close code: 1000 (the default) or an application code from 3000 to 4999.
 * @param reason - A short text for the client, at most 123 bytes of UTF-8. Default empty.
 * @returns `true` if the connection was open and is now closing; `false` if it was unknown,
 * closed or already closing.
 * @throws {TypeError} when `socketId` is not an integer from 1 to 2^53-1, `code` is not 1000 or an
 * integer from 3000 to 4999, or `reason` is not a string of at most 123 bytes of UTF-8.
 */
export function close(socketId: number, code = 1000, reason = ''): boolean {
  checkSocketId(socketId, 'close');
  if (typeof code !== 'number' || !Number.isInteger(code) || !(code === 1000 || (code >= 3000 && code <= 4999))) {
    throw new TypeError(`close: code must be 1000 or an integer from 3000 to 4999, got ${describe(code)}`);
  }
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
    throw new TypeError(`close: reason must be a string of at most 123 bytes of UTF-8, got ${describe(reason)}`);
  }
  return native.close(socketId, code, reason);
}

/** The stop in progress, if any: `start` waits for it. */
let stopping: Promise<void> | undefined;

/**
 * Stops the server: stops accepting connections on every address, closes every connection with
 * code 1001, waits until every `handleClose` has been delivered, then ends the worker threads that
 * `start` spawned and releases the main thread if it was registered. The process then exits by
 * itself if nothing else keeps it alive. `start` works again afterwards; after `stop`, the other
 * functions are no-ops on the old connections.
 *
 * @returns A Promise that resolves once everything is stopped.
 */
export function stop(): Promise<void> {
  stopping ??= (async () => {
    try {
      await new Promise<void>((resolve) => native.stop(resolve));
      await retireAll([...liveSlots]);
      if (mainThreadRegistered) {
        native.unregisterWorker();
        mainThreadRegistered = false;
        handlers = undefined;
      }
    } finally {
      stopping = undefined;
    }
  })();
  return stopping;
}

/** Live figures of the broker, as `stats()` returns them. */
export interface Stats {
  /** Connections accepted and not yet ended. */
  connections: number;
  /** Connections accepted since the process started. */
  accepted: number;
  /** Channels with at least one subscriber. */
  channels: number;
  /** Messages received from clients, and their payload bytes. */
  messagesIn: number;
  bytesIn: number;
  /** Messages queued to clients (a broadcast counts once per recipient). */
  messagesOut: number;
  /** Bytes written to sockets (frames and handshake responses). */
  bytesOut: number;
  /** Bytes queued for sockets and not yet written (32 more per message, as `maxBackpressure` counts them). */
  queuedBytes: number;
  /** Connections ended, by close code (the code `handleClose` got). */
  closed: Record<string, number>;
  /** Each worker's queue: events handed to it and not yet handled, and events waiting for it (id -1: no worker alive). */
  workers: Array<{ id: number; inFlight: number; waiting: number; waitingBytes: number }>;
  /** The Go runtime's memory (the part of the process's RSS that is Go's): heap in use, goroutine stacks, all it holds from the system (heap, stacks, free spans, metadata), and its goroutines. */
  go: { heapBytes: number; stackBytes: number; mappedBytes: number; goroutines: number };
}

/**
 * Returns live figures: connections, channels, messages and bytes in and out, bytes waiting to be
 * written, connections closed per close code, each worker's event queue, and the Go runtime's memory. It walks every
 * connection, so call it now and then (say once a second), not per message.
 *
 * @returns The figures at the time of the call.
 */
export function stats(): Stats {
  return JSON.parse(native.stats()) as Stats;
}

// ---------------------------------------------------------------------------------------------
// Argument checks.

function describe(value: unknown): string {
  switch (typeof value) {
    case 'undefined':
      return 'undefined';
    case 'string':
      return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
    case 'number':
    case 'bigint':
    case 'boolean':
      return `${typeof value} ${String(value)}`;
    case 'function':
      return 'a function';
    case 'symbol':
      return 'a symbol';
    default: {
      if (value === null) return 'null';
      const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
      if (typeof name !== 'string' || name === '' || name === 'Object') return 'an object';
      return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`;
    }
  }
}

function checkSocketId(socketId: unknown, fn: string, what = 'socketId'): void {
  if (typeof socketId !== 'number' || !Number.isSafeInteger(socketId) || socketId < 1) {
    throw new TypeError(`${fn}: ${what} must be an integer from 1 to 2^53-1, got ${describe(socketId)}`);
  }
}

/** Bytes in a form the addon takes: a string as it is, a SharedArrayBuffer viewed through a Uint8Array. */
function toBytes(value: unknown, fn: string, what: string): NativeBytes {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null) {
    if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return value;
    if (value instanceof SharedArrayBuffer) return new Uint8Array(value);
    // Buffers of another realm (vm contexts) fail instanceof.
    if (util.types.isArrayBuffer(value)) return value;
    if (util.types.isSharedArrayBuffer(value)) return new Uint8Array(value);
  }
  throw new TypeError(
    `${fn}: ${what} must be a string, an ArrayBuffer, a SharedArrayBuffer or an ArrayBufferView (Buffer, typed array, DataView), got ${describe(value)}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Event delivery on this thread.

const HANDLER_BITS: Record<(typeof HANDLER_NAMES)[number], number> = {
  handleOpen: HandlerBit.Open,
  handleTextMessage: HandlerBit.Text,
  handleBinaryMessage: HandlerBit.Binary,
  handleClose: HandlerBit.Close,
};

/** The handlers registered on this thread. */
let handlers: WorkerInterface | undefined;
/** Where the event being handled ends in the current batch; the addon reads it (see batch.cts). */
const progress = new Int32Array(1);
/** Whether registerWorkerThread succeeded on the main thread (only meaningful there). */
let mainThreadRegistered = false;

function errorText(err: unknown): string {
  if (err instanceof Error && typeof err.stack === 'string') return err.stack;
  return util.inspect(err);
}

/**
 * Writes a line through the broker's logger, in the Go side's format, with the socket, the broker's
 * worker id and the Node threadId it concerns (0: none). By default the line is about this thread.
 */
function log(level: LogLevel, message: string, socketId = 0, nodeThread = threadId, worker = thread.workerId): void {
  try {
    native.log(level, message, socketId, worker, nodeThread);
  } catch {
    // Nothing better to do: logging must never take the server down.
  }
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

type EventHandler = 'handleTextMessage' | 'handleBinaryMessage' | 'handleClose';

/** What `deliver` calls: a handler, or the answer to a catch-up event, which waits behind them. */
type Delivered = EventHandler | 'caughtUp';

/** How this thread delivers events (registerWorkerThread's options). */
let delivery: Required<DeliveryOptions> = { ordered: false, handlerTimeout: 30_000 };

/** Ordered mode: the sockets whose handler promise has not settled, with the events waiting for it. */
const waiting = new Map<number, Array<[Delivered, () => unknown]>>();

/** Calls a handler now, or, in ordered mode, once the socket's previous handler has settled. */
function deliver(socketId: number, name: Delivered, call: () => unknown): void {
  const queue = waiting.get(socketId);
  if (queue !== undefined) queue.push([name, call]);
  else run(socketId, name, call);
}

function run(socketId: number, name: Delivered, call: () => unknown): void {
  let result: unknown;
  try {
    result = call();
  } catch (err) {
    failed(socketId, name, err);
    return;
  }
  if (!isThenable(result)) return;
  if (!delivery.ordered) {
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
function failed(socketId: number, name: Delivered, err: unknown): void {
  logHandlerError(name, socketId, err);
  if (!delivery.ordered || name === 'handleClose') return;
  followUp('close', socketId, () => native.close(socketId, 1011, `${name} failed`));
}

const sink: BatchSink = {
  open(socketId, _token, ip, url, headers) {
    const fn = handlers?.handleOpen;
    if (fn === undefined) {
      acceptOpen(socketId, true);
      return;
    }
    let verdict: unknown;
    try {
      verdict = fn(socketId, ip, headers, url);
    } catch (err) {
      logHandlerError('handleOpen', socketId, err);
      acceptOpen(socketId, false);
      return;
    }
    if (isThenable(verdict)) {
      Promise.resolve(verdict).then(
        (value) => acceptOpen(socketId, value !== false),
        (err: unknown) => {
          logHandlerError('handleOpen', socketId, err);
          acceptOpen(socketId, false);
        },
      );
    } else {
      acceptOpen(socketId, verdict !== false);
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
    decodeBatch(Buffer.from(memory, 0, length), sink, progress);
  } catch (err) {
    log(LogLevel.Error, `wsbroker: dropped the rest of an event batch (worker thread ${threadId}): ${errorText(err)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Worker threads spawned by start() (main thread side).

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

/** Spawned workers that are running or being replaced: the pool that start() can count on. */
const liveSlots = new Set<WorkerSlot>();

/** Stops the given workers for good and waits until they are gone. */
async function retireAll(slots: WorkerSlot[]): Promise<void> {
  await Promise.all(slots.map((slot) => slot.retire()));
}

/**
 * One place in the pool: runs a Worker on the module and, once that worker has been ready, keeps
 * replacing it whenever it dies, until retired.
 */
class WorkerSlot {
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
    this.backoff = fast ? Math.min(this.backoff === 0 ? FIRST_BACKOFF_MS : this.backoff * 2, MAX_BACKOFF_MS) : 0;
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
