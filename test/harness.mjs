// Shared by the end-to-end tests that need more than test/helpers.mjs: any program as a child whose stdout
// lines are awaited, the server of test/fixtures/e2e-server.mjs with its event log, headless
// Chromium, a raw WebSocket client that writes frames byte by byte, the engines' servers of the
// scale-out tests (redis-server, nats-server alone or as a cluster), and nginx as a reverse proxy.
import crypto from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { Proc, fixture, isListening, listeningPorts, makeCert, racyFreePort, withTimeout } from './helpers.mjs';

/**
 * A node script run through bash with the soft limit on open files raised as far as the hard
 * limit allows (the test runner cannot raise its own); its first stdout line is `nofile N`, the
 * limit it got. `exec` keeps the pid, so /proc/<pid> is the node process.
 */
export function nodeWithManyFiles(args, options) {
  const quoted = [process.execPath, ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
  const script = `ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; echo "nofile $(ulimit -n)"; exec ${quoted}`;
  return new Proc('/bin/bash', ['-c', script], options);
}

/** Resident set size of a process in bytes, from /proc/<pid>/status (VmRSS). */
export function rssOf(pid) {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

export const mib = (bytes) => `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;

// ---- engine servers ----

/**
 * Whether the server binary at `binary` (Debian's package `pkg`, which make test installs) is
 * there; without it the test is skipped, or fails under CI=true, where the engine is part of what is
 * tested.
 */
function hasServerBinary(t, binary, pkg) {
  if (existsSync(binary)) return true;
  if (process.env.CI === 'true') throw new Error(`${binary} is missing: make test installs the ${pkg} package`);
  t.skip(`${binary} is missing (make test installs it)`);
  return false;
}

/**
 * Runs a server process for test `t` (`spawn` makes its Proc, `ready(proc)` resolves once it
 * serves), stops it by PID when the test ends (then `cleanup`), and returns the controls that every
 * test server has: pid, kill() (SIGKILL), restart() (start again, on the same address), pause()
 * and resume() (SIGSTOP: its connections stay open, nothing is answered; SIGCONT).
 */
async function serverProcess(t, spawn, ready, cleanup = () => {}) {
  let proc;
  const run = async () => {
    proc = spawn();
    await ready(proc);
  };
  t.after(async () => {
    await proc?.stop();
    cleanup();
  });
  await run();
  return {
    get pid() {
      return proc.pid;
    },
    async kill() {
      proc.proc.kill('SIGKILL');
      await proc.exited;
    },
    restart: run,
    pause: () => proc.proc.kill('SIGSTOP'),
    resume: () => proc.proc.kill('SIGCONT'),
  };
}

/** Polls `probe` until `ok` holds of what it resolves with: for figures of other processes, which send no event. */
export async function until(what, probe, ok, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}; last: ${JSON.stringify(v)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// ---- nginx ----

const NGINX = '/usr/sbin/nginx';

/**
 * Starts Debian's nginx for test `t` (`make test` installs it) with `site`, configuration text for
 * nginx's `http` context whose server listens on 127.0.0.1:`port`, and stops it by PID when the
 * test ends. It runs as one process (no master and workers, so that the PID is all of it) in a
 * temporary directory that holds its configuration, pid file, error log and temporary files, so
 * that it needs neither root nor anything of the system's nginx. Resolves with the server's
 * controls once `port` accepts connections; undefined (the test skipped) without the binary, or
 * fails under CI=true.
 */
export async function nginxServer(t, site, port) {
  if (!hasServerBinary(t, NGINX, 'nginx')) return undefined;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsbroker-nginx-'));
  const at = (name) => path.join(dir, name);
  writeFileSync(at('site.conf'), site);
  writeFileSync(at('nginx.conf'), [
    'master_process off;',
    `pid ${at('nginx.pid')};`,
    `error_log ${at('error.log')} info;`,
    'events { worker_connections 1024; }',
    'http {',
    '    access_log off;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((temp) => `    ${temp}_temp_path ${at(temp)};`),
    `    include ${at('site.conf')};`,
    '}',
    '',
  ].join('\n'));
  const args = ['-p', dir, '-e', at('error.log'), '-c', at('nginx.conf'), '-g', 'daemon off;'];
  return serverProcess(t, () => new Proc(NGINX, args), (proc) => until(`nginx listening on 127.0.0.1:${port}`, () => {
    if (proc.exitStatus) throw new Error(`nginx exited (${JSON.stringify(proc.exitStatus)}): ${proc.stderr}${readFileSync(at('error.log'), 'utf8')}`);
    return isListening(port);
  }, Boolean), () => rmSync(dir, { recursive: true, force: true }));
}

// ---- Redis ----

const REDIS_SERVER = '/usr/bin/redis-server';

/**
 * Starts Debian's redis-server for test `t` (`make test` installs it) and stops it, by PID, when the
 * test ends: on a Unix socket in a temporary directory, or with `tcp` on a free loopback port, or with
 * `tls` TLS only on a free loopback port with a certificate of makeCert (`certPath`: a client trusts
 * it through SSL_CERT_FILE); `password` sets requirepass. Resolves with { url, certPath, pid, kill(),
 * restart(), pause(), resume(), cli(...args) }: `url` carries the password; `restart` starts it again on the same
 * address; `cli` runs redis-cli against it and returns its output. Without the binary the test is
 * skipped (resolves undefined), or fails under CI=true, where Redis is part of what is tested.
 */
export async function redisServer(t, { tcp = false, tls = false, password } = {}) {
  if (!hasServerBinary(t, REDIS_SERVER, 'redis-server')) return undefined;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsbroker-redis-'));
  const args = ['--save', '', '--appendonly', 'no', '--bind', '127.0.0.1', '--dir', dir];
  let url;
  let cliArgs;
  let certPath;
  const auth = password === undefined ? '' : `:${encodeURIComponent(password)}@`;
  // redis-server cannot bind TCP port 0 (`--port 0` turns TCP off): its TCP port is picked free.
  if (tls) {
    const port = await racyFreePort();
    const cert = makeCert(t);
    certPath = cert.certPath;
    args.push('--port', '0', '--tls-port', String(port), '--tls-cert-file', cert.certPath, '--tls-key-file', cert.keyPath,
      '--tls-ca-cert-file', cert.certPath, '--tls-auth-clients', 'no');
    url = `rediss://${auth}127.0.0.1:${port}`;
    cliArgs = ['--tls', '--cacert', cert.certPath, '-p', String(port)];
  } else if (tcp) {
    const port = await racyFreePort();
    args.push('--port', String(port));
    url = `redis://${auth}127.0.0.1:${port}`;
    cliArgs = ['-p', String(port)];
  } else {
    const sock = path.join(dir, 'redis.sock');
    args.push('--port', '0', '--unixsocket', sock, '--unixsocketperm', '700');
    url = password === undefined ? `unix://${sock}` : `unix://${auth}${sock}`;
    cliArgs = ['-s', sock];
  }
  if (password !== undefined) {
    args.push('--requirepass', password);
    cliArgs.push('--no-auth-warning', '-a', password);
  }
  const controls = await serverProcess(t, () => new Proc(REDIS_SERVER, args),
    (proc) => proc.waitForLine(/ready to accept connections/i, 10_000), () => rmSync(dir, { recursive: true, force: true }));
  return Object.defineProperties({
    url,
    certPath,
    cli: (...cmd) => execFileSync('/usr/bin/redis-cli', [...cliArgs, ...cmd], { encoding: 'utf8' }).trim(),
  }, Object.getOwnPropertyDescriptors(controls));
}

// ---- NATS ----

const NATS_SERVER = '/usr/sbin/nats-server';

/**
 * Starts Debian's nats-server for test `t` (`make test` installs it) on loopback ports it picks
 * (clients and monitoring) and stops it, by PID, when the test ends: with `tls` TLS only, with a certificate
 * of makeCert (`certPath`: a client trusts it through SSL_CERT_FILE); with `token`, or `user` and
 * `password`, the server requires them; `maxPayload` sets the server's max_payload (through a
 * configuration file). Resolves with the server of natsProcess, whose `url` carries the
 * credentials; undefined (the test skipped) without the binary, or fails under CI=true.
 */
export async function natsServer(t, { tls = false, token, user, password, maxPayload } = {}) {
  if (!hasServerBinary(t, NATS_SERVER, 'nats-server')) return undefined;
  const args = [];
  let certPath;
  if (tls) {
    const cert = makeCert(t);
    certPath = cert.certPath;
    args.push('--tls', '--tlscert', cert.certPath, '--tlskey', cert.keyPath);
  }
  let login = {};
  let auth = '';
  if (token !== undefined) {
    args.push('--auth', token);
    login = { auth_token: token };
    auth = `${encodeURIComponent(token)}@`;
  } else if (user !== undefined) {
    args.push('--user', user, '--pass', password);
    login = { user, pass: password };
    auth = `${encodeURIComponent(user)}:${encodeURIComponent(password)}@`;
  }
  if (maxPayload !== undefined) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'wsbroker-nats-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const config = path.join(dir, 'nats.conf');
    writeFileSync(config, `max_payload: ${maxPayload}\n`);
    args.push('-c', config);
  }
  const server = await natsProcess(t, args, { scheme: tls ? 'tls' : 'nats', auth, login });
  return Object.assign(server, { certPath });
}

/**
 * Starts `count` nats-servers for test `t` joined by routes into one NATS cluster, each on ports
 * of its own, one after the other (each given the routes of those before it: the routes of the
 * others are gossiped), and resolves once every server has a route to every other, with { servers }
 * (each as natsServer's), or undefined as natsServer does without the binary.
 */
export async function natsCluster(t, count = 3) {
  if (!hasServerBinary(t, NATS_SERVER, 'nats-server')) return undefined;
  const servers = [];
  for (let i = 0; i < count; i++) {
    const routes = servers.map((s) => `nats://127.0.0.1:${s.ports.route}`);
    servers.push(await natsProcess(t, ['--server_name', `s${i}`, '--cluster_name', 'wsbroker-test', ...(routes.length ? ['--routes', routes.join(',')] : [])], { cluster: true }));
  }
  await Promise.all(servers.map((s) => until(`${s.url} routed to the ${count - 1} others`, () => s.routes(), (n) => n === count - 1)));
  return { servers };
}

/** The port nats-server logs that it listens on for `what` ('client', 'route'; 'http' for its monitoring). */
function natsLoggedPort(stderr, what) {
  const re = what === 'http' ? /Starting http monitor on \S+:(\d+)/ : new RegExp(`Listening for ${what} connections on \\S+:(\\d+)`);
  return Number(re.exec(stderr)[1]);
}

/**
 * Runs nats-server with `args` for test `t` (with `cluster`, listening for routes too), its ports
 * picked by nats-server (port -1) and read from its log, stopped by PID when the test ends, and
 * resolves once it is ready with { url, ports ({ client, http, and route with `cluster` }), pid, kill(), restart() (the
 * same ports), pause(), resume(), routes() (how many other servers it has a route to),
 * interest(subject) ({ clients, routes }: how many of its client connections and of its routes
 * subscribe to subject), publish(messages) }.
 */
async function natsProcess(t, args, { scheme = 'nats', auth = '', login = {}, cluster = false } = {}) {
  // -1: nats-server picks the port and logs it; a restart takes the ports of the first run again.
  const ports = { client: -1, http: -1, ...(cluster ? { route: -1 } : {}) };
  const portArgs = () => ['-a', '127.0.0.1', '-p', String(ports.client), '-m', String(ports.http), ...(cluster ? ['--cluster', `nats://127.0.0.1:${ports.route}`] : [])];
  const controls = await serverProcess(t, () => new Proc(NATS_SERVER, [...portArgs(), ...args]), async (proc) => {
    await proc.waitForStderr(/\[INF\] Server is ready/, 10_000);
    if (cluster) await proc.waitForStderr(/Listening for route connections on/, 10_000);
    for (const what of Object.keys(ports)) ports[what] = natsLoggedPort(proc.stderr, what);
  });
  const monitor = async (endpoint) => (await fetch(`http://127.0.0.1:${ports.http}/${endpoint}`)).json();
  return Object.defineProperties({
    url: `${scheme}://${auth}127.0.0.1:${ports.client}`,
    ports,
    routes: async () => (await monitor('routez')).num_routes,
    async interest(subject) {
      const [connz, routez] = await Promise.all([monitor('connz?subs=1'), monitor('routez?subs=1')]);
      const subscribers = (connections = []) => connections.filter((c) => c.subscriptions_list?.includes(subject)).length;
      return { clients: subscribers(connz.connections), routes: subscribers(routez.routes) };
    },
    /**
     * Publishes each [subject, bytes] of `messages` as a client of its own speaking NATS's protocol
     * on a bare socket, and resolves once the server has answered the PING after them.
     */
    publish: (messages) => rawNatsPublish(ports.client, login, messages),
  }, Object.getOwnPropertyDescriptors(controls));
}

/** natsProcess's publish, to the server on `port` logged in with `login` (CONNECT's fields). */
function rawNatsPublish(port, login, messages) {
  const bytes = Buffer.concat([
    Buffer.from(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, ...login })}\r\n`),
    ...messages.flatMap(([subject, data]) => [Buffer.from(`PUB ${subject} ${Buffer.byteLength(data)}\r\n`), Buffer.from(data), Buffer.from('\r\n')]),
    Buffer.from('PING\r\n'),
  ]);
  return withTimeout(new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let answer = '';
    socket.once('error', reject);
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
      if (answer.includes('-ERR')) {
        socket.destroy();
        reject(new Error(`nats-server refused: ${answer}`));
      } else if (answer.includes('PONG\r\n')) {
        socket.end();
        resolve();
      }
    });
    socket.write(bytes);
  }), 10_000, `nats-server on port ${port} to take ${messages.length} messages`);
}

/**
 * Starts test/fixtures/e2e-server.mjs (worker test/fixtures/e2e-worker.mjs, 2 threads unless
 * `options` says otherwise) and waits until it listens. Resolves with { server, port, events, stats },
 * where `events()` is the worker's log so far (`open ID TAG`, `close ID`), one string per line, and
 * `stats()` resolves with the server's stats().
 * With `manyFiles`, the server runs with the limit on open files raised; with `oneCore`, on CPU 0
 * only (taskset), as a server pinned to one core: Go then has one P.
 */
export async function e2eServer(t, options = {}, { manyFiles = false, oneCore = false, env = {} } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsbroker-e2e-'));
  const log = path.join(dir, 'events.log');
  const args = [
    fixture('e2e-server.mjs'),
    JSON.stringify({ bind: '127.0.0.1:0', workerPath: fixture('e2e-worker.mjs'), threads: 2, ...options }),
  ];
  const procEnv = { EVENT_LOG: log, WSBROKER_LOG: 'warn', ...env };
  const server = manyFiles
    ? nodeWithManyFiles(args, { env: procEnv })
    : oneCore
      ? new Proc('taskset', ['-c', '0', process.execPath, ...args], { env: procEnv })
      : new Proc(process.execPath, args, { env: procEnv });
  t.after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const [port] = await listeningPorts(server);
  const events = () => {
    try {
      return readFileSync(log, 'utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  };
  const stats = async () => JSON.parse((await server.ask('stats', /^stats (.*)$/))[1]);
  return { server, port, events, stats };
}

/** How many times `close ID` is in the log, for each of `ids`; resolves with a Map id → count. */
export function closeCounts(events, ids) {
  const want = new Set(ids.map(Number));
  const counts = new Map([...want].map((id) => [id, 0]));
  for (const e of events()) {
    const m = /^close (\d+)$/.exec(e);
    if (m && want.has(Number(m[1]))) counts.set(Number(m[1]), counts.get(Number(m[1])) + 1);
  }
  return counts;
}

// ---- headless Chromium ----

const CHROMIUM = '/usr/bin/chromium';

/**
 * Debian's headless Chromium (installed by `make deps`) driven by playwright-core, closed after
 * the test.
 */
export async function launchChromium(t) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium is needed at ${CHROMIUM} (Debian's package chromium): 'make deps' installs it`);
  }
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ];
  const browser = await withTimeout(chromium.launch({ executablePath: CHROMIUM, args, timeout: 30_000 }), 40_000, 'Chromium to start');
  t.after(() => browser.close());
  return browser;
}

// ---- raw WebSocket frames ----

/** A client frame: FIN/RSV bits and opcode in `b0`, masked unless `mask === false`. */
export function clientFrame(b0, payload = Buffer.alloc(0), { mask = true, length } = {}) {
  const data = Buffer.from(payload);
  const n = length ?? data.length;
  let head;
  if (n < 126) head = Buffer.from([b0, (mask ? 0x80 : 0) | n]);
  else if (n < 65536) {
    head = Buffer.from([b0, (mask ? 0x80 : 0) | 126, 0, 0]);
    head.writeUInt16BE(n, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = b0;
    head[1] = (mask ? 0x80 : 0) | 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  if (!mask) return Buffer.concat([head, data]);
  const key = crypto.randomBytes(4);
  const masked = Buffer.from(data);
  for (let i = 0; i < masked.length; i++) masked[i] ^= key[i & 3];
  return Buffer.concat([head, key, masked]);
}

export const OP = { cont: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa };
export const FIN = 0x80;

/** A close frame payload: code (big-endian) and reason. */
export function closePayload(code, reason = '') {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, Buffer.from(reason)]);
}

/**
 * A WebSocket client over a raw TCP socket: it performs the upgrade, then writes whatever bytes it
 * is given (one byte per write with `byteByByte`) and parses the server's frames into `frames`
 * ({ fin, rsv, op, payload }; op -1 stands for a masked frame, which a server must not send). `ended`
 * resolves when the server has closed the TCP connection.
 */
export class RawClient {
  /** Upgrades on `port` with a request of its own to `path` with `headers` (each key a line of its own), or with the bytes of `request` (sent in one write). */
  static connect(port, { headers = {}, path = '/', request } = {}) {
    return withTimeout(
      new Promise((resolve, reject) => {
        const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
        s.once('error', reject);
        s.once('connect', () => {
          const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
          s.write(
            request ??
              `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
                `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
          );
        });
        let buf = Buffer.alloc(0);
        const onData = (chunk) => {
          buf = Buffer.concat([buf, chunk]);
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          s.off('data', onData);
          s.off('error', reject);
          const head = buf.subarray(0, end).toString('latin1');
          if (!/^HTTP\/1\.1 101 /.test(head)) {
            s.destroy();
            reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
            return;
          }
          resolve(new RawClient(s, buf.subarray(end + 4)));
        };
        s.on('data', onData);
      }),
      10_000,
      `a raw upgrade on port ${port}`,
    );
  }

  constructor(socket, rest) {
    this.socket = socket;
    this.frames = [];
    this.buf = Buffer.alloc(0);
    this.waiters = new Set();
    this.error = undefined;
    this.ended = new Promise((resolve) => socket.once('close', resolve));
    socket.on('error', (err) => {
      this.error = err;
    });
    socket.on('data', (chunk) => this.feed(chunk));
    socket.on('close', () => {
      this.closed = true;
      for (const w of [...this.waiters]) w();
    });
    if (rest.length > 0) this.feed(rest);
  }

  feed(chunk) {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      let n = b[1] & 0x7f;
      let off = 2;
      if (n === 126) {
        if (b.length < 4) break;
        n = b.readUInt16BE(2);
        off = 4;
      } else if (n === 127) {
        if (b.length < 10) break;
        n = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (b[1] & 0x80) {
        // RFC 6455 5.1: a server must not mask its frames. Recorded as a frame of its own.
        this.frames.push({ fin: true, rsv: 0, op: -1, payload: Buffer.from('a masked server frame') });
        this.socket.destroy();
        break;
      }
      if (b.length < off + n) break;
      this.frames.push({ fin: (b[0] & 0x80) !== 0, rsv: b[0] & 0x70, op: b[0] & 0x0f, payload: Buffer.from(b.subarray(off, off + n)) });
      this.buf = b.subarray(off + n);
    }
    for (const w of [...this.waiters]) w();
  }

  /** Writes `bytes`, one byte per write (each awaited) with `byteByByte`. */
  async write(bytes, { byteByByte = true } = {}) {
    const chunks = byteByByte ? [...bytes].map((x) => Buffer.from([x])) : [bytes];
    for (const c of chunks) {
      if (this.closed) return; // the server may close before the last byte: that is its right
      await new Promise((resolve) => this.socket.write(c, () => resolve()));
    }
  }

  /** The next frame (from index `from` on) matching `pred`. */
  nextFrame(pred = () => true, ms = 10_000, what = 'a frame') {
    let waiter;
    let from = this.taken ?? 0;
    return withTimeout(
      new Promise((resolve, reject) => {
        waiter = () => {
          for (let i = from; i < this.frames.length; i++) {
            if (pred(this.frames[i])) {
              this.taken = i + 1;
              this.waiters.delete(waiter);
              resolve(this.frames[i]);
              return;
            }
          }
          from = this.frames.length;
          if (this.closed) {
            this.waiters.delete(waiter);
            reject(new Error(`connection closed while waiting for ${what}; frames: ${JSON.stringify(this.frames.map((f) => [f.op, f.payload.toString('latin1').slice(0, 40)]))}`));
          }
        };
        this.waiters.add(waiter);
        waiter();
      }),
      ms,
      what,
    ).finally(() => this.waiters.delete(waiter));
  }

  /** The next close frame: { code, reason } (code undefined for an empty payload). */
  async nextClose(ms) {
    const f = await this.nextFrame((x) => x.op === OP.close, ms, 'a close frame');
    return { code: f.payload.length >= 2 ? f.payload.readUInt16BE(0) : undefined, reason: f.payload.subarray(2).toString() };
  }

  /** Sends a text message in one frame and waits for the next text frame. */
  async ask(text) {
    await this.write(clientFrame(FIN | OP.text, Buffer.from(text)), { byteByByte: false });
    return (await this.nextFrame((f) => f.op === OP.text, 10_000, `the answer to ${text}`)).payload.toString();
  }

  destroy() {
    this.socket.destroy();
  }
}

export { Proc, fixture, withTimeout };
