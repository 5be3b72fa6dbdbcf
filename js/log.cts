// Lines written through the broker's logger (Go's zerolog, in its format, on stderr).
import * as util from 'node:util';
import { native } from './addon.cjs';
import { LogLevel } from './protocol.gen.cjs';

export { LogLevel };

/**
 * Writes a line through the broker's logger with the socket, the broker's worker id and the Node
 * threadId it concerns (0: none). Never throws: logging must never take the server down.
 */
export function log(level: LogLevel, message: string, socketId: number, nodeThread: number, worker: number): void {
  try {
    native.log(level, message, socketId, worker, nodeThread);
  } catch {
    // Nothing better to do.
  }
}

/** An error as a log line shows it: its stack when it has one. */
export function errorText(err: unknown): string {
  if (err instanceof Error && typeof err.stack === 'string') return err.stack;
  return util.inspect(err);
}
