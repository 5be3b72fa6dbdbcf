// The interface of the compiled addon (build/Release/wsbroker.node), as the C glue in napi/
// defines it. Only js/ talks to it; the public API (api.cts, options.cts) validates every argument first,
// the glue checks types again so that no call can crash the process.
import type { ParcelTaker } from './batch.cjs';
import type { LogLevel } from './protocol.gen.cjs';

/** Bytes as the glue accepts them: a string is sent as its UTF-8. */
export type NativeBytes = string | ArrayBufferView | ArrayBuffer;

export interface Native {
  /**
   * Registers the calling thread as a worker. `dispatch` is called on this thread with batches of
   * events (format: internal/protocol/protocol.go), each the first `length` bytes of `memory`, which the
   * addon reuses once dispatch returns; it keeps `progress[0]` at the end offset of the
   * event being handled, which the addon reads if the thread is terminated mid-batch. Calling it
   * again on the same thread replaces the dispatch function, mask and progress array.
   * `runtimeIsBun` says whether this is Bun, for Go to decide whether the thread's event loop
   * watches the Go pollers (cmd/libwsbroker/schedule.go). Returns the worker id.
   */
  registerWorker(
    dispatch: (memory: ArrayBuffer, length: number) => void,
    handlerMask: number,
    progress: Int32Array,
    runtimeIsBun: boolean,
  ): number;
  /**
   * Removes the calling thread from the pool: its pending events go to the other workers and the
   * addon no longer keeps the thread alive. A no-op on a thread that is not registered.
   */
  unregisterWorker(): void;
  /**
   * Starts the listeners of one `start` call, and its metrics server, from `config` (JSON: `bind`
   * as an array, the limits, `protocols`, `compression`, `tls` as PEM text, `metrics`, `attach`; see
   * listenConfig in cmd/libwsbroker/exports.go): all or none. Returns JSON (listenResult there):
   * `server`, the id that `closeServer` and (when `attach` names a server) `adopt` take;
   * `addresses`, those listened on. Throws an
   * Error naming the address and the reason, or the TLS problem.
   */
  listen(config: string): string;
  /**
   * Hands a TCP connection that a Node server accepted over to the Attachment of `server` (the id
   * `listen` returned): Go takes a duplicate of the socket `fd`, reads `pre` (the bytes
   * already read from it) before the socket, and answers the upgrade. The caller then closes its
   * socket. Throws an Error when the socket cannot be taken (not TCP) or the Attachment is gone.
   */
  adopt(server: number, fd: number, pre: Uint8Array): void;
  /**
   * Closes a socket with a close frame (code `CloseCode.Normal`, `CloseCode.HandlerFailed` or from
   * `CloseCode.AppMin` to `CloseCode.AppMax`, reason at most `MAX_CLOSE_REASON` bytes of UTF-8,
   * else a TypeError). Returns false if the socket was unknown or already closing.
   */
  close(socketId: number, code: number, reason: string): boolean;
  /**
   * Stops every listener, closes every socket with 1001, and calls `done` on this thread once every
   * worker has handled every event (handleClose included).
   */
  stop(done: () => void): void;
  /**
   * Stops the listeners, the Attachment and the metrics server of the `start` call whose `listen`
   * returned `server`, lets its connections go on for `graceMs`, closes those still open with 1001,
   * and calls `done` on this thread once their close events have been handled; at once if they
   * are closed already.
   */
  closeServer(server: number, graceMs: number, done: () => void): void;
  /**
   * Joins the cluster that `config` describes (JSON: `redis`, `prefix`, `publishBuffer`; see
   * clusterConfig in cmd/libwsbroker/cluster.go); a no-op if the process is in one. `done(1)` once
   * Redis is connected, `done(0)` if it is not within 5 s (the node keeps trying). Throws an Error
   * for a URL the engine cannot use.
   */
  clusterJoin(config: string, done: (connected: number) => void): void;
  /** Calls `done` with the subscribers of `channel` on every node (this one's without a cluster). */
  clusterSubscriberCount(channel: NativeBytes, done: (count: number) => void): void;
  /**
   * Answers a catch-up event: every event of the socket before it has been handled on this thread,
   * so the close frame that waited for their sends goes out after them.
   */
  caughtUp(socketId: number): void;
  /**
   * Takes the data of a message that came outside its batch (a parcel, js/batch.cts), once: the
   * text as a string, the binary data as a Buffer of its own. Throws a RangeError for an id that
   * names no parcel (taken already).
   */
  takeParcel: ParcelTaker;
  /** The verdict for a socket whose open event was delivered: true accepts, false answers 403. */
  acceptOpen(socketId: number, accept: boolean): void;
  /** Refuses a socket whose open event was delivered: `refusal` is the JSON of `{ status, headers: [name, value][] }`; an invalid one is logged and answered with 500. */
  refuseOpen(socketId: number, refusal: string, body: NativeBytes): void;
  /** A string is sent as a text frame, bytes as a binary frame. False: the socket's queue is over its `backpressureThreshold`. */
  send(socketId: number, data: NativeBytes): boolean;
  /** The bytes queued for a socket, as `maxBackpressure` counts them (0 for an unknown one). */
  bufferedAmount(socketId: number): number;
  /** Broadcasts to every subscriber of `channel` but `exceptSocketId` (when given). */
  sendToChannel(channel: NativeBytes, data: NativeBytes, exceptSocketId?: number): void;
  subscriberCount(channel: NativeBytes): number;
  /** The channels a socket is subscribed to, each as a Buffer (none for an unknown socket). */
  subscriptions(socketId: number): Buffer[];
  subscribe(socketId: number, channel: NativeBytes): boolean;
  unsubscribe(socketId: number, channel: NativeBytes): boolean;
  setToken(socketId: number, token: NativeBytes): void;
  copySubscriptions(fromChannel: NativeBytes, toChannel: NativeBytes): void;
  /** The broker's figures and the workers' queues, as JSON (see `Stats` in types.cts). */
  stats(): string;
  /**
   * Writes one line through the broker's logger (zerolog on stderr, level from WSBROKER_LOG), with
   * the socket id, the broker's worker id and the Node threadId it concerns (0 where none applies).
   */
  log(level: LogLevel, message: string, socketId: number, worker: number, threadId: number): void;
}
