// defineWorker: a worker's handlers whose token is a JSON value of a type of the application's, and
// the marks that make the delivery decode it for them (and only for them) wherever they end up: a
// module's default export, its named exports, or registerWorkerThread's argument.
import { HANDLER_NAMES, JSON_TOKEN_HANDLER, WORKER_DEFINITION } from './module.cjs';
import { checkDefinition } from './options.cjs';
import type { WorkerInterface } from './types.cjs';

/**
 * The handlers `defineWorker<T>` takes: those of `WorkerInterface`, except that `token` is the
 * connection's token decoded from JSON, typed as `T` (`undefined` when none is set). Which token an
 * event carries is the one set when the event was queued (see `setToken`).
 */
export interface TypedWorkerInterface<T> {
  /** As `WorkerInterface.handleOpen` (it takes no token). */
  handleOpen?: WorkerInterface['handleOpen'];
  /** As `WorkerInterface.handleTextMessage`, with the token decoded from JSON. */
  handleTextMessage?: (data: string, socketId: number, token: T | undefined) => void | Promise<void>;
  /** As `WorkerInterface.handleBinaryMessage`, with the token decoded from JSON. */
  handleBinaryMessage?: (data: Buffer, socketId: number, token: T | undefined) => void | Promise<void>;
  /** As `WorkerInterface.handleClose`, with the token decoded from JSON. */
  handleClose?: (socketId: number, token: T | undefined, code: number, reason: string) => void | Promise<void>;
  /** As `WorkerInterface.handleDrain`, with the token decoded from JSON. */
  handleDrain?: (socketId: number, token: T | undefined) => void | Promise<void>;
}

/**
 * What `defineWorker<T>` returns: its handlers, frozen, which `start` takes as a worker module's
 * default export and `registerWorkerThread` as its argument; each of them may also be exported by
 * name instead.
 */
export interface WorkerDefinition<T> extends TypedWorkerInterface<T> {
  /** Tells a definition from a plain object of handlers, whose tokens are `Buffer`s. */
  readonly [WORKER_DEFINITION]: true;
}

/**
 * Defines a worker's handlers with a typed token: each handler that takes a token gets it decoded
 * from JSON (once per event, on the worker thread), as `T`; `undefined` when the connection has
 * none. Store the token with `setToken(socketId, value)`, a plain object or an array (stored as its
 * JSON). A token that is not JSON (a string or bytes given to `setToken` that do not parse) gives
 * `undefined`, and an error is logged naming the socket and the handler (not the token, which may
 * be a secret), once per event. Handlers not defined through `defineWorker` get tokens as
 * `Buffer`s.
 *
 * A worker module uses it as its default export (`export default defineWorker<User>({ … })`), or
 * exports the handlers it returns by name (`export const { handleTextMessage, handleClose } =
 * defineWorker<User>({ … })`), not both: a module with a default export made by `defineWorker` and
 * a handler exported by name fails to load (`start` rejects, naming the module and the handlers).
 * `registerWorkerThread(defineWorker({ … }))` registers it on a thread of your own.
 *
 * @param handlers - An object with any of the handlers, as for `WorkerInterface`, and nothing else.
 * @returns The handlers, frozen: calling one directly (in a unit test) passes the token as given.
 * @throws {TypeError} when `handlers` is not an object, one of its handlers is present but not a
 * function, or it has a key that is not a handler's name (the message names it and the nearest one).
 */
export function defineWorker<T = unknown>(handlers: TypedWorkerInterface<T>): WorkerDefinition<T> {
  checkDefinition(handlers);
  const definition: Record<string | symbol, unknown> = {};
  for (const name of HANDLER_NAMES) {
    const handler = handlers[name];
    if (handler === undefined) continue;
    definition[name] = name === 'handleOpen' ? handler : withJsonToken(handler as (...args: never[]) => unknown);
  }
  Object.defineProperty(definition, WORKER_DEFINITION, { value: true });
  return Object.freeze(definition) as unknown as WorkerDefinition<T>;
}

/** A handler that calls `handler`, marked so that the delivery calls `handler` with JSON tokens. */
function withJsonToken(handler: (...args: never[]) => unknown): (...args: never[]) => unknown {
  const target = jsonTokenHandler(handler) ?? handler;
  const marked = (...args: never[]): unknown => target(...args);
  Object.defineProperty(marked, 'name', { value: target.name });
  Object.defineProperty(marked, JSON_TOKEN_HANDLER, { value: target });
  return marked;
}

/** The handler that `fn` (made by `defineWorker`) calls with the token decoded from JSON; `undefined` for any other function. */
export function jsonTokenHandler(fn: unknown): ((...args: never[]) => unknown) | undefined {
  const target = typeof fn === 'function' ? (fn as unknown as Record<symbol, unknown>)[JSON_TOKEN_HANDLER] : undefined;
  return typeof target === 'function' ? (target as (...args: never[]) => unknown) : undefined;
}
