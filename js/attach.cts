// start({ server }): the upgrade requests of a Node http.Server handed over to Go, socket and all,
// so that their WebSocket traffic takes the same path as that of the broker's own listeners.
import type * as http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { native } from './addon.cjs';
import { errorText, log, LogLevel } from './log.cjs';

/** The upgrades a server's one listener hands over: the id of the `start` call that takes them (its Attachment's), by path ('' for any path). */
interface Routes {
  byPath: Map<string, number>;
  onUpgrade: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;
}

const ANY_PATH = '';

/** The servers attached, until their `start` call is undone or `stop`. */
const attached = new Map<http.Server, Routes>();

/** Whether a `start` already takes `server`'s upgrades to `path` (undefined: any path). */
export function isAttached(server: http.Server, path: string | undefined): boolean {
  return attached.get(server)?.byPath.has(path ?? ANY_PATH) ?? false;
}

/**
 * Hands `server`'s upgrade requests to `path` (undefined: any) over to the Attachment of the
 * addon's server `id` (what its `listen` returned). Returns the function that stops it.
 */
export function attachServer(server: http.Server, path: string | undefined, id: number): () => void {
  let routes = attached.get(server);
  if (routes === undefined) {
    const byPath = new Map<string, number>();
    const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
      const url = req.url ?? '/';
      const query = url.indexOf('?');
      const taker = byPath.get(query < 0 ? url : url.slice(0, query)) ?? byPath.get(ANY_PATH);
      if (taker !== undefined) {
        handOver(taker, req, socket as Socket, head);
      } else if (server.listenerCount('upgrade') === 1) {
        refuse(socket, 404, 'Not Found'); // no one else may answer it: it would hang
      }
    };
    routes = { byPath, onUpgrade };
    attached.set(server, routes);
    server.on('upgrade', onUpgrade);
  }
  const key = path ?? ANY_PATH;
  routes.byPath.set(key, id);
  return () => {
    const current = attached.get(server);
    if (current?.byPath.get(key) !== id) return;
    current.byPath.delete(key);
    if (current.byPath.size === 0) {
      server.off('upgrade', current.onUpgrade);
      attached.delete(server);
    }
  };
}

/** Stops taking every server's upgrades (`stop`). */
export function detachAll(): void {
  for (const [server, { onUpgrade }] of attached) server.off('upgrade', onUpgrade);
  attached.clear();
}

/**
 * Hands the connection over: Go gets a duplicate of its socket and the bytes Node read from it (the
 * request head, re-serialised as it came, then `head` and anything the stream buffered), and
 * answers the upgrade itself; Node then closes its own descriptor. All of it in this one turn of
 * the event loop, so Node reads nothing more from the socket.
 */
function handOver(id: number, req: http.IncomingMessage, socket: Socket, head: Buffer): void {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    log(LogLevel.Error, 'attached server: an upgrade came on a socket without a file descriptor (not TCP?); answered with 500', 0, 0, 0);
    refuse(socket, 500, 'Internal Server Error');
    return;
  }
  const chunks = [requestHead(req), head];
  for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null; ) chunks.push(chunk);
  try {
    native.adopt(id, fd, Buffer.concat(chunks));
  } catch (err) {
    log(LogLevel.Error, `attached server: cannot hand the connection over; answered with 500: ${errorText(err)}`, 0, 0, 0);
    refuse(socket, 500, 'Internal Server Error');
    return;
  }
  socket.destroy();
}

/** The request head as the client sent it (Node keeps header names, order and repeats in `rawHeaders`, and every string as latin1). */
function requestHead(req: http.IncomingMessage): Buffer {
  let head = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return Buffer.from(`${head}\r\n`, 'latin1');
}

/** Answers an upgrade that no one takes with `status`, and closes. */
function refuse(socket: Duplex, status: number, text: string): void {
  socket.once('finish', () => socket.destroy()); // not waiting for the client's end (http.Server allows half-open sockets)
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${text.length}\r\n\r\n${text}`);
}
