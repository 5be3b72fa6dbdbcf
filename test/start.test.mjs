// start() failures: argument checks, nothing registered, addresses that cannot be listened on,
// worker modules that cannot be loaded. Run in one child process (test/fixtures/start-errors.mjs),
// which must exit by itself afterwards: failed starts leave no worker and no listener behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Child, Client, fixture, isListening, listeningPorts, makeCert, racyFreePort, root, withTimeout } from './helpers.mjs';

test('start() rejects with the right errors and leaves nothing behind', { timeout: 60_000 }, async (t) => {
  const blocker = net.createServer();
  await new Promise((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.after(() => blocker.close());
  const inUse = blocker.address().port;
  // Ports that must stay free: the failed starts bind them, and none may be left listening.
  const free = [await racyFreePort(), await racyFreePort(), await racyFreePort(), await racyFreePort()];
  const { certPath, keyPath } = makeCert(t);
  const tls = { certPath, keyPath, otherKeyPath: makeCert(t).keyPath };

  const child = new Child([fixture('start-errors.mjs'), JSON.stringify({ inUse, free, tls })]);
  t.after(() => child.stop());
  await child.waitForLine(/^done$/, 45_000);
  const results = {};
  for (const line of child.lines) {
    const m = /^result (.+?) (\{.*\})$/.exec(line);
    if (m) results[m[1]] = JSON.parse(m[2]);
  }

  const noWorker = { name: 'Error', message: 'At least one worker must be registered before starting the server', cause: null };
  assert.deepEqual(results['no worker'], noWorker);
  assert.deepEqual(results['no worker, after failures'], noWorker);

  for (const name of [
    'no options',
    'null options',
    'string options',
    'missing bind',
    'numeric bind',
    'negative threads',
    'fractional threads',
    'string threads',
    'NaN threads',
    'numeric workerPath',
    'empty bind array',
    'bind array with a number',
    'zero maxPayload',
    'negative idleTimeout',
    'fractional openTimeout',
    'string maxConnections',
    'huge maxBackpressure',
    'misspelt maxPayload',
    'misspelt workerPath',
    'unknown tls key',
    'misspelt compression key',
  ]) {
    assert.equal(results[name]?.name, 'TypeError', `${name}: ${JSON.stringify(results[name])}`);
    assert.ok(!results[name].sync, `${name}: a rejection, not a synchronous throw`);
  }
  assert.match(results['missing bind'].message, /bind/);
  assert.match(results['negative threads'].message, /threads/);
  assert.match(results['numeric workerPath'].message, /workerPath/);
  assert.match(results['zero maxPayload'].message, /maxPayload must be a positive integer/);
  assert.match(results['negative idleTimeout'].message, /idleTimeout must be a non-negative integer/);
  assert.match(results['string maxConnections'].message, /maxConnections/);
  // A misspelt or unknown option key is named, with the nearest valid one, instead of ignored.
  assert.match(results['misspelt maxPayload'].message, /^start: unknown option options\.maxPayLoad; did you mean options\.maxPayload\? \(options takes bind, workerPath, /);
  assert.match(results['misspelt workerPath'].message, /unknown option options\.worker; did you mean options\.workerPath\?/);
  assert.match(results['unknown tls key'].message, /unknown option options\.tls\.ca; did you mean options\.tls\.(cert|key)\? \(options\.tls takes cert, key\)/);
  assert.match(results['misspelt compression key'].message, /unknown option options\.compression\.serverContextTakover; did you mean options\.compression\.serverContextTakeover\?/);

  assert.equal(results['one of two addresses in use'].name, 'Error');
  assert.ok(results['one of two addresses in use'].message.includes(`127.0.0.1:${inUse}`), results['one of two addresses in use'].message);
  assert.equal(results['metrics address in use'].name, 'Error');
  assert.match(results['metrics address in use'].message, new RegExp(`cannot serve metrics on "127.0.0.1:${inUse}"`));
  // All or none: the metrics server of a start whose listener fails is not left running (the
  // check that no free port listens is below).
  assert.equal(results['port in use, metrics free'].name, 'Error');
  assert.ok(results['port in use, metrics free'].message.includes(`127.0.0.1:${inUse}`), results['port in use, metrics free'].message);
  assert.deepEqual(results['tls cert file missing'], {
    name: 'Error',
    message: "start: cannot read options.tls.cert from '/nonexistent/cert.pem': ENOENT: no such file or directory, open '/nonexistent/cert.pem'",
    cause: { name: 'Error', message: "ENOENT: no such file or directory, open '/nonexistent/cert.pem'" },
  });
  assert.equal(results['tls cert not PEM'].name, 'Error');
  assert.match(results['tls cert not PEM'].message, /^options\.tls: invalid certificate or key: tls: failed to find any PEM data in certificate input/);
  assert.equal(results['tls key of another cert'].name, 'Error');
  assert.match(results['tls key of another cert'].message, /^options\.tls: invalid certificate or key: tls: private key does not match public key/);
  assert.equal(results['port in use'].name, 'Error');
  assert.ok(results['port in use'].message.includes(`127.0.0.1:${inUse}`), results['port in use'].message);
  assert.equal(results['bad bind'].name, 'Error');
  assert.ok(results['bad bind'].message.includes('no port here'), results['bad bind'].message);
  assert.equal(results['port out of range'].name, 'Error');
  assert.ok(results['port out of range'].message.includes('99999'), results['port out of range'].message);

  const broken = fixture('broken-worker.mjs');
  for (const name of ['broken module, threads 2', 'broken module, threads 0']) {
    const r = results[name];
    assert.equal(r.name, 'Error', name);
    assert.ok(r.message.includes(broken), `${name}: names the path: ${r.message}`);
    assert.ok(r.message.includes('this worker module is broken on purpose'), `${name}: includes the cause: ${r.message}`);
    assert.equal(r.cause?.message, 'this worker module is broken on purpose', name);
  }
  const missing = results['missing module'];
  assert.ok(missing.message.includes(path.join(root, 'test/fixtures/does-not-exist.mjs')), missing.message);
  assert.ok(missing.cause, 'missing module: has a cause');
  const badHandler = results['handler not a function'];
  assert.ok(badHandler.message.includes(fixture('bad-handler-worker.mjs')), badHandler.message);
  assert.equal(badHandler.cause?.name, 'TypeError');
  assert.match(badHandler.message, /handleTextMessage must be a function/);

  // No half-started server: the addresses of the failed starts are not listening.
  for (const port of free) assert.equal(await isListening(port), false, `port ${port} is not listening`);

  // And nothing keeps the process alive: once its stdin closes, it exits by itself.
  child.proc.stdin.end();
  const status = await withTimeout(child.exited, 10_000, 'the start-errors child to exit by itself');
  assert.deepEqual(status, { code: 0, signal: null }, child.stderr);
});

test('a listening server keeps the process alive by itself; workerPath without threads spawns Math.max(os.cpus().length, 4) workers', async (t) => {
  const child = new Child([fixture('listen.mjs'), JSON.stringify({ start: { bind: '127.0.0.1:0', workerPath: fixture('worker.mjs') } })]);
  t.after(() => child.stop());
  const [port] = await listeningPorts(child);
  const [, workers] = await child.waitForLine(/^workers (\d+)$/, 30_000);
  assert.equal(Number(workers), Math.max(os.cpus().length, 4));
  // Had nothing kept it alive, the process would have ended as its module did, before any client.
  const c = await Client.connect(port);
  t.after(() => c.terminate());
  assert.equal(typeof (await c.ask({ op: 'whoami' })).socketId, 'number');
  assert.equal(child.exitStatus, undefined, 'still running');
  assert.ok(!child.lines.includes('beforeExit'), 'its event loop never emptied');
});

test('threads: 0: the handlers registered on the main thread stay registered when start() then fails to listen', async (t) => {
  const blocker = net.createServer();
  await new Promise((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.after(() => blocker.close());
  const child = new Child([fixture('listen.mjs'), JSON.stringify({
    first: { bind: `127.0.0.1:${blocker.address().port}`, workerPath: fixture('worker.mjs'), threads: 0 },
    start: { bind: '127.0.0.1:0' }, // no workerPath: served by what the failed start registered
  })]);
  t.after(() => child.stop());
  const [port] = await listeningPorts(child);
  assert.ok(child.lines.some((l) => l.startsWith('first-failed ')), child.lines.join('\n'));
  const c = await Client.connect(port);
  t.after(() => c.terminate());
  assert.equal((await c.ask({ op: 'whoami' })).threadId, 0);
});
