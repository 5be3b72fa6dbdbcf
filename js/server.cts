// start() and stop(): the server's listeners, and the worker threads of its pool.
import * as os from 'node:os';
import * as path from 'node:path';
import { native } from './addon.cjs';
import { attachServer, detachAll, isAttached } from './attach.cjs';
import { isMainThreadRegistered, registerWorkerThread, unregisterMainThread } from './delivery.cjs';
import { importWorkerModule, loadError } from './module.cjs';
import { closeGraceOf, startConfigOf } from './options.cjs';
import { hasLiveWorkers, launchWorkers, retireAll, retireLiveWorkers, type WorkerSlot } from './supervisor.cjs';
import type { CloseOptions, Server, StartOptions, WorkerInterface } from './types.cjs';

/** The stop in progress, if any: `start` waits for it. */
let stopping: Promise<void> | undefined;
/** The cluster this process is in (its configuration, as the addon takes it), until `stop`. */
let joinedCluster: string | undefined;
/** Whether a `start` has listened since the last `stop`. */
let listening = false;

/**
 * Joins the cluster `config` describes; resolves once its engine is connected, or after 5 s without
 * it (the node keeps trying). Throws at once when the addon refuses `config`: outside a promise, so
 * that `start` forgets the cluster before it launches workers.
 */
function joinCluster(config: string): Promise<void> {
  let joined!: () => void;
  const connected = new Promise<void>((resolve) => {
    joined = resolve;
  });
  native.clusterJoin(config, () => joined());
  return connected;
}

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
 * - `bind`: required unless `server` is given. The address to listen on, `host:port` as Go's
 *   `net.Listen` takes it (`127.0.0.1:8080`, `0.0.0.0:8080`, `[::1]:8080`, `localhost:8080`; port
 *   `0` picks a free port, which `addresses` gives), or an array of such addresses (all listen,
 *   with the same options, or none does).
 * - `server`, `path`: optional. A Node `http.Server` (Express's `app.listen()`, Fastify's
 *   `fastify.server`) whose WebSocket upgrades to `path` (default: every path) this call takes,
 *   with its limits, beside its `bind` listeners if any: the connection leaves Node (its socket
 *   and the bytes Node read) and Go answers and serves it as on its own listeners. Other requests
 *   stay the app's; an upgrade to another path is left to the server's other `'upgrade'`
 *   listeners, or answered with 404 when it has none. Node's own limits on the request head
 *   (`maxHeaderSize`, 16 KiB) apply first. Node only (the socket's file descriptor moves; see `server`).
 * - `workerPath`: optional. The worker module, absolute or relative to `process.cwd()`; an ES module
 *   or a CommonJS module exporting any of the `WorkerInterface` handlers (for CommonJS, on
 *   `module.exports`). It is imported in every worker thread and the handlers it exports are
 *   registered there.
 * - `threads`: optional. How many worker threads to spawn for `workerPath`, default
 *   `Math.max(os.cpus().length, 4)`. With `0`, the module is imported and registered on the main
 *   thread and no worker thread is spawned (its handlers stay registered even if `start` then
 *   fails to listen).
 * - the limits of this listener, each optional (see `StartOptions`): `maxPayload` (16 MiB),
 *   `idleTimeout` (30000 ms, `0` disables), `handshakeTimeout` (10000 ms), `maxHeaderBytes`
 *   (16 KiB), `maxConnections` (`0`: no limit), `maxBackpressure` (16 MiB),
 *   `backpressureThreshold` (1 MiB), `maxMessagesPerSecond` and `maxConnectionsPerIp` (`0`: no
 *   limit), `openTimeout` (10000 ms); and `protocols`, the subprotocols this listener speaks.
 * - `compression`: optional. `true` negotiates permessage-deflate with clients that offer it;
 *   `{ serverContextTakeover: true }` also keeps the server's context between messages.
 * - `tls`: optional. `{ cert, key }` serves `wss://` on these addresses.
 * - `metrics`: optional. An address where `stats()` is served in Prometheus text format.
 * - `trustProxy`: optional. The addresses or CIDRs of the reverse proxies in front of this
 *   listener: `handleOpen`'s `ip` for their connections is the client they name in
 *   `X-Forwarded-For` (or `Forwarded`), see `StartOptions.trustProxy` and "Behind nginx".
 * - `cluster`: optional. `{ redis: 'redis://host:6379', prefix, publishBuffer }` (or `{ nats:
 *   'nats://host:4222', … }`) makes this process one node of a cluster that shares channels and
 *   sockets through Redis or NATS (see `ClusterOptions` and "Running several nodes"). The first
 *   `start` that gives it joins, and waits up to 5 s for the engine: if it is unreachable it goes
 *   on, logs one error line, and the node keeps trying in the background (local delivery works
 *   meanwhile).
 * @returns A Promise that resolves once the workers of this call are ready and the address is
 * listening, to a `Server`: `addresses`, those listened on (with port `0` in `bind`, the port the
 * system chose), and `close()`, which closes this call's listeners, `server` attachment, `metrics`
 * server and connections (with an optional grace period) while the rest runs on until `stop()`.
 * Listening is all or none: if one address (or the `metrics` address) cannot be listened on,
 * nothing of this call stays bound.
 * @throws {TypeError} (a rejection) when `options` is not an object, or has a key that is not one
 * of `StartOptions` (the message names it and the nearest valid one; so do `tls` and `compression`
 * objects with a key of their own), `bind` is not a string or a non-empty array of strings (or is
 * missing without `server`), `server` is not an `http.Server` or is an `https.Server` (or any TLS
 * server: use `tls` with `bind`, or a TLS-terminating proxy), `path` is not a string starting with
 * `/` without `?` or `#` (or is given without `server`), an earlier `start` takes the same
 * server's upgrades to the same path, `tls` is given without `bind`,
 * `threads` is present but not a non-negative integer, `workerPath` is present but not a string,
 * a limit is not an integer in its range, `trustProxy` is not a string or an array of strings
 * each an IPv4 or IPv6 address, a CIDR or a named set (the message names the entry), `compression` is neither a boolean nor
 * `{ serverContextTakeover: boolean }`, `tls` is not an
 * object whose `cert` and `key` are strings or Buffers, or `cluster` is not an object with exactly
 * one of `redis`, a `redis:`, `rediss:` or `unix:` URL (with a host, or a socket path), and `nats`,
 * one or more `nats:` or `tls:` URLs with a host separated by commas, `prefix` a
 * string of 1 to 64 bytes without `:` or white space and `publishBuffer` an integer from 65536 to
 * 2^30; also when `cluster` differs from the cluster this process is in, or is given while servers
 * started without it run.
 * @throws {Error} (a rejection) when the worker module cannot be imported (the message names its
 * path, `cause` is the original error; the workers of this call are stopped and nothing listens);
 * when no `workerPath` is given and no worker is registered (`At least one worker must be
 * registered before starting the server`); when the address cannot be listened on (the message
 * names the address and the reason, e.g. the port is in use; the workers of this call are stopped);
 * when a `tls` file cannot be read (the message names the option and the path) or the certificate
 * and key are not valid PEM or do not match (the message says which); when the `cluster.redis`
 * or `cluster.nats` URL cannot be used (the message says why, without its password or token).
 */
export async function start(options: StartOptions): Promise<Server> {
  const { listenConfig, workerPath, threads, delivery, cluster, attach } = await startConfigOf(options);
  await stopping;
  const clusterConfig = cluster && JSON.stringify(cluster);
  let joining: Promise<void> | undefined;
  if (clusterConfig !== undefined && clusterConfig !== joinedCluster) {
    if (joinedCluster !== undefined) {
      throw new TypeError('start: options.cluster differs from the cluster this process is in; a process is in one cluster at a time (stop() leaves it)');
    }
    if (listening) {
      throw new TypeError('start: options.cluster must be given to the first start: servers started without it are running (stop() them first)');
    }
    joinedCluster = clusterConfig;
    try {
      joining = joinCluster(clusterConfig);
    } catch (err) {
      joinedCluster = undefined;
      throw err;
    }
  }

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
        registerWorkerThread(exported, delivery);
      } catch (err) {
        throw loadError(absPath, err);
      }
    } else {
      try {
        spawned = await launchWorkers(absPath, count, delivery);
      } catch (err) {
        throw loadError(absPath, err);
      }
    }
  } else if (!isMainThreadRegistered() && !hasLiveWorkers()) {
    throw new Error('At least one worker must be registered before starting the server');
  }

  await joining;
  // Checked here, with nothing awaited before attachServer takes the path: two start calls at once
  // would both pass a check made before their awaits.
  if (attach !== undefined && isAttached(attach.server, attach.path)) {
    await retireAll(spawned);
    throw new TypeError(`start: options.server's upgrades to ${attach.path === undefined ? 'every path' : `'${attach.path}'`} are already taken by an earlier start (stop() it first)`);
  }
  let bound: ListenResult;
  try {
    bound = JSON.parse(native.listen(JSON.stringify(listenConfig))) as ListenResult;
  } catch (err) {
    await retireAll(spawned);
    throw err;
  }
  const detach = attach ? attachServer(attach.server, attach.path, bound.server) : () => {};
  listening = true;
  return serverOf(bound, detach);
}

/** What the addon's `listen` returns (listenResult in cmd/libwsbroker/exports.go). */
interface ListenResult {
  server: number;
  addresses: Array<{ host: string; port: number }>;
}

/**
 * The `Server` of one `start` call; its `close` is made once, with the first call's grace, after
 * `detach` has taken its attached server's upgrades back.
 */
function serverOf({ server, addresses }: ListenResult, detach: () => void): Server {
  let closing: Promise<void> | undefined;
  const frozen = Object.freeze(addresses.map((address) => Object.freeze(address)));
  return Object.freeze({
    addresses: frozen,
    close(options?: CloseOptions): Promise<void> {
      let grace: number;
      try {
        grace = closeGraceOf(options);
      } catch (err) {
        return Promise.reject(err);
      }
      closing ??= (async () => {
        detach();
        await new Promise<void>((resolve) => native.closeServer(server, grace, () => resolve()));
        await stopping; // a stop under way closes these connections too: its handlers have run after it
      })();
      return closing;
    },
  });
}

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
      detachAll();
      await new Promise<void>((resolve) => native.stop(resolve));
      await retireLiveWorkers();
      unregisterMainThread();
    } finally {
      stopping = undefined;
      joinedCluster = undefined;
      listening = false;
    }
  })();
  return stopping;
}
