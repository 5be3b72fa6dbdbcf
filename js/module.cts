// Loading a worker module: the part of start() shared by the main thread (threads: 0) and the
// worker entry (worker.cts).
import { pathToFileURL } from 'node:url';
import type { WorkerInterface } from './types.cjs';

/** The handler names a worker module may export. */
export const HANDLER_NAMES = ['handleOpen', 'handleTextMessage', 'handleBinaryMessage', 'handleClose'] as const;

/**
 * Takes the handlers from a module namespace. An ES module exports them by name; for a CommonJS
 * module, `import()` gives `module.exports` as `default` and only the names its static analysis
 * found as named exports, so every name missing from the namespace is looked up on `default` too.
 */
export function handlersOf(ns: Record<string, unknown>): WorkerInterface {
  const def = ns.default as Record<string, unknown> | null | undefined;
  const fromDefault = def !== null && (typeof def === 'object' || typeof def === 'function');
  const out: Record<string, unknown> = {};
  for (const name of HANDLER_NAMES) {
    let value = ns[name];
    if (value === undefined && fromDefault) value = def[name];
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
