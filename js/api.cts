// The calls of the public API that act on connections and channels, and stats(): each checks its
// arguments and makes one call to the addon.
import * as util from 'node:util';
import { native } from './addon.cjs';
import type { NativeBytes } from './native.cjs';
import { describe } from './options.cjs';
import { jsonToken, type JsonToken } from './token.cjs';
import { CloseCode, MAX_CLOSE_REASON } from './protocol.gen.cjs';
import type { Stats } from './types.cjs';

/**
 * Sends a message to one connection: a string as a text frame, bytes as a binary frame. An unknown
 * or closed socket id is a silent no-op. The message is queued on the socket and written without
 * blocking this thread. What handlers send while handling one batch of events is written once the
 * batch is handled, one write per connection (while more events wait for this thread, with the
 * next batch's sends, within a millisecond); a send made outside a handler (from a timer, or after
 * an `await`) is written at once.
 *
 * The result is flow control, as a Node stream's `write()` gives it: `false` says that the
 * message was queued but left the connection's queue over `backpressureThreshold` (the client reads
 * slower than it is sent to); stop sending to it until `handleDrain` is called for it. Sending on
 * regardless is allowed, up to `maxBackpressure`, where the connection is closed with code 1008.
 *
 * @param socketId - The connection's socket id, as the handlers receive it.
 * @param data - The message: a string (sent as UTF-8 text) or bytes (`Buffer`, any typed array or
 * `DataView`, honouring its offset and length, `ArrayBuffer`, `SharedArrayBuffer`).
 * @returns `false` when the connection's queue is over `backpressureThreshold` after this message;
 * `true` otherwise, and for an unknown, closed or closing socket, a socket of another cluster node
 * (nothing to wait for there), and a connection not accepted yet (during `handleOpen` nothing is
 * written, so its queue says nothing of the client, and `handleOpen: (id) => send(id, hello)`
 * still accepts).
 * @throws {TypeError} when `socketId` is not an integer from 1 to 2^53-1, or `data` is none of the
 * types above.
 */
export function send(socketId: number, data: string | ArrayBuffer | SharedArrayBuffer | ArrayBufferView): boolean {
  checkSocketId(socketId, 'send');
  return native.send(socketId, toBytes(data, 'send', 'data'));
}

/**
 * Counts the bytes queued for a connection and not yet written to it, as `maxBackpressure` and
 * `backpressureThreshold` count them: the frames (headers included, compressed if they are) and
 * 32 bytes more per queued frame (messages of 512 bytes to 1 MiB queued back to back share one).
 *
 * @param socketId - The connection's socket id.
 * @returns The bytes queued; 0 for an unknown or closed socket and a socket of another cluster
 * node.
 * @throws {TypeError} when `socketId` is not an integer from 1 to 2^53-1.
 */
export function bufferedAmount(socketId: number): number {
  checkSocketId(socketId, 'bufferedAmount');
  return native.bufferedAmount(socketId);
}

/**
 * Sends a message to every connection subscribed to a channel, once each: a string as a text
 * frame, bytes as a binary frame. A channel without subscribers is a silent no-op. Queued and
 * written as `send` does, in order with what `send` queues for the same connections. It says
 * nothing of backpressure (one answer for thousands of subscribers would cost every broadcast a
 * walk of their queues); a subscriber that this takes over `backpressureThreshold` still gets its
 * `handleDrain`, and `bufferedAmount` tells of one connection.
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
 * the previous one. It is passed with every event of that connection queued after this call,
 * `handleClose` included: as a `Buffer`, or, to the handlers made by `defineWorker`, decoded from
 * JSON. A string or bytes are stored as they are; a plain object or an array as its JSON
 * (`JSON.stringify`), checked so that it decodes to a value equal to the one given.
 *
 * Which events see it: an event carries the token as it was when the event was queued, that is
 * when the broker read the message from the client (for `handleClose`, when the connection ended).
 * - Set in `handleOpen` (before it returns or its promise settles): every event of the connection,
 *   since no message is read before the upgrade is answered.
 * - Set while handling a message: the messages the broker reads after the call. Those the client
 *   sent right behind it, without waiting for an answer, may have been read already and carry the
 *   previous token: keep what must be seen at once in the worker too (a socket's events all reach
 *   the same worker, in order). `handleClose` sees it when the client closed with a close frame or
 *   the server closed the connection (the close waits until the handlers of earlier messages have
 *   returned, in ordered mode settled), not always when the connection dropped without one.
 * - Set anywhere else (a timer, another socket's handler, another node): the events queued after.
 *
 * An unknown or closed socket id is a silent no-op; another node's socket gets the token through
 * the cluster. The token has no size limit of its own, but it is copied into every event of its
 * connection (and counts towards the 8 MiB of events that may wait for a worker): keep it small. A
 * token for another node's socket larger than the engine takes (NATS's `max_payload`) is dropped
 * and counted in `stats().cluster.dropped.tooLarge`.
 *
 * @param socketId - The connection's socket id.
 * @param token - The token: a string (stored as its UTF-8) or bytes; or a plain object or an array,
 * stored as its JSON. In an object, a property whose value is `undefined` is left out (it reads
 * back as `undefined`); anything else that JSON would change or lose is refused: a function, a
 * symbol, a BigInt, `NaN` or an infinite number, `undefined` in an array, an object that is not
 * plain (a `Date`, a `Map`, a `Buffer`, a class instance: store a string or a number instead), an
 * object with a `toJSON` method, a cycle. In TypeScript, a function, a `Date`, a `RegExp`, a `Map`,
 * a `Set`, a `WeakMap`, a `WeakSet` or a `Promise` as the token is a type error (`JsonToken<T>`).
 * @throws {TypeError} when `socketId` is not an integer from 1 to 2^53-1, or `token` is none of the
 * types above or holds something JSON would change or lose (the message says where and what).
 */
export function setToken(socketId: number, token: string | ArrayBuffer | SharedArrayBuffer | ArrayBufferView): void;
export function setToken<T extends object>(socketId: number, token: JsonToken<T>): void;
export function setToken(socketId: number, token: unknown): void {
  checkSocketId(socketId, 'setToken');
  native.setToken(socketId, asBytes(token) ?? jsonToken(token));
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
  if (typeof code !== 'number' || !Number.isInteger(code) || !(code === CloseCode.Normal || (code >= CloseCode.AppMin && code <= CloseCode.AppMax))) {
    throw new TypeError(`close: code must be ${CloseCode.Normal} or an integer from ${CloseCode.AppMin} to ${CloseCode.AppMax}, got ${describe(code)}`);
  }
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > MAX_CLOSE_REASON) {
    throw new TypeError(`close: reason must be a string of at most ${MAX_CLOSE_REASON} bytes of UTF-8, got ${describe(reason)}`);
  }
  return native.close(socketId, code, reason);
}

/**
 * Counts the connections subscribed to a channel on every node of the cluster: this node's, and
 * the answers of the nodes that have subscribers to it (only those receive the question). Without
 * `cluster` it is `subscriberCount`. A node's count is exact up to the subscriptions in flight;
 * answers that have not come within 1 s (a node just gone, Redis unreachable) are left out.
 *
 * @param channelName - The channel: a string or bytes, as for `sendToChannel`.
 * @returns A Promise of the count, which resolves within about a second.
 * @throws {TypeError} (synchronously) when `channelName` is not a string, `ArrayBuffer`,
 * `SharedArrayBuffer` or `ArrayBufferView`.
 */
export function clusterSubscriberCount(channelName: string | ArrayBuffer | SharedArrayBuffer | ArrayBufferView): Promise<number> {
  const channel = toBytes(channelName, 'clusterSubscriberCount', 'channelName');
  return new Promise((resolve) => native.clusterSubscriberCount(channel, resolve));
}

/**
 * Returns live figures: connections, channels, messages and bytes in and out, bytes waiting to be
 * written, connections closed per close code, what the flood limits refused, each worker's event queue, and the Go runtime's memory. It walks every
 * connection, so call it now and then (say once a second), not per message. With `cluster`,
 * `cluster` holds this node's figures: Redis's state, the live nodes, the channels subscribed,
 * messages published, received and dropped, and the lag.
 *
 * @returns The figures at the time of the call.
 */
export function stats(): Stats {
  return JSON.parse(native.stats()) as Stats;
}

/** Checks a socket id argument: an integer from 1 to 2^53-1. */
function checkSocketId(socketId: unknown, fn: string, what = 'socketId'): void {
  if (typeof socketId !== 'number' || !Number.isSafeInteger(socketId) || socketId < 1) {
    throw new TypeError(`${fn}: ${what} must be an integer from 1 to 2^53-1, got ${describe(socketId)}`);
  }
}

/** Bytes in a form the addon takes: a string as it is, a SharedArrayBuffer viewed through a Uint8Array; undefined for anything else. */
function asBytes(value: unknown): NativeBytes | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null) {
    if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return value;
    if (value instanceof SharedArrayBuffer) return new Uint8Array(value);
    // Buffers of another realm (vm contexts) fail instanceof.
    if (util.types.isArrayBuffer(value)) return value;
    if (util.types.isSharedArrayBuffer(value)) return new Uint8Array(value);
  }
  return undefined;
}

/** Bytes in a form the addon takes (see asBytes); a TypeError naming `fn` and `what` for anything else. */
function toBytes(value: unknown, fn: string, what: string): NativeBytes {
  const bytes = asBytes(value);
  if (bytes !== undefined) return bytes;
  throw new TypeError(
    `${fn}: ${what} must be a string, an ArrayBuffer, a SharedArrayBuffer or an ArrayBufferView (Buffer, typed array, DataView), got ${describe(value)}`,
  );
}
