// Loading a worker module: the part of start() shared by the main thread (threads: 0) and the
// worker entry (worker.cts).
import { pathToFileURL } from 'node:url';
import type { WorkerInterface } from './types.cjs';

/** The handlers a worker module may export: a record, so that the compiler holds it to WorkerInterface. */
export const HANDLERS: Record<keyof WorkerInterface, true> = { handleOpen: true, handleTextMessage: true, handleBinaryMessage: true, handleClose: true, handleDrain: true };

/** The handler names a worker module may export, in HANDLERS' order. */
export const HANDLER_NAMES = Object.keys(HANDLERS) as ReadonlyArray<keyof WorkerInterface>;

/**
 * Marks the object `defineWorker` returns. A global symbol, so that a worker module importing another
 * copy of the package is understood too.
 */
export const WORKER_DEFINITION = Symbol.for('wsbroker.workerDefinition');

/**
 * On a handler that `defineWorker` returns: the handler it was given, which the delivery calls with
 * the token decoded from JSON (a global symbol, as `WORKER_DEFINITION`).
 */
export const JSON_TOKEN_HANDLER = Symbol.for('wsbroker.jsonTokenHandler');

/** Whether `value` is what `defineWorker` returns. */
function isWorkerDefinition(value: unknown): boolean {
  return value !== null && typeof value === 'object' && (value as Record<symbol, unknown>)[WORKER_DEFINITION] === true;
}

/** What `defineWorker` made, as a module's default export: `def` itself, or TypeScript's `exports.default` in it. */
function definitionIn(def: Record<string, unknown>): object | undefined {
  if (isWorkerDefinition(def)) return def;
  return def.__esModule === true && isWorkerDefinition(def.default) ? (def.default as object) : undefined;
}

/**
 * Takes the handlers from a module namespace, from one place: a default export made by
 * `defineWorker`, or else the handlers exported by name. A module that does both is refused, even
 * when they are the same functions, rather than one of them being ignored. For a CommonJS
 * module, `import()` gives `module.exports` as `default` and only the names its static analysis
 * found as named exports, so every name missing from the namespace is looked up on `default` too;
 * its `exports.default` (TypeScript's `export default`) is the default export.
 */
export function handlersOf(ns: Record<string, unknown>): WorkerInterface {
  const def = ns.default as Record<string, unknown> | null | undefined;
  const fromDefault = def !== null && (typeof def === 'object' || typeof def === 'function');
  const definition = fromDefault ? definitionIn(def) : undefined;
  const byName = (name: (typeof HANDLER_NAMES)[number]): unknown => {
    const value = ns[name];
    return value === undefined && fromDefault && def !== definition ? def[name] : value;
  };
  if (definition !== undefined) {
    const named = HANDLER_NAMES.filter((name) => byName(name) !== undefined);
    if (named.length > 0) {
      throw new Error(
        `it exports ${named.join(', ')} by name and a default export made by defineWorker: export the handlers one way, either \`export default defineWorker({ … })\` or each handler by name`,
      );
    }
    return definition as WorkerInterface;
  }
  const out: Record<string, unknown> = {};
  for (const name of HANDLER_NAMES) {
    const value = byName(name);
    if (value !== undefined) out[name] = value;
  }
  return out as WorkerInterface;
}

/** Imports the module at the absolute path `absPath` (ESM or CommonJS) and returns its handlers. */
export async function importWorkerModule(absPath: string): Promise<WorkerInterface> {
  const ns = (await import(pathToFileURL(absPath).href)) as Record<string, unknown>;
  return handlersOf(ns);
}

/** The message of a worker module that could not be loaded; `cause` is what went wrong. */
export function loadError(absPath: string, cause: unknown): Error {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new Error(`Cannot load worker module ${absPath}: ${reason}`, { cause });
}
