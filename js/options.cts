// The checks of every option object of the API (`start`'s, with its `tls` and `compression`,
// `registerWorkerThread`'s and `Server.close`'s), each made once, here: a TypeError names the option and what it got, and
// an unknown key is rejected with the nearest valid one.
import { readFile } from 'node:fs/promises';
import * as http from 'node:http';
import { isIP } from 'node:net';
import * as tls from 'node:tls';
import { HANDLER_NAMES, HANDLERS } from './module.cjs';
import {
  CLUSTER_DEFAULT_PREFIX,
  CLUSTER_DEFAULT_PUBLISH_BUFFER,
  CLUSTER_MAX_PREFIX,
  CLUSTER_MAX_PUBLISH_BUFFER,
  CLUSTER_MIN_PUBLISH_BUFFER,
  LIMITS,
  type LimitName,
} from './protocol.gen.cjs';
import type { CloseOptions, DeliveryOptions, StartOptions } from './types.cjs';

/** What `start` was asked to do, checked: its listen configuration as the addon takes it (JSON) and its workers. */
export interface StartConfig {
  listenConfig: ListenConfig;
  workerPath: string | undefined;
  threads: number | undefined;
  delivery: Required<DeliveryOptions>;
  cluster: ClusterConfig | undefined;
  attach: AttachConfig | undefined;
}

/** The server whose upgrades a `start` call takes, and the path it takes them on (undefined: any). */
export interface AttachConfig {
  server: http.Server;
  path: string | undefined;
}

/** The cluster configuration as the addon takes it (clusterConfig in cmd/libwsbroker/cluster.go). */
export interface ClusterConfig {
  redis?: string;
  nats?: string;
  prefix: string;
  publishBuffer: number;
}

/** The listen configuration of one `start` call (listenConfig in cmd/libwsbroker/exports.go). */
export type ListenConfig = {
  bind: string[];
  protocols: string[];
  compression: boolean;
  compressionContextTakeover: boolean;
  tls: { cert: string; key: string } | undefined;
  metrics: string;
  /** Names the attached server in logs; empty: none. */
  attach: string;
  trustProxy: string[];
} & Record<LimitName, number>;

/** Checks the options of `start` and reads its `tls` files. */
export async function startConfigOf(options: StartOptions): Promise<StartConfig> {
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`start: options must be an object like { bind: '127.0.0.1:8080' }, got ${describe(options)}`);
  }
  rejectUnknownKeys(options, START_OPTIONS, 'start', 'options');
  const { bind, workerPath, threads } = options;
  const attach = attachOf(options);
  const addresses = typeof bind === 'string' ? [bind] : bind === undefined && attach ? [] : bind;
  if (!Array.isArray(addresses) || (addresses.length === 0 && bind !== undefined) || !addresses.every((a) => typeof a === 'string' && !a.includes('\n'))) {
    throw new TypeError(`start: options.bind must be an address like '127.0.0.1:8080', or an array of them${attach ? '' : ' (or give options.server)'}, got ${describe(bind)}`);
  }
  if (options.tls !== undefined && addresses.length === 0) {
    throw new TypeError('start: options.tls applies to the listeners of options.bind, and none is given: an attached http.Server\'s connections are plain HTTP (terminate TLS in a proxy in front of it, or give bind)');
  }
  if (threads !== undefined && (typeof threads !== 'number' || !Number.isSafeInteger(threads) || threads < 0)) {
    throw new TypeError(`start: options.threads must be a non-negative integer, got ${describe(threads)}`);
  }
  if (workerPath !== undefined && typeof workerPath !== 'string') {
    throw new TypeError(`start: options.workerPath must be a string, got ${describe(workerPath)}`);
  }
  const { metrics } = options;
  if (metrics !== undefined && typeof metrics !== 'string') {
    throw new TypeError(`start: options.metrics must be an address like '127.0.0.1:9090', got ${describe(metrics)}`);
  }
  const delivery = deliveryOf(options, 'start');
  const listenConfig: ListenConfig = {
    bind: addresses,
    ...limitsOf(options),
    protocols: protocolsOf(options),
    ...compressionOf(options),
    tls: await tlsOf(options),
    metrics: metrics ?? '',
    attach: attach ? `http.Server ${attach.path ?? '(every path)'}` : '',
    trustProxy: trustProxyOf(options),
  };
  return { listenConfig, workerPath, threads, delivery, cluster: clusterOf(options), attach };
}

/** Checks `options.server` and `options.path`. */
function attachOf(options: StartOptions): AttachConfig | undefined {
  const { server, path } = options;
  if (server === undefined) {
    if (path !== undefined) throw new TypeError(`start: options.path applies to options.server's upgrades, and no server is given`);
    return undefined;
  }
  if (server instanceof tls.Server) {
    throw new TypeError(
      `start: options.server is ${describe(server)}, a TLS server: a TLS session inside Node cannot move to WSBroker. Give WSBroker the certificate (options.tls, with options.bind), or terminate TLS in a proxy (nginx) in front of an http.Server`,
    );
  }
  if (!(server instanceof http.Server)) {
    throw new TypeError(`start: options.server must be an http.Server (what http.createServer(), Express's app.listen() or Fastify's fastify.server give), got ${describe(server)}`);
  }
  if (process.versions.bun !== undefined) {
    throw new TypeError(`start: options.server needs Node.js: under Bun an http.Server's sockets have no file descriptor to hand to WSBroker. Give WSBroker a port of its own (options.bind)`);
  }
  if (path !== undefined && (typeof path !== 'string' || !/^\/[^?#]*$/.test(path))) {
    throw new TypeError(`start: options.path must be a path like '/ws' (starting with '/', without '?' or '#'), got ${describe(path)}`);
  }
  return { server, path };
}

/** Checks `options.cluster` and returns it with its defaults. */
function clusterOf(options: StartOptions): ClusterConfig | undefined {
  const { cluster } = options;
  if (cluster === undefined) return undefined;
  if (cluster === null || typeof cluster !== 'object') {
    throw new TypeError(`start: options.cluster must be an object like { redis: 'redis://127.0.0.1:6379' } or { nats: 'nats://127.0.0.1:4222' }, got ${describe(cluster)}`);
  }
  rejectUnknownKeys(cluster, CLUSTER_OPTIONS, 'start', 'options.cluster');
  const { redis, nats, prefix = CLUSTER_DEFAULT_PREFIX, publishBuffer = CLUSTER_DEFAULT_PUBLISH_BUFFER } = cluster;
  if ((redis === undefined) === (nats === undefined)) {
    throw new TypeError(`start: options.cluster must have exactly one of redis and nats (the engine the nodes share), got ${redis === undefined ? 'neither' : 'both'}`);
  }
  if (redis !== undefined) {
    checkEngineURL('redis', redis, ['redis:', 'rediss:', 'unix:'], "a URL like 'redis://host:6379', 'rediss://host:6380' (TLS) or 'unix:///path/redis.sock'");
  } else {
    const schemes = "a URL like 'nats://host:4222' or 'tls://host:4222', or several separated by commas";
    if (typeof nats !== 'string') throw new TypeError(`start: options.cluster.nats must be ${schemes}, got ${describe(nats)}`);
    for (const one of nats.split(',')) checkEngineURL('nats', one.trim(), ['nats:', 'tls:'], schemes);
  }
  if (typeof prefix !== 'string' || prefix === '' || Buffer.byteLength(prefix) > CLUSTER_MAX_PREFIX || /[:\s]/.test(prefix)) {
    throw new TypeError(`start: options.cluster.prefix must be a non-empty string of at most ${CLUSTER_MAX_PREFIX} bytes without ':' or white space, got ${describe(prefix)}`);
  }
  if (typeof publishBuffer !== 'number' || !Number.isSafeInteger(publishBuffer) || publishBuffer < CLUSTER_MIN_PUBLISH_BUFFER || publishBuffer > CLUSTER_MAX_PUBLISH_BUFFER) {
    throw new TypeError(`start: options.cluster.publishBuffer must be an integer from ${CLUSTER_MIN_PUBLISH_BUFFER} to ${CLUSTER_MAX_PUBLISH_BUFFER} (bytes), got ${describe(publishBuffer)}`);
  }
  return { ...(redis !== undefined ? { redis } : { nats }), prefix, publishBuffer };
}

/** Checks one engine URL of `options.cluster[key]`: a string with one of `protocols` and a host (or a socket path). */
function checkEngineURL(key: 'redis' | 'nats', value: unknown, protocols: string[], schemes: string): void {
  if (typeof value !== 'string') throw new TypeError(`start: options.cluster.${key} must be ${schemes}, got ${describe(value)}`);
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    // Its own words, not the string: it may hold a password.
  }
  if (url === undefined || !protocols.includes(url.protocol)) {
    throw new TypeError(`start: options.cluster.${key} must be ${schemes}, got ${url ? `the scheme '${url.protocol}'` : 'a string that is not a URL'}`);
  }
  if (url.protocol === 'unix:' ? url.pathname === '' || url.pathname === '/' : url.hostname === '') {
    throw new TypeError(`start: options.cluster.${key} must name ${url.protocol === 'unix:' ? 'a socket path' : 'a host'}, as in ${schemes}`);
  }
}

/**
 * Checks the arguments of `registerWorkerThread`: `worker` must be an object whose handlers, where
 * present, are functions. Returns the delivery options with their defaults.
 */
export function registrationOf(worker: unknown, options: DeliveryOptions): Required<DeliveryOptions> {
  checkHandlers(worker, 'registerWorkerThread', 'worker');
  const delivery = deliveryOf(options, 'registerWorkerThread');
  rejectUnknownKeys(options, DELIVERY_OPTIONS, 'registerWorkerThread', 'options');
  return delivery;
}

/**
 * Checks the argument of `defineWorker`: an object with handler functions and nothing else (unlike
 * a module, it has no other exports, so a misspelt handler would only be ignored).
 */
export function checkDefinition(handlers: object): void {
  checkHandlers(handlers, 'defineWorker', 'handlers');
  rejectUnknownKeys(handlers, HANDLERS, 'defineWorker', 'handlers', 'handler');
}

/** Throws a TypeError unless `worker` is an object whose handlers, where present, are functions. */
function checkHandlers(worker: unknown, fn: string, where: string): void {
  if (worker === null || (typeof worker !== 'object' && typeof worker !== 'function')) {
    throw new TypeError(`${fn}: ${where} must be an object with handler functions, got ${describe(worker)}`);
  }
  for (const name of HANDLER_NAMES) {
    const handler = (worker as Record<string, unknown>)[name];
    if (handler !== undefined && typeof handler !== 'function') {
      throw new TypeError(`${fn}: ${where}.${name} must be a function, got ${describe(handler)}`);
    }
  }
}

/** Checks `options.compression` and returns it as the listen configuration carries it. */
function compressionOf(options: StartOptions): { compression: boolean; compressionContextTakeover: boolean } {
  const { compression } = options;
  if (compression === undefined || typeof compression === 'boolean') {
    return { compression: compression === true, compressionContextTakeover: false };
  }
  if (compression !== null && typeof compression === 'object') {
    rejectUnknownKeys(compression, COMPRESSION_OPTIONS, 'start', 'options.compression');
    const { serverContextTakeover } = compression;
    if (typeof serverContextTakeover === 'boolean') {
      return { compression: true, compressionContextTakeover: serverContextTakeover };
    }
  }
  throw new TypeError(`start: options.compression must be a boolean or { serverContextTakeover: boolean }, got ${describe(compression)}`);
}

/** Checks `options.tls` and returns the PEM text of its certificate and key (reading files). */
async function tlsOf(options: StartOptions): Promise<{ cert: string; key: string } | undefined> {
  const { tls } = options;
  if (tls === undefined) return undefined;
  const pemOrPath = (v: unknown): v is string | Uint8Array => typeof v === 'string' || v instanceof Uint8Array;
  if (tls !== null && typeof tls === 'object') rejectUnknownKeys(tls, TLS_OPTIONS, 'start', 'options.tls');
  if (tls === null || typeof tls !== 'object' || !pemOrPath(tls.cert) || !pemOrPath(tls.key)) {
    throw new TypeError(`start: options.tls must be { cert, key }, each PEM text (a string or Buffer) or the path of a PEM file, got ${describe(tls)}`);
  }
  const pem = async (name: 'cert' | 'key'): Promise<string> => {
    const value = tls[name];
    if (typeof value !== 'string') return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1');
    if (value.includes('-----BEGIN')) return value;
    try {
      return await readFile(value, 'latin1');
    } catch (err) {
      throw new Error(`start: cannot read options.tls.${name} from '${value}': ${(err as Error).message}`, { cause: err });
    }
  };
  return { cert: await pem('cert'), key: await pem('key') };
}

/** An HTTP token (RFC 9110), what a subprotocol name must be. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Checks `options.protocols`. */
function protocolsOf(options: StartOptions): string[] {
  const { protocols } = options;
  if (protocols === undefined) return [];
  if (!Array.isArray(protocols) || !protocols.every((p) => typeof p === 'string' && TOKEN.test(p))) {
    throw new TypeError(`start: options.protocols must be an array of subprotocol names (HTTP tokens, like 'chat.v1'), got ${describe(protocols)}`);
  }
  return protocols;
}

/** The named sets of addresses `trustProxy` takes (Express's names, with the same ranges). */
const TRUST_PROXY_SETS: Readonly<Record<string, readonly string[]>> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
};

/** An address, optionally with a prefix length in decimal without leading zeros (its range is checked apart). */
const ADDRESS_OR_CIDR = /^([^/%]+)(?:\/(0|[1-9][0-9]{0,2}))?$/;

/** Checks `options.trustProxy` and returns its addresses and CIDRs, the named sets replaced by theirs. */
function trustProxyOf(options: StartOptions): string[] {
  const { trustProxy } = options;
  if (trustProxy === undefined) return [];
  const entries = typeof trustProxy === 'string' ? [trustProxy] : trustProxy;
  if (!Array.isArray(entries)) {
    const everyone = (trustProxy as unknown) === true ? ' (true is refused: trusting every peer would let any client choose its ip)' : '';
    throw new TypeError(`start: options.trustProxy must be an array of your proxies' addresses or CIDRs, like ['127.0.0.1', '10.0.0.0/8']${everyone}, got ${describe(trustProxy)}`);
  }
  return entries.flatMap((entry: unknown, i) => {
    if (typeof entry === 'string' && Object.hasOwn(TRUST_PROXY_SETS, entry)) return TRUST_PROXY_SETS[entry];
    const m = typeof entry === 'string' ? ADDRESS_OR_CIDR.exec(entry) : null;
    const family = m ? isIP(m[1]) : 0;
    if (m === null || family === 0 || (m[2] !== undefined && Number(m[2]) > (family === 4 ? 32 : 128))) {
      const where = typeof trustProxy === 'string' ? 'options.trustProxy' : `options.trustProxy[${i}]`;
      throw new TypeError(`start: ${where} must be an IPv4 or IPv6 address ('10.0.0.1', '::1'), a CIDR ('10.0.0.0/8', 'fd00::/8') or one of ${Object.keys(TRUST_PROXY_SETS).map((n) => `'${n}'`).join(', ')}, got ${describe(entry)}`);
    }
    return [entry as string];
  });
}

/** Checks the limits of `options` and returns them with their defaults, as the addon takes them. */
function limitsOf(options: StartOptions): Record<LimitName, number> {
  const out = {} as Record<LimitName, number>;
  for (const [name, fallback, zeroAllowed] of LIMITS) {
    const value = options[name];
    if (value === undefined) {
      out[name] = fallback;
    } else if (typeof value === 'number' && Number.isSafeInteger(value) && (value > 0 || (zeroAllowed && value === 0))) {
      out[name] = value;
    } else {
      throw new TypeError(`start: options.${name} must be ${zeroAllowed ? 'a non-negative' : 'a positive'} integer, got ${describe(value)}`);
    }
  }
  if (out.backpressureThreshold > out.maxBackpressure) {
    throw new TypeError(`start: options.backpressureThreshold must not exceed maxBackpressure (${out.maxBackpressure}): a queue over maxBackpressure closes the connection before send could say to wait, got ${describe(options.backpressureThreshold)}`);
  }
  return out;
}

/** The keys of each options object (the compiler checks each list against its type). */
const DELIVERY_OPTIONS: Record<keyof DeliveryOptions, true> = { ordered: true, handlerTimeout: true };
const START_OPTIONS: Record<keyof StartOptions, true> = {
  bind: true,
  workerPath: true,
  threads: true,
  server: true,
  path: true,
  maxPayload: true,
  idleTimeout: true,
  handshakeTimeout: true,
  maxHeaderBytes: true,
  maxConnections: true,
  maxBackpressure: true,
  backpressureThreshold: true,
  maxMessagesPerSecond: true,
  maxConnectionsPerIp: true,
  openTimeout: true,
  protocols: true,
  metrics: true,
  compression: true,
  tls: true,
  cluster: true,
  trustProxy: true,
  ...DELIVERY_OPTIONS,
};
const CLUSTER_OPTIONS: Record<keyof NonNullable<StartOptions['cluster']>, true> = { redis: true, nats: true, prefix: true, publishBuffer: true };
const TLS_OPTIONS: Record<keyof NonNullable<StartOptions['tls']>, true> = { cert: true, key: true };
const COMPRESSION_OPTIONS: Record<keyof Exclude<StartOptions['compression'], boolean | undefined>, true> = { serverContextTakeover: true };

/**
 * Throws a TypeError naming the first key of `options` that is not one of `known`, and the known
 * one nearest to it: a misspelt option would otherwise be ignored without a word.
 */
function rejectUnknownKeys(options: object, known: Record<string, true>, fn: string, where: string, noun = 'option'): void {
  const names = Object.keys(known);
  for (const key of Object.keys(options)) {
    if (Object.hasOwn(known, key)) continue;
    throw new TypeError(`${fn}: unknown ${noun} ${where}.${key}; did you mean ${where}.${nearest(key, names)}? (${where} takes ${names.join(', ')})`);
  }
}

/** The first name in `names` that `key` begins (`worker`: `workerPath`), else the one with the fewest single-character edits from it (case ignored). */
function nearest(key: string, names: string[]): string {
  const begun = names.find((name) => name.toLowerCase().startsWith(key.toLowerCase()));
  if (begun !== undefined) return begun;
  let best = names[0];
  let bestDistance = Infinity;
  for (const name of names) {
    const d = editDistance(key.toLowerCase(), name.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [name, d];
  }
  return best;
}

/** Levenshtein distance: insertions, deletions and substitutions. */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length];
}

/** The longest `grace` of `Server.close`, in milliseconds (as `setTimeout` takes). */
const MAX_CLOSE_GRACE = 2 ** 31 - 1;
const CLOSE_OPTIONS: Record<keyof CloseOptions, true> = { grace: true };

/** Checks the options of `Server.close` and returns its grace in milliseconds. */
export function closeGraceOf(options: CloseOptions | undefined): number {
  if (options === undefined) return 0;
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`close: options must be an object like { grace: 10000 }, got ${describe(options)}`);
  }
  rejectUnknownKeys(options, CLOSE_OPTIONS, 'close', 'options');
  const { grace = 0 } = options;
  if (typeof grace !== 'number' || !Number.isSafeInteger(grace) || grace < 0 || grace > MAX_CLOSE_GRACE) {
    throw new TypeError(`close: options.grace must be an integer from 0 to ${MAX_CLOSE_GRACE} (milliseconds), got ${describe(grace)}`);
  }
  return grace;
}

/** The delivery options' defaults (JavaScript's own: Go has no part in ordered delivery). */
export const DEFAULT_DELIVERY: Readonly<Required<DeliveryOptions>> = { ordered: false, handlerTimeout: 30_000 };

/** Checks the `DeliveryOptions` of `fn`'s `options` and fills in their defaults. */
function deliveryOf(options: unknown, fn: string): Required<DeliveryOptions> {
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`${fn}: options must be an object, got ${describe(options)}`);
  }
  const { ordered = DEFAULT_DELIVERY.ordered, handlerTimeout = DEFAULT_DELIVERY.handlerTimeout } = options as DeliveryOptions;
  if (typeof ordered !== 'boolean') throw new TypeError(`${fn}: ordered must be a boolean, got ${describe(ordered)}`);
  if (typeof handlerTimeout !== 'number' || !Number.isSafeInteger(handlerTimeout) || handlerTimeout <= 0) {
    throw new TypeError(`${fn}: handlerTimeout must be a positive integer, got ${describe(handlerTimeout)}`);
  }
  return { ordered, handlerTimeout };
}

/** A value as an error message names it: its type, and its value when short. */
export function describe(value: unknown): string {
  switch (typeof value) {
    case 'undefined':
      return 'undefined';
    case 'string':
      return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
    case 'number':
    case 'bigint':
    case 'boolean':
      return `${typeof value} ${String(value)}`;
    case 'function':
      return 'a function';
    case 'symbol':
      return 'a symbol';
    default: {
      if (value === null) return 'null';
      const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
      if (typeof name !== 'string' || name === '' || name === 'Object') return 'an object';
      return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`;
    }
  }
}
