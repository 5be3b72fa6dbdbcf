// The public types of the API (re-exported by index.cts) and the messages between the main thread's
// supervisor and the worker threads it spawns: types only, so that every module can import them.
import type { Server as HTTPServer } from 'node:http';

/**
 * The options of `start`. Sizes are in bytes, times in milliseconds; every limit applies to the
 * listeners that this `start` call opens, `ordered` and `handlerTimeout` (see `DeliveryOptions`)
 * to the workers it starts.
 */
export interface StartOptions extends DeliveryOptions {
  /** The address to listen on, `host:port` as Go's `net.Listen` takes it (`127.0.0.1:8080`, `0.0.0.0:8080`, `[::1]:8080`, `localhost:8080`), or an array of them: all listen, or none does. Required unless `server` is given. */
  bind?: string | string[];
  /**
   * A Node `http.Server` (what `http.createServer()`, Express's `app.listen()` and Fastify's
   * `fastify.server` give) whose WebSocket upgrades this server takes: on the app's own port, each
   * upgrade request to `path` leaves Node, socket and all, and is answered and served by WSBroker
   * exactly as on its own listeners (with the limits of this call); every other request stays the
   * app's. An `https.Server` cannot be given: give WSBroker the certificate (`tls`, with `bind`), or
   * terminate TLS in a proxy in front of an `http.Server`. Node.js only: under Bun an
   * `http.Server`'s sockets have no file descriptor to hand over (a `TypeError`; use `bind`).
   */
  server?: HTTPServer;
  /**
   * With `server`: the path whose upgrades are taken (`'/ws'`), compared exactly with the request's
   * path, its query string ignored (`/ws?room=1` is taken, `/ws/` is not), as `ws` does. Default: every
   * upgrade request. An upgrade to another path is left to the server's other `'upgrade'`
   * listeners; when it has none, it is answered with HTTP 404.
   */
  path?: string;
  /** The worker module, absolute or relative to `process.cwd()`. */
  workerPath?: string;
  /** How many worker threads to spawn for `workerPath`; default `Math.max(os.cpus().length, 4)`; `0` registers the module on the main thread. */
  threads?: number;
  /** The largest message a client may send, after reassembly of its fragments; a larger one closes the connection with code 1009. Default 16 MiB. */
  maxPayload?: number;
  /** A connection that sends nothing for this long is pinged; if it still sends nothing for as long again, it is closed with code 1001. While it is on, connections have no TCP keep-alive (the ping finds a dead peer); with `0`, Go's TCP keep-alive stays on (a probe after 15 s without traffic). `0` disables. Default 30000, below the 60 s of silence after which nginx closes a proxied connection by default (`proxy_read_timeout`). */
  idleTimeout?: number;
  /** The time a client has to send its whole upgrade request; past it the TCP connection is closed. On Linux it runs from the client's first bytes: the kernel holds a connection that has sent nothing for about a second before the server sees it (`TCP_DEFER_ACCEPT`). Default 10000. */
  handshakeTimeout?: number;
  /** The largest upgrade request head (request line and headers); a larger one is answered with HTTP 431. Default 16384. */
  maxHeaderBytes?: number;
  /** How many connections this listener holds at most (upgrades waiting for `handleOpen` included); one more is answered with HTTP 503. `0`: no limit. Default 0. */
  maxConnections?: number;
  /** How many bytes may wait to be written to one connection (each queued frame counts 32 bytes more; messages of 512 bytes to 1 MiB queued back to back share one). A send (`send`, or `sendToChannel` for each subscriber) to a connection whose queue is already over it closes that connection with code 1008 and frees its queue; a message sent into a queue under it is taken whole, whatever its size, so a queue holds at most this plus one message, and a message of `maxPayload` can be echoed with both at their defaults. Default 16 MiB. */
  maxBackpressure?: number;
  /** Where a connection's queue (counted as for `maxBackpressure`) is too full to go on sending to it: a `send` that leaves more queued returns `false`, and `handleDrain` is called once the queue has been written out. At most `maxBackpressure` (a larger one is a TypeError). Default 1 MiB (1048576), or half of `maxBackpressure` when that is less. */
  backpressureThreshold?: number;
  /** How many messages (text and binary; pings, pongs and close frames do not count) one connection may send per second: a token bucket that holds this many and refills at this rate, so a burst of as many is allowed. The message that finds it empty is not delivered, and the connection is closed with code 1008 and the reason `'message rate limit exceeded'` (`stats().closedForRate` counts them). `0`: no limit. Default 0. */
  maxMessagesPerSecond?: number;
  /** How many connections one client address may hold: the address `handleOpen` gets as `ip` (so, with `trustProxy`, the client's, not the proxy's), counted from its upgrade request to its end (upgrades waiting for `handleOpen` included) over every `start` call that sets this option (its `bind` addresses and its `server`), each comparing the count with its own limit. One more is answered with HTTP 429, without `Retry-After` (when a connection of that address will end is unknown), and without `handleOpen` (`stats().refusedPerIp` counts them). Behind a proxy without `trustProxy`, every client has the proxy's address. `0`: no limit. Default 0. */
  maxConnectionsPerIp?: number;
  /** How long `handleOpen` (and the promise it returns) may take; past it the upgrade is answered with HTTP 503. Default 10000. */
  openTimeout?: number;
  /** The subprotocols this server speaks, e.g. `['chat.v2', 'chat.v1']`: the first one the client offers (`Sec-WebSocket-Protocol`) that is in this list is chosen in the handshake; `handleOpen` sees what the client offered in `headers['sec-websocket-protocol']`. Default: none. */
  protocols?: string[];
  /** An address (`host:port`) where the figures of `stats()` are served in Prometheus text format, at `/metrics`, until `stop()` or this call's `close()`. Default: none. */
  metrics?: string;
  /**
   * `true` negotiates permessage-deflate (RFC 7692) with every client that offers it (browsers and
   * `ws` do); others are served uncompressed. Every valid offer is accepted (the first of the
   * header), a window the client limits (`server_max_window_bits`, 8 to 15) included: what is sent
   * to it never refers back further. By default without context takeover, in both directions:
   * each message is compressed on its own, so a connection keeps no compressor or window between
   * messages (memory per connection stays as without compression), at the price of a lower ratio
   * than a shared window gives for streams of similar messages. Messages of 256 bytes or more are
   * sent compressed when that makes them smaller; a broadcast is compressed once for all its
   * subscribers with the same window. A compressed message from a client that inflates past
   * `maxPayload` closes the connection with code 1009, an invalid one with 1007. Default `false`.
   *
   * `{ serverContextTakeover: true }` is `true`, except that with a client whose offer allows it
   * (no `server_no_context_takeover`, a 15-bit window) the server keeps its context: a message may
   * refer back to the last 8 KiB sent compressed to that connection, so that a message like a
   * recent one costs a few bytes (a repeated 1 KiB chat message: ~20 bytes instead of ~380). Such
   * a connection holds those 8 KiB from its first compressed message to its end (8.0 KiB more of
   * Go heap per connection, before GC headroom; BENCHMARKS.md, "Compression and TLS"), and a
   * broadcast is compressed for each such subscriber. Clients are still asked not to keep theirs.
   */
  compression?: boolean | { serverContextTakeover: boolean };
  /**
   * Serves `wss://` (TLS, then the usual HTTP/1.1 upgrade) instead of `ws://`. `cert` is the
   * certificate chain and `key` its private key, each in PEM: a string containing `-----BEGIN` or
   * a Buffer is the PEM text itself, any other string is the path of a PEM file (read once, at
   * `start`). A plain-HTTP request to a TLS address is answered with HTTP 400. A TLS connection
   * holds about 17 KiB more memory than a plain one once it has received a 4 KiB message
   * (crypto/tls's state and the record buffers it keeps; BENCHMARKS.md, "Compression and TLS").
   * Default: none (plain `ws://`).
   */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /**
   * Makes this process one node of a cluster: several WSBroker processes (on one machine or many,
   * behind a load balancer) that share channels and sockets through Redis or NATS. `sendToChannel` then
   * reaches the channel's subscribers on every node, and `send`, `close`, `setToken`, `subscribe`
   * and `unsubscribe` take the id of a socket of another node (see "Running several nodes" in the
   * README). The cluster is the process's, like the channels: the first `start` that gives it joins,
   * a later `start` may leave it out or give the same one (a different one is a TypeError, and so is
   * one given while servers started without it run), and `stop()` leaves it. Default: none (this
   * process alone; socket ids 1, 2, 3…).
   */
  cluster?: ClusterOptions;
  /**
   * The reverse proxies in front of this server whose forwarding headers are believed: their
   * addresses (`'127.0.0.1'`, `'::1'`), CIDRs (`'10.0.0.0/8'`, `'fd00::/8'`) and the named sets
   * `'loopback'` (127.0.0.0/8, ::1), `'linklocal'` (169.254.0.0/16, fe80::/10) and `'uniquelocal'`
   * (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7), in an array or one as a string. When a
   * connection comes from one of them, `handleOpen`'s `ip` is the client they recorded: of the
   * addresses in `X-Forwarded-For` (or, when the request has none, the `for=` of `Forwarded`,
   * RFC 7239: quoted, bracketed IPv6 and ports are understood), the rightmost one not in
   * `trustProxy`, so that a client cannot choose its `ip` by sending the header itself. An entry
   * that names no address (`unknown`, an obfuscated `_hidden`, anything malformed) stops the walk:
   * `ip` is then the trusted proxy that wrote it; when every address is trusted, the leftmost.
   * Repeated headers count as one list, in order. IPv4 clients match IPv4 entries (also on a
   * dual-stack listener, and when written as `::ffff:a.b.c.d`), and `ip` is always an address
   * (IPv4 as a dotted quad), never a port. `true`, a hop count or a comma-separated string are
   * refused: list the proxies. Default: none (`ip` is the TCP peer's address).
   */
  trustProxy?: string | string[];
}

/**
 * What `start` resolves to: the addresses this call listens on, and `close()`, which ends this
 * call's listeners and connections while the others, the workers and the cluster stay.
 */
export interface Server {
  /**
   * The addresses actually listened on, one per `bind` address, in order (none for an attached
   * `server` without `bind`: its address is its own): with port `0` in `bind`, `port` is the one
   * the system chose. `host` is as Node's `server.address().address` gives it: an
   * IPv6 address without brackets (`'::1'`, `'::'` for `[::]:port` or `:port`), `'127.0.0.1'` for
   * `localhost`.
   */
  readonly addresses: ReadonlyArray<{ readonly host: string; readonly port: number }>;
  /**
   * Stops accepting on this call's addresses at once (and taking its attached `server`'s
   * upgrades, which then go to its other `'upgrade'` listeners; without any, Node hands them to
   * its `'request'` listeners as plain requests), and stops its `metrics` server. Its connections
   * go on for `options.grace` milliseconds (default 0), or until each has ended by
   * itself; those still open then are closed with code 1001, as `stop()` closes them (an upgrade
   * still waiting for `handleOpen` is answered with HTTP 503 and has no `handleClose`). Sends to
   * those sockets meanwhile work as to any socket until its close frame is queued, and are no-ops
   * after it: what was sent before goes out before the 1001. The connections of other `start` calls,
   * the workers and the cluster stay until `stop()`.
   *
   * @returns A Promise that resolves once `handleClose` has run for every connection of this call
   * (as `stop()` waits for it). A later call returns the promise of the first (its grace is
   * ignored); after `stop()`, it resolves at once.
   * @throws {TypeError} (a rejection) when `options` is not an object with only `grace`, an
   * integer from 0 to 2147483647.
   */
  close(options?: CloseOptions): Promise<void>;
}

/** The options of `Server.close()`. */
export interface CloseOptions {
  /** How long, in milliseconds, connections may go on after the listeners have closed, before those still open are closed with code 1001. Default 0. */
  grace?: number;
}

/** The options of `start`'s `cluster`. */
export interface ClusterOptions {
  /**
   * The Redis server the nodes share: `redis://[:password@]host:port[/db]`, `rediss://…` (TLS) or
   * `unix:///path/to/redis.sock` (`?db=N`). Exactly one of `redis` and `nats`. Its password never
   * appears in logs, stats or errors.
   */
  redis?: string;
  /**
   * The NATS servers the nodes share, one URL or several separated by commas (the servers of one
   * NATS cluster; a node reconnects to another when one goes): `nats://[user:password@|token@]host:port`
   * or `tls://…` (TLS). Exactly one of `redis` and `nats`. Its password or token never appears in
   * logs, stats or errors. A channel message larger than the servers' `max_payload` (1 MiB unless
   * raised) reaches this node's subscribers only, and a larger `send` to another node's socket is
   * lost (both counted in `stats().cluster.dropped.tooLarge`).
   */
  nats?: string;
  /** What every engine channel (Redis channel, NATS subject) of this cluster starts with, so that several clusters can share one engine: at most 64 bytes, without `:` or white space. Default `'wsb'`. */
  prefix?: string;
  /** How many bytes of publications this node holds while the engine is unreachable or slow; past it they are dropped and counted (`stats().cluster.dropped`). From 64 KiB to 1 GiB. Default 8 MiB. */
  publishBuffer?: number;
}

/**
 * The handlers a worker module exports, or passes to `registerWorkerThread`. Every handler is
 * optional: an event without a handler is skipped (a connection without `handleOpen` is accepted).
 * Handlers may be `async`. A handler that throws, or whose promise rejects, is logged with its
 * stack; the other events are still delivered and the server carries on.
 */
export interface WorkerInterface {
  /**
   * Called when a client asks to open a WebSocket connection, before the upgrade is answered.
   * `ip` is the peer address without port (IPv4 as a dotted quad, also on dual-stack listeners),
   * or, for a connection from a proxy listed in `trustProxy`, the client's address it forwarded;
   * `headers` holds the request headers with lower-case names, `origin` among them (the broker
   * checks no origin: decide here), a repeated header once with its values joined by `', '`
   * (`cookie`: by `'; '`); `url` is the request target, path and query as the client sent them
   * (for instance `/chat?token=…`); `request` holds the query and cookies parsed (see
   * `OpenRequest`).
   *
   * Returning `false`, throwing, or returning a promise that resolves to `false` or rejects
   * refuses the connection with HTTP 403. Returning (or resolving to) an `OpenRefusal`, an object
   * with a `status`, refuses it with that status, headers and body (401 with `WWW-Authenticate`,
   * 429 with `Retry-After`); one that breaks a rule of `OpenRefusal` is logged and answered with
   * HTTP 500. Anything else (an object without `status` too) accepts it, once the promise (if
   * any) has settled.
   * The socket id is live during this call: `setToken`, `subscribe` and `send` work here, and
   * what was sent is written once the upgrade completes (dropped if the connection is refused).
   */
  handleOpen?: (socketId: number, ip: string, headers: Record<string, string>, url: string, request: OpenRequest) => boolean | void | OpenRefusal | Promise<boolean | void | OpenRefusal>;
  /**
   * Called for every text message a client sends, with the message as a string. `token` is the
   * connection's token as a `Buffer` (the one set when the event was queued), `undefined` when none
   * is set.
   */
  handleTextMessage?: (data: string, socketId: number, token?: Buffer) => void | Promise<void>;
  /**
   * Called for every binary message a client sends, with the message as a `Buffer` of its own.
   * `token` as for `handleTextMessage`.
   */
  handleBinaryMessage?: (data: Buffer, socketId: number, token?: Buffer) => void | Promise<void>;
  /**
   * Called exactly once for every accepted connection when it has ended, whatever ended it. By then
   * the socket is in no channel and sends to it are no-ops. `token` as for `handleTextMessage`.
   * `code` and `reason` say why: those of the client's close frame (1005 if it had no code), or of
   * the server's own (your `close()`, 1001 for `stop()` or an idle client, 1002 or 1007 for a
   * protocol error, 1008 for backpressure and for `maxMessagesPerSecond`, 1009 for a message over `maxPayload`), or 1006 when the
   * connection dropped without a close frame.
   */
  handleClose?: (socketId: number, token: Buffer | undefined, code: number, reason: string) => void | Promise<void>;
  /**
   * Called once when a connection whose queue went over `backpressureThreshold` (a `send` to it
   * returned `false`, or a `sendToChannel` took it there) has had its queue written out (as a Node
   * stream's `'drain'`): resume sending to it. Called on the worker the connection is pinned to
   * (the one that gets its messages), never after its `handleClose`, nor once it is closing.
   * With `ordered: true` it is not held back behind the connection's pending handler promises (a
   * handler awaiting it there would wait forever): it runs as it arrives, and a failure is logged
   * without closing the connection. `token` as for `handleTextMessage`.
   */
  handleDrain?: (socketId: number, token: Buffer | undefined) => void | Promise<void>;
}

/**
 * The fifth argument of `handleOpen`: the upgrade request's query and cookies, each parsed when
 * first read (a handler that never reads them pays nothing). Parsing never throws.
 */
export interface OpenRequest {
  /** The query of `url` (after `?`, up to a `#`), as `new URL(url).searchParams` parses it: `+` is a space, a bad percent-encoding stays as sent. */
  readonly query: URLSearchParams;
  /**
   * The cookies of the `Cookie` header (repeated `Cookie` headers joined with `'; '`), by name, in
   * an object without prototype. Each `name=value` pair is trimmed of white space, a value in
   * double quotes loses them, and a value with `%` is percent-decoded (kept as sent when that
   * fails, as the `cookie` package does); a pair without `=` or with an empty name is skipped, and
   * of two cookies with the same name the first is kept (the browser sends the most specific path
   * first).
   */
  readonly cookies: Record<string, string>;
}

/**
 * What `handleOpen` returns (or resolves to) to refuse an upgrade with an HTTP status of its
 * choice; the connection is closed after the response. A refusal that breaks one of these rules
 * is logged and answered with HTTP 500 instead (it is never accepted).
 */
export interface OpenRefusal {
  /** An integer from 400 to 599; any other `status` (a string `'401'` too) is an error. */
  status: number;
  /**
   * The response headers, by name: a string, a number, or an array of strings for a header sent
   * several times (`Set-Cookie`); `undefined` sends none. Names are HTTP tokens; values hold no
   * CR, LF or other control character but tab, and are written as UTF-8 (keep them ASCII for
   * every client to read them alike). `Content-Type` (once at most) defaults to
   * `text/plain; charset=utf-8`. The server writes `Content-Length` (from the body) and
   * `Connection: close` itself, and a refusal may set neither, nor `Transfer-Encoding`,
   * `Keep-Alive` or `Upgrade`, which would contradict a response whose body ends with the
   * connection.
   */
  headers?: Record<string, string | number | readonly string[] | undefined>;
  /** The body: a string (sent as UTF-8) or bytes. Default: the status's reason phrase (`Unauthorized`), unless a `Content-Type` is given. The header names and values and the body take at most 64 KiB (65536 bytes) together. */
  body?: string | ArrayBuffer | ArrayBufferView;
}

/** How a worker thread delivers events to its handlers. */
export interface DeliveryOptions {
  /**
   * With `true`, an `async` handler sees a socket's events strictly in order: the next event of a
   * socket waits until the promise of the previous handler settles (other sockets go on). A handler
   * that throws, rejects, or has not settled after `handlerTimeout` closes its socket with code
   * 1011 and a reason naming the handler. Default `false`: handlers are called as events arrive.
   */
  ordered?: boolean;
  /** With `ordered`, how long a handler's promise may take, in milliseconds. Default 30000. */
  handlerTimeout?: number;
}

/** Live figures of the broker, as `stats()` returns them. */
export interface Stats {
  /** Connections accepted and not yet ended. */
  connections: number;
  /** Connections accepted since the process started. */
  accepted: number;
  /** Channels with at least one subscriber. */
  channels: number;
  /** Messages received from clients, and their payload bytes. */
  messagesIn: number;
  bytesIn: number;
  /** Messages queued to clients (a broadcast counts once per recipient). */
  messagesOut: number;
  /** Bytes written to sockets (frames and handshake responses). */
  bytesOut: number;
  /** Bytes queued for sockets and not yet written (32 more per queued frame, as `maxBackpressure` counts them). */
  queuedBytes: number;
  /** Connections ended, by close code (the code `handleClose` got). */
  closed: Record<string, number>;
  /** Connections closed with 1008 for sending over `maxMessagesPerSecond`. */
  closedForRate: number;
  /** Upgrades refused with HTTP 429 for `maxConnectionsPerIp`. */
  refusedPerIp: number;
  /** Each worker's queue: events handed to it and not yet handled, and events waiting for it (id -1: no worker alive). */
  workers: Array<{ id: number; inFlight: number; waiting: number; waitingBytes: number }>;
  /** The Go runtime's memory (the part of the process's RSS that is Go's): heap in use, goroutine stacks, all it holds from the system (heap, stacks, free spans, metadata), and its goroutines. */
  go: { heapBytes: number; stackBytes: number; mappedBytes: number; goroutines: number };
  /** This node's part in its cluster; absent without `cluster`. */
  cluster?: ClusterStats;
}

/** A node's figures, as `stats().cluster` gives them. */
export interface ClusterStats {
  /** The engine and its address, without password (`redis://127.0.0.1:6379/0`, `nats://127.0.0.1:4222`). */
  engine: string;
  /** Whether the engine is reachable now, since when (ISO time), and why not while it is not. */
  connected: boolean;
  since: string;
  error?: string;
  /** The id slots this node holds: its sockets' ids are `slot * 2^32 + n`. */
  slots: number[];
  /** Live nodes, this one included (a node unheard of for 5 s has gone). */
  nodes: number;
  /** Channels the engine has subscribed for this node (those with subscribers here), and changes not yet confirmed. */
  channels: number;
  pendingSubscribes: number;
  /** Publications waiting for the engine, and their bytes (at most `publishBuffer`). */
  queued: number;
  queuedBytes: number;
  /** Messages this node published, and received from the others. */
  published: number;
  received: number;
  /** Messages to a socket of a node that had gone (with NATS, which does not say whether a message reached anyone: of a node that the others had not heard of). */
  unrouted: number;
  /** Times the engine was connected: 1 after the first connection, one more after each recovery. */
  connects: number;
  /** Messages dropped: published while the engine was unreachable past `publishBuffer`; published or received faster than the engine or this node kept up with; received but not understood; larger than the engine takes (NATS's `max_payload`): not published; refused by the engine's server (a Redis user whose ACL leaves out the channel): not published, not tried again, logged at most once a minute. A message not published has reached this node's subscribers only. */
  dropped: { disconnected: number; slow: number; decode: number; tooLarge: number; refused: number };
  /** From publication on the origin node to delivery here, in milliseconds (power-of-two buckets). */
  lagMs: { p50: number; p99: number };
}

/** What the main thread passes to each worker it spawns. */
export interface WorkerData {
  modulePath: string;
  delivery: DeliveryOptions;
}

/** Messages from a spawned worker to the main thread. */
export type WorkerMessage =
  | { type: 'ready'; worker: number }
  | { type: 'pong' }
  | { type: 'failed'; error: { name: string; message: string; stack?: string } };

/** Messages from the main thread to a spawned worker: the watchdog's pings. */
export type MainMessage = { type: 'ping' };
