// Shared by the end-to-end tests: servers in child processes and the ports they bound, WebSocket clients.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const fixture = (name) => path.join(root, 'test', 'fixtures', name);

/**
 * A TCP port that was free a moment ago (bind 127.0.0.1:0, read the port, close): racy, since
 * anything may take it before the caller binds it. A server of the tests binds port 0 and the test
 * reads the port back (startServer's `ports`, listeningPorts, start()'s `addresses`); this is only
 * for a port that cannot be read back (a `metrics` server, the README's servers that print PORT as
 * given, redis-server, nginx) or that must stay free on purpose.
 */
export function racyFreePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The line a fixture server prints once it listens on `addresses` ({ host, port }, as start()'s
 * `addresses` gives them): `listening HOST:PORT…`, in order; listeningPorts reads it back.
 */
export function listeningLine(addresses) {
  return ['listening', ...addresses.map(({ host, port }) => `${host}:${port}`)].join(' ');
}

/**
 * Waits for the `listening HOST:PORT…` line of listeningLine on `proc`'s stdout (at or after line
 * `from`) and resolves with its ports in order: how a test learns what a server bound with port 0.
 */
export async function listeningPorts(proc, ms = 30_000, from = 0) {
  const [, addresses] = await proc.waitForLine(/^listening((?: \S+:\d+)*)$/, ms, from);
  return addresses.split(' ').filter(Boolean).map((address) => Number(address.slice(address.lastIndexOf(':') + 1)));
}

/**
 * Waits for the "open" line of the chat example (lib/example/example.js, run with HTTP_PORT and
 * WS_PORT 0) on `proc` and resolves with the ports it names: { httpPort, wsPort }, wsPort that of
 * WSBroker's own listener (undefined when the chat is on the page's port).
 */
export async function chatExamplePorts(proc) {
  const [, httpPort, wsPort] = await proc.waitForLine(/^Chat example: open https?:\/\/localhost:(\d+) \((?:WebSocket server on port (\d+))?/, 30_000);
  return { httpPort: Number(httpPort), wsPort: wsPort === undefined ? undefined : Number(wsPort) };
}

/**
 * A fresh self-signed certificate for 127.0.0.1 and localhost (the openssl CLI, an EC P-256 key),
 * in files of a temporary directory that the test removes: resolves with { cert, key } (PEM text)
 * and { certPath, keyPath }.
 */
export function makeCert(t) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsbroker-cert-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const certPath = path.join(dir, 'cert.pem');
  const keyPath = path.join(dir, 'key.pem');
  execFileSync('/usr/bin/openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', keyPath, '-out', certPath,
  ], { stdio: 'pipe' });
  return { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8'), certPath, keyPath };
}

/** Rejects after `ms` with a message saying what was awaited. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * A child process (any command) whose stdout lines are collected: `lines`, `stderr`,
 * `waitForLine(re)`, `exited` (a promise of { code, signal }), `send(line)` on its stdin.
 */
export class Proc {
  constructor(command, args, { env = {}, cwd = root } = {}) {
    this.command = [command, ...args].join(' ');
    this.proc = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.lines = [];
    this.stderr = '';
    this.waiters = new Set();
    let partial = '';
    this.proc.stdout.setEncoding('utf8');
    this.proc.stdout.on('data', (chunk) => {
      partial += chunk;
      let nl;
      while ((nl = partial.indexOf('\n')) >= 0) {
        this.lines.push(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
      }
      for (const w of [...this.waiters]) w();
    });
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (chunk) => {
      this.stderr += chunk;
      for (const w of [...this.waiters]) w();
    });
    this.proc.stdin.on('error', () => {}); // a child that exited early: reported by waitForLine
    // 'close' comes once the process has exited and its stdout has ended: every line is in.
    this.exited = new Promise((resolve) => {
      this.proc.on('close', (code, signal) => {
        this.exitStatus = { code, signal };
        resolve(this.exitStatus);
        for (const w of [...this.waiters]) w();
      });
    });
  }

  get pid() {
    return this.proc.pid;
  }

  /** Writes one line to the child's stdin. */
  send(line) {
    this.proc.stdin.write(`${line}\n`);
  }

  /**
   * Resolves with the first stdout line at or after index `from` matching `re` (with its index in
   * `this.lines` as `.index` on the result array of re.exec).
   */
  waitForLine(re, ms = 20_000, from = 0) {
    let waiter;
    return withTimeout(
      new Promise((resolve, reject) => {
        waiter = () => {
          for (let i = from; i < this.lines.length; i++) {
            const m = re.exec(this.lines[i]);
            if (m) {
              m.lineIndex = i;
              this.waiters.delete(waiter);
              resolve(m);
              return;
            }
          }
          if (this.exitStatus) {
            this.waiters.delete(waiter);
            reject(new Error(`${this.command}\nexited (${JSON.stringify(this.exitStatus)}) before printing ${re}\nstdout:\n${this.lines.join('\n')}\nstderr:\n${this.stderr}`));
          }
        };
        this.waiters.add(waiter);
        waiter();
      }),
      ms,
      `a line matching ${re} from ${this.command} (stdout so far:\n${this.lines.slice(-20).join('\n')}\nstderr so far:\n${this.stderr.slice(-4000)})`,
    ).finally(() => this.waiters.delete(waiter));
  }

  /** Resolves once the child's stderr contains `text` (a string) or matches it (a RegExp). */
  waitForStderr(text, ms = 20_000) {
    const re = typeof text === 'string' ? new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : text;
    let waiter;
    return withTimeout(
      new Promise((resolve, reject) => {
        waiter = () => {
          if (re.test(this.stderr)) {
            this.waiters.delete(waiter);
            resolve();
          } else if (this.exitStatus) {
            this.waiters.delete(waiter);
            reject(new Error(`${this.command}\nexited (${JSON.stringify(this.exitStatus)}) before its stderr matched ${re}\nstderr:\n${this.stderr}`));
          }
        };
        this.waiters.add(waiter);
        waiter();
      }),
      ms,
      `${re} on the stderr of ${this.command} (stderr so far:\n${this.stderr.slice(-4000)})`,
    ).finally(() => this.waiters.delete(waiter));
  }

  /** Sends `line` and waits for the next stdout line matching `re`. */
  ask(line, re, ms) {
    const from = this.lines.length;
    this.send(line);
    return this.waitForLine(re, ms, from);
  }

  /** Ends the child (SIGTERM, then SIGKILL) and waits for it. */
  async stop() {
    if (this.exitStatus) return this.exitStatus;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    const status = await this.exited;
    clearTimeout(t);
    return status;
  }
}

/** A node script as a child process (see Proc). */
export class Child extends Proc {
  constructor(args, options) {
    super(process.execPath, args, options);
  }
}

/**
 * Starts test/fixtures/server.mjs with `config` ({ servers: [{ bind, workerPath, threads }],
 * registerMain }; bind on port 0) and waits until every server listens. Resolves with the Child,
 * whose `ports` are the ports bound, one per bind address in order.
 */
export async function startServer(config, { env = {} } = {}) {
  const child = new Child([fixture('server.mjs'), JSON.stringify(config)], { env: { WSBROKER_LOG: 'warn', ...env } });
  try {
    child.ports = await listeningPorts(child);
  } catch (err) {
    await child.stop();
    throw err;
  }
  return child;
}

/**
 * A WebSocket client (the `ws` package) that records every message: `messages` holds
 * { text } for text frames and { binary: Buffer } for binary ones; `next(pred)` takes the next
 * unconsumed message, waiting for it; JSON text messages also have `json`.
 */
export class Client {
  /**
   * With `ca` (PEM), connects with wss:// trusting that certificate; `perMessageDeflate` as `ws`
   * takes it (its default: offered); `localAddress`, the address to connect from (any of
   * 127.0.0.0/8 on loopback).
   */
  static connect(port, { headers, origin, host = '127.0.0.1', path: urlPath = '/', ca, perMessageDeflate, localAddress } = {}) {
    const scheme = ca === undefined ? 'ws' : 'wss';
    const ws = new WebSocket(`${scheme}://${host}:${port}${urlPath}`, {
      headers, origin, ca, localAddress, maxPayload: 64 * 1024 * 1024, ...(perMessageDeflate === undefined ? {} : { perMessageDeflate }),
    });
    const client = new Client(ws);
    return withTimeout(
      new Promise((resolve, reject) => {
        ws.once('open', () => resolve(client));
        ws.once('unexpected-response', (_req, res) => {
          const err = new Error(`upgrade refused with HTTP ${res.statusCode}`);
          err.statusCode = res.statusCode;
          res.resume();
          reject(err);
        });
        ws.once('error', reject);
      }),
      10_000,
      `the WebSocket upgrade on port ${port}`,
    );
  }

  constructor(ws) {
    this.ws = ws;
    this.messages = [];
    this.consumed = 0;
    this.waiters = new Set();
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('message', (data, isBinary) => {
      let msg;
      if (isBinary) msg = { binary: Buffer.from(data) };
      else {
        msg = { text: data.toString('utf8') };
        try {
          msg.json = JSON.parse(msg.text);
        } catch {
          // not JSON
        }
      }
      this.messages.push(msg);
      for (const w of [...this.waiters]) w();
    });
    ws.on('close', () => {
      for (const w of [...this.waiters]) w();
    });
  }

  send(data) {
    this.ws.send(data);
  }

  /** Sends a JSON command to the fixture worker. */
  cmd(obj) {
    this.ws.send(JSON.stringify(obj));
  }

  /**
   * The next message not yet taken whose json matches `pred` (or any message without `pred`);
   * earlier non-matching messages stay available to later calls.
   */
  next(pred = () => true, ms = 10_000, what = 'a message') {
    const find = () => {
      for (let i = this.consumed; i < this.messages.length; i++) {
        const m = this.messages[i];
        if (!m.taken && pred(m)) {
          m.taken = true;
          while (this.consumed < this.messages.length && this.messages[this.consumed].taken) this.consumed++;
          return m;
        }
      }
      return undefined;
    };
    const now = find();
    if (now) return Promise.resolve(now);
    let waiter;
    return withTimeout(
      new Promise((resolve, reject) => {
        waiter = () => {
          const m = find();
          if (m) {
            this.waiters.delete(waiter);
            resolve(m);
          } else if (this.ws.readyState === WebSocket.CLOSED) {
            this.waiters.delete(waiter);
            reject(new Error(`socket closed while waiting for ${what}`));
          }
        };
        this.waiters.add(waiter);
      }),
      ms,
      what,
    ).finally(() => this.waiters.delete(waiter));
  }

  /** The next message whose JSON has `type`. */
  nextType(type, ms) {
    return this.next((m) => m.json?.type === type, ms, `a message of type ${type}`).then((m) => m.json);
  }

  /** Sends a command and waits for the reply of type `reply`. */
  async ask(obj, reply = obj.op) {
    this.cmd(obj);
    return this.nextType(reply);
  }

  close() {
    this.ws.close();
    return this.closed;
  }

  terminate() {
    this.ws.terminate();
  }
}

/**
 * Connects with `ws` to `path` (options: `ws`'s, `headers` and `origin` among them), expecting a
 * refusal: resolves with its { status, headers, body }.
 */
export function refusedResponse(port, { path: urlPath = '/', ...options } = {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${urlPath}`, options);
  return withTimeout(
    new Promise((resolve, reject) => {
      ws.once('open', () => {
        ws.terminate();
        reject(new Error(`${urlPath}: the connection was accepted`));
      });
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      });
    }),
    10_000,
    `the answer to ${urlPath}`,
  );
}

/** Connects, expecting a refusal; resolves with the HTTP status code. */
export async function refusedStatus(port, options) {
  try {
    const c = await Client.connect(port, options);
    c.terminate();
  } catch (err) {
    if (err.statusCode) return err.statusCode;
    throw err;
  }
  throw new Error('the connection was accepted');
}

/** Resolves true if something accepts TCP connections on 127.0.0.1:port. */
export function isListening(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
