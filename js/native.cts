// The interface of the compiled addon (build/Release/wsbroker.node), as the C glue in napi/
// defines it. Only js/ talks to it; the public API in index.cts validates every argument first,
// the glue checks types again so that no call can crash the process.

/** Bytes as the glue accepts them: a string is sent as its UTF-8. */
export type NativeBytes = string | ArrayBufferView | ArrayBuffer;

/** Bits of the handler mask: which events a worker wants delivered. */
export const enum HandlerBit {
  Open = 1,
  Text = 2,
  Binary = 4,
  Close = 8,
}

/** Log levels understood by `log`, as zerolog's. */
export const enum LogLevel {
  Debug = 0,
  Info = 1,
  Warn = 2,
  Error = 3,
}

export interface Native {
  /**
   * Registers the calling thread as a worker. `dispatch` is called on this thread with batches of
   * events (see js/batch.cts for the format). Calling it again on the same thread replaces the
   * dispatch function and mask. Returns the worker id.
   */
  registerWorker(dispatch: (batch: Buffer) => void, handlerMask: number): number;
  /** Starts listening on `addr` ("host:port"); throws an Error naming the address and the reason. */
  listen(addr: string): void;
  /** The verdict for a socket whose open event was delivered: true accepts, false answers 403. */
  acceptOpen(socketId: number, accept: boolean): void;
  /** A string is sent as a text frame, bytes as a binary frame. */
  send(socketId: number, data: NativeBytes): void;
  sendToChannel(channel: NativeBytes, data: NativeBytes): void;
  subscribe(socketId: number, channel: NativeBytes): boolean;
  unsubscribe(socketId: number, channel: NativeBytes): boolean;
  setToken(socketId: number, token: NativeBytes): void;
  copySubscriptions(fromChannel: NativeBytes, toChannel: NativeBytes): void;
  /** Writes one line through the broker's logger (zerolog on stderr, level from WSBROKER_LOG). */
  log(level: LogLevel, message: string): void;
}
