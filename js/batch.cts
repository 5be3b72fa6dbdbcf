// Decoder for the event batches that the native addon hands to `dispatch`. The format (little-endian,
// without padding: kind:u8 socketId:f64 token body, per event) is defined with the bridge's
// encoder in internal/protocol/protocol.go; its constants come from protocol.gen.cts.
//
// The batch is a single allocation owned by the addon and is only valid during the call, so
// everything handed on is a copy: strings are decoded, binary data is copied into Buffers of its
// own, and tokens are read by the sink's token readers (copied into Buffers unless it says otherwise).
// A large message's data is not in the batch but in a parcel, which the decoder takes from the
// addon (`takeParcel`) as the string or the Buffer that it hands on.
import { Batch, EventKind } from './protocol.gen.cjs';

/**
 * Reads the token of socket `socketId`'s event from `batch[start:end]` (the batch is only valid
 * during the call, so what it returns must not point into it).
 */
export type TokenReader = (batch: Buffer, start: number, end: number, socketId: number) => unknown;

/**
 * Takes the data of a message held outside the batch, by the parcel id that its event carries:
 * `text` as a string, else as a Buffer of its own (the addon's `takeParcel`).
 */
export interface ParcelTaker {
  (id: number, text: true): string;
  (id: number, text: false): Buffer;
}

/** Receives the decoded events of a batch, one call per event, in batch order. */
export interface BatchSink {
  /**
   * How the token of each kind of event is read, indexed by `EventKind`: an event whose kind has no
   * reader gets `undefined` and costs nothing to skip. Without `tokens`, every token is copied into
   * a Buffer of its own (`tokenAsBytes`).
   */
  readonly tokens?: ReadonlyArray<TokenReader | undefined>;
  open(socketId: number, token: unknown, ip: string, url: string, headers: Record<string, string>): void;
  text(socketId: number, token: unknown, data: string): void;
  binary(socketId: number, token: unknown, data: Buffer): void;
  close(socketId: number, token: unknown, code: number, reason: string): void;
  /** The events of the socket before this one are handled (their handlers returned): its close frame may go. */
  catchUp(socketId: number): void;
  /** The socket's queue, which went over `backpressureThreshold`, has been written out. */
  drain(socketId: number, token: unknown): void;
}

type FastBuffer = Buffer & { utf8Slice?: (start: number, end: number) => string };

// Buffer#utf8Slice skips the argument juggling of Buffer#toString; fall back where it is missing.
export const utf8Slice: (buf: FastBuffer, start: number, end: number) => string =
  typeof (Buffer.prototype as FastBuffer).utf8Slice === 'function'
    ? (buf, start, end) => buf.utf8Slice!(start, end)
    : (buf, start, end) => buf.toString('utf8', start, end);

function copyOut(src: Buffer, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(end - start);
  if (end > start) src.copy(out, 0, start, end);
  return out;
}

/** The token as bytes of its own: what handlers not defined through `defineWorker` get. */
export const tokenAsBytes: TokenReader = copyOut;

/** Every event's token as bytes: the readers of a sink that names none. */
const ALL_AS_BYTES: Array<TokenReader | undefined> = [];
for (const kind of [EventKind.Open, EventKind.Text, EventKind.Binary, EventKind.Close, EventKind.Drain]) ALL_AS_BYTES[kind] = tokenAsBytes;

function noParcels(): never {
  throw new RangeError('wsbroker: a parcel in an event batch decoded without takeParcel');
}

function truncated(offset: number, need: number, length: number): RangeError {
  return new RangeError(`wsbroker: truncated event batch (need ${need} bytes at offset ${offset}, batch has ${length})`);
}

/**
 * Walks `batch` and calls `sink` once per event. Returns the number of events delivered.
 * Throws a RangeError on a malformed batch; the events before the bad one have been delivered.
 * Exceptions thrown by `sink` propagate. Before each call, `progress[0]` is set to where that
 * event ends in the batch: if the thread is terminated during a handler, the addon hands the
 * events after that one to another worker.
 */
export function decodeBatch(batch: Buffer, sink: BatchSink, progress?: Int32Array, takeParcel?: ParcelTaker): number {
  const length = batch.length;
  const view = new DataView(batch.buffer, batch.byteOffset, length);
  let off = 0;
  let count = 0;
  const tokens = sink.tokens ?? ALL_AS_BYTES;

  // Reads a u32 length at `off` and checks that that many bytes follow it.
  const span = (): number => {
    if (off + Batch.LenSize > length) throw truncated(off, Batch.LenSize, length);
    const len = view.getUint32(off, true);
    off += Batch.LenSize;
    if (off + len > length) throw truncated(off, len, length);
    return len;
  };
  const str = (): string => {
    const len = span();
    const s = len === 0 ? '' : utf8Slice(batch, off, off + len);
    off += len;
    return s;
  };
  // The id of the parcel that holds a message's data, if its length field at `off` says so (then
  // skipped with the id), else undefined.
  const parcel = (): number | undefined => {
    if (off + Batch.LenSize > length) throw truncated(off, Batch.LenSize, length);
    if (view.getUint32(off, true) !== Batch.InParcel) return undefined;
    if (off + Batch.LenSize + 8 > length) throw truncated(off, Batch.LenSize + 8, length);
    const id = view.getFloat64(off + Batch.LenSize, true);
    off += Batch.LenSize + 8;
    return id;
  };
  const take: ParcelTaker = takeParcel ?? noParcels;

  while (off < length) {
    const start = off;
    if (off + Batch.HeadSize > length) throw truncated(off, Batch.HeadSize, length);
    const kind = view.getUint8(off);
    const socketId = view.getFloat64(off + 1, true);
    off += Batch.HeadSize - Batch.LenSize;

    let token: unknown;
    const tokenLen = view.getUint32(off, true);
    off += Batch.LenSize;
    if (tokenLen !== Batch.NoToken) {
      if (off + tokenLen > length) throw truncated(off, tokenLen, length);
      const read = tokens[kind];
      if (read !== undefined) token = read(batch, off, off + tokenLen, socketId);
      off += tokenLen;
    }

    switch (kind) {
      case EventKind.Text: {
        const id = parcel();
        const data = id === undefined ? str() : take(id, true);
        if (progress !== undefined) progress[0] = off;
        sink.text(socketId, token, data);
        break;
      }
      case EventKind.Binary: {
        const id = parcel();
        let data: Buffer;
        if (id === undefined) {
          const len = span();
          data = copyOut(batch, off, off + len);
          off += len;
        } else {
          data = take(id, false);
        }
        if (progress !== undefined) progress[0] = off;
        sink.binary(socketId, token, data);
        break;
      }
      case EventKind.Close: {
        if (off + Batch.LenSize > length) throw truncated(off, Batch.LenSize, length);
        const code = view.getUint32(off, true);
        off += Batch.LenSize;
        const reason = str();
        if (progress !== undefined) progress[0] = off;
        sink.close(socketId, token, code, reason);
        break;
      }
      case EventKind.CatchUp: {
        if (progress !== undefined) progress[0] = off;
        sink.catchUp(socketId);
        break;
      }
      case EventKind.Drain: {
        if (progress !== undefined) progress[0] = off;
        sink.drain(socketId, token);
        break;
      }
      case EventKind.Open: {
        const ip = str();
        const url = str();
        if (off + Batch.LenSize > length) throw truncated(off, Batch.LenSize, length);
        const headerCount = view.getUint32(off, true);
        off += Batch.LenSize;
        const headers: Record<string, string> = {};
        for (let i = 0; i < headerCount; i++) {
          const name = str();
          const value = str();
          if (name === '__proto__') {
            // A plain assignment would try to set the prototype; keep it as an ordinary key.
            Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true });
          } else {
            headers[name] = value;
          }
        }
        if (progress !== undefined) progress[0] = off;
        sink.open(socketId, token, ip, url, headers);
        break;
      }
      default:
        throw new RangeError(`wsbroker: unknown event kind ${kind} at offset ${start} of an event batch`);
    }
    count++;
  }
  return count;
}
