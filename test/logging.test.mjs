// The log on stderr, as a program that collects it sees it (a pipe: JSON lines) and as a person at a
// terminal sees it (zerolog's console format): the Go side's lines and the JS side's share one
// format, with the socket id, the broker's worker id and the Node threadId where they apply.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Proc, fixture, listeningPorts, refusedStatus, startServer } from './helpers.mjs';

const LEVELS = ['debug', 'info', 'warn', 'error'];
const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const serverConfig = { servers: [{ bind: '127.0.0.1:0', workerPath: fixture('worker.mjs'), threads: 2 }] };

/** Connects, learns the socket id and thread, makes handleTextMessage throw, closes. */
async function throwAndClose(port, message) {
  const c = await Client.connect(port);
  const me = await c.ask({ op: 'whoami' });
  c.cmd({ op: 'throw', message });
  await c.close();
  return me;
}

test('stderr is a pipe: JSON lines, socket, worker and thread where they apply', { timeout: 60_000 }, async (t) => {
  const server = await startServer(serverConfig, { env: { WSBROKER_LOG: 'debug' } });
  t.after(() => server.stop());
  const [port] = server.ports;
  const me = await throwAndClose(port, 'logged as JSON');
  // The Go side logs the end of the connection once the close handshake is over.
  await server.waitForStderr(new RegExp(`"socket":${me.socketId},[^\\n]*"msg":"close"`));
  await server.waitForStderr('logged as JSON');
  // A worker thread that dies: the main thread's line names its thread and broker worker.
  const doomed = await Client.connect(port);
  t.after(() => doomed.terminate());
  const { threadId: doomedThread } = await doomed.ask({ op: 'whoami' });
  doomed.cmd({ op: 'exit', code: 9 });
  await server.waitForStderr(/died \(exit code 9\)/);

  const lines = server.stderr.split('\n').filter(Boolean).map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      assert.fail(`not a JSON line: ${l}`);
    }
  });
  for (const l of lines) {
    assert.ok(LEVELS.includes(l.level), `level of ${JSON.stringify(l)}`);
    assert.match(l.time, ISO_MS, `time of ${JSON.stringify(l)}`);
    assert.equal(typeof l.msg, 'string');
  }
  // Every worker thread says which broker worker it is.
  const registered = lines.filter((l) => l.msg === 'worker registered');
  assert.equal(registered.length, 2, 'one line per worker thread');
  const workerOf = new Map(registered.map((l) => [l.thread, l.worker]));
  assert.ok(workerOf.has(me.threadId), `the thread of the socket (${me.threadId}) registered: ${JSON.stringify(registered)}`);
  const worker = workerOf.get(me.threadId);
  assert.ok(Number.isInteger(worker) && worker > 0);

  // The exception of a handler (JS side): the socket, its worker and thread, the stack.
  const failure = lines.find((l) => l.msg.includes('logged as JSON'));
  assert.equal(failure.level, 'error');
  assert.deepEqual([failure.socket, failure.worker, failure.thread], [me.socketId, worker, me.threadId]);
  assert.match(failure.msg, /handleTextMessage failed[\s\S]*at handleTextMessage \(.*worker\.mjs/);
  const died = lines.find((l) => l.msg.includes('died (exit code 9)'));
  assert.equal(died.level, 'error');
  assert.equal(died.thread, doomedThread);
  assert.equal(died.worker, workerOf.get(doomedThread), 'the line names the broker worker that died');
  assert.match(died.msg, new RegExp(`^wsbroker: worker thread ${doomedThread} \\(.*worker\.mjs\\) died`));
  // The Go side's lines about the socket: its id and its worker.
  const mine = lines.filter((l) => l.socket === me.socketId);
  assert.equal(mine.find((l) => l.msg === 'open')?.worker, worker, 'the open line names the worker');
  const close = mine.find((l) => l.msg === 'close');
  assert.equal(close.worker, worker, 'the Go side names the same worker');
  assert.equal(close.level, 'debug');
});

test('stderr is a terminal: the console format, with the same fields', { timeout: 60_000 }, async (t) => {
  // Default level (warn): the handler's exception is an error.
  const server = new Proc('/usr/bin/python3', [fixture('tty-stderr.py'), process.execPath, fixture('server.mjs'), JSON.stringify(serverConfig)], {
    env: { WSBROKER_LOG: '' },
  });
  t.after(() => server.stop());
  const [port] = await listeningPorts(server);
  const me = await throwAndClose(port, 'logged for people');
  await server.waitForStderr(/thread=\S*\d+\r?\n/); // colored: thread=ESC[0m3

  const plain = server.stderr.replace(/\x1b\[[0-9;]*m/g, '').replaceAll('\r', '');
  const lines = plain.split('\n').filter(Boolean);
  assert.ok(lines.every((l) => !l.startsWith('{')), `no JSON on a terminal:\n${plain}`);
  const first = lines.findIndex((l) => l.includes('logged for people'));
  assert.match(lines[first], new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} ERR handleTextMessage failed for socket ${me.socketId} .*Error: logged for people$`));
  // The stack follows on its own lines, as written; the fields close the entry.
  const rest = lines.slice(first + 1);
  assert.match(rest[0], /^\s+at handleTextMessage \(.*worker\.mjs/);
  assert.ok(
    rest.some((l) => new RegExp(` socket=${me.socketId} worker=\\d+ thread=${me.threadId}$`).test(l)),
    `the fields socket, worker and thread:\n${plain}`,
  );
  assert.equal(lines.filter((l) => / (DBG|INF) /.test(l)).length, 0, 'nothing below warn by default');
});

test('WSBROKER_LOG: an unknown level is said, and warn applies', { timeout: 30_000 }, async () => {
  const probe = new Proc(process.execPath, ['-e', "require('@wsbroker/wsbroker')"], { env: { WSBROKER_LOG: 'verbose' } });
  assert.deepEqual(await probe.exited, { code: 0, signal: null }, probe.stderr);
  const lines = probe.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  assert.equal(lines.length, 1, probe.stderr);
  assert.equal(lines[0].level, 'warn');
  assert.equal(lines[0].msg, 'WSBROKER_LOG="verbose" is not one of debug, info, warn, error; using warn');
});

test('WSBROKER_LOG: each level logs what the README lists for it and nothing below it', { timeout: 60_000 }, async (t) => {
  for (const level of ['error', 'warn', 'debug']) {
    const config = { servers: [{ bind: '127.0.0.1:0', workerPath: fixture('worker.mjs'), threads: 1, maxConnections: 1 }] };
    const server = await startServer(config, { env: { WSBROKER_LOG: level } });
    t.after(() => server.stop());
    const [port] = server.ports;
    const c = await Client.connect(port);
    assert.equal(await refusedStatus(port), 503, 'one more than maxConnections'); // warn
    c.cmd({ op: 'throw', message: `thrown at ${level}` }); // error
    await server.waitForStderr(`thrown at ${level}`);
    await c.close(); // debug: its close
    await server.ask('stop', /^stopped$/, 15_000);
    const lines = server.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const seen = new Set(lines.map((l) => l.level));
    const allowed = LEVELS.slice(LEVELS.indexOf(level));
    assert.deepEqual([...seen].filter((l) => !allowed.includes(l)), [], `${level}: nothing below it`);
    assert.equal(seen.has('warn'), level !== 'error', `${level}: the refusal over maxConnections (warn)`);
    assert.equal(seen.has('debug'), level === 'debug', `${level}: the connection's life (debug)`);
  }
});

test('NO_COLOR: the console format on a terminal, without colors', { timeout: 60_000 }, async (t) => {
  const server = new Proc('/usr/bin/python3', [fixture('tty-stderr.py'), process.execPath, fixture('server.mjs'), JSON.stringify(serverConfig)], {
    env: { WSBROKER_LOG: '', NO_COLOR: '1' },
  });
  t.after(() => server.stop());
  const [port] = await listeningPorts(server);
  const me = await throwAndClose(port, 'logged without colors');
  await server.waitForStderr(new RegExp(` thread=${me.threadId}\\r?\\n`));
  assert.match(server.stderr, / ERR handleTextMessage failed for socket \d+ .*Error: logged without colors/);
  assert.doesNotMatch(server.stderr, /\x1b\[/, 'no escape sequence');
});
