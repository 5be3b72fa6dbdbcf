// Every code block of README.md is run, compared with the file it shows, or left out for a stated
// reason. An HTML comment right before each fenced block says which (the rendered README hides it):
//   <!-- readme-test: file <scenario>/<name> -->  written as <name> into the scenario's project; a
//                                                  test below runs that scenario
//   <!-- readme-test: commands <scenario> -->     the shell commands that scenario's test runs
//   <!-- readme-test: install -->                 `npm install` lines, each of which must install
//                                                  this package (by its name or under an alias)
//   <!-- readme-test: same-as <path> -->          identical to that file of the repository, which
//                                                  its own test runs (test/example.test.mjs)
//   <!-- readme-test: skip <reason> -->           not run, for the reason given
// A block without a marker, a marker without a block, or a scenario that no test below runs fails.
//
// The projects live in a temporary directory whose node_modules links `@wsbroker/wsbroker` (and
// `wsbroker`, the alias) to this repository and `ws` to its copy; the examples read their port from
// PORT, which the test sets to a free loopback port.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Child, Client, isListening, racyFreePort, root, withTimeout } from './helpers.mjs';
import { nginxServer, redisServer, until } from './harness.mjs';

const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
const packageName = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).name;

/** The fenced blocks of the README, each with its marker: { line, lang, code, kind, arg }. */
function markedBlocks(text) {
  const lines = text.split('\n');
  const blocks = [];
  const problems = [];
  let pending; // the last marker not yet followed by its block
  for (let i = 0; i < lines.length; i++) {
    const marker = /^<!-- readme-test: (\S+)(?: (.*?))? -->$/.exec(lines[i]);
    if (marker) {
      if (pending) problems.push(`line ${pending.line}: a marker with no code block after it`);
      pending = { line: i + 1, kind: marker[1], arg: marker[2] ?? '' };
      continue;
    }
    const fence = /^```(\S*)$/.exec(lines[i]);
    if (fence) {
      const end = lines.indexOf('```', i + 1);
      assert.ok(end > i, `line ${i + 1}: a code block that is not closed`);
      if (pending === undefined) problems.push(`line ${i + 1}: a code block without a readme-test marker before it`);
      else blocks.push({ ...pending, lang: fence[1], code: lines.slice(i + 1, end).join('\n') + '\n' });
      pending = undefined;
      i = end;
      continue;
    }
    if (pending && lines[i].trim() !== '') {
      problems.push(`line ${pending.line}: a marker followed by text, not by a code block`);
      pending = undefined;
    }
  }
  if (pending) problems.push(`line ${pending.line}: a marker with no code block after it`);
  return { blocks, problems };
}

const { blocks, problems } = markedBlocks(readme);

/** The commands of a shell block: one per line, comments and blank lines left out. */
const commandsOf = (code) => code.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);

/** Each scenario's files (name → code) and commands, as the README gives them. */
const scenarios = new Map();
const scenario = (name) => {
  if (!scenarios.has(name)) scenarios.set(name, { files: new Map(), commands: undefined });
  return scenarios.get(name);
};
for (const b of blocks) {
  if (b.kind === 'file') {
    const [name, file] = b.arg.split('/');
    scenario(name).files.set(file, b.code);
  } else if (b.kind === 'commands') {
    scenario(b.arg).commands = commandsOf(b.code);
  }
}

let project;
before(() => {
  project = mkdtempSync(path.join(os.tmpdir(), 'wsbroker-readme-'));
  mkdirSync(path.join(project, 'node_modules', '@wsbroker'), { recursive: true });
  symlinkSync(root, path.join(project, 'node_modules', '@wsbroker', 'wsbroker'));
  symlinkSync(root, path.join(project, 'node_modules', 'wsbroker'));
  symlinkSync(path.join(root, 'node_modules', 'ws'), path.join(project, 'node_modules', 'ws'));
});
after(() => rmSync(project, { recursive: true, force: true }));

/** Writes a scenario's files (and `extra` ones) into a directory of the project; returns its path. */
function writeScenario(name, extra = {}) {
  const s = scenarios.get(name);
  assert.ok(s, `the README has no scenario ${name}`);
  const dir = path.join(project, name);
  mkdirSync(dir);
  for (const [file, code] of [...s.files, ...Object.entries(extra)]) writeFileSync(path.join(dir, file), code);
  return dir;
}

/**
 * Runs `node <file>` in `dir` with PORT set; for a server, waits for its "listening on" line and
 * resolves with { server, port }, the port that line names. The README's WSBroker servers print
 * PORT as they were given it, so their tests pick a free one (racyFreePort); the ws server prints the
 * port bound, so its test gives PORT=0.
 */
async function startServer(dir, file, port, t) {
  const server = new Child([file], { cwd: dir, env: { PORT: String(port) } });
  t.after(() => server.stop());
  const [, listening] = await server.waitForLine(/^listening on ws:\/\/localhost:(\d+)$/, 30_000);
  if (port !== 0) assert.equal(Number(listening), port, `${file} listens on PORT`);
  return { server, port: Number(listening) };
}

/** The scenarios this file runs, each a test below; the README must have exactly these. */
const tested = ['quickstart', 'cluster', 'migration-ws', 'migration-wsbroker', 'shutdown', 'behind-nginx'];

test('every code block of the README has a marker, and every marker a block and a test', () => {
  assert.deepEqual(problems, []);
  assert.ok(blocks.length >= 10, `only ${blocks.length} marked blocks found`);
  const kinds = new Set(['file', 'commands', 'install', 'same-as', 'skip']);
  for (const b of blocks) {
    assert.ok(kinds.has(b.kind), `line ${b.line}: unknown marker kind ${b.kind}`);
    if (b.kind === 'skip') assert.ok(b.arg.length > 10, `line ${b.line}: a skipped block needs its reason`);
    if (b.kind === 'file') assert.match(b.arg, /^[\w-]+\/[\w.-]+$/, `line ${b.line}: file <scenario>/<name>`);
    if (['js', 'mjs', 'ts'].includes(b.lang)) assert.notEqual(b.kind, 'commands', `line ${b.line}: code marked as commands`);
  }
  assert.deepEqual([...scenarios.keys()].sort(), [...tested].sort(), 'the scenarios of the README and of this test differ');
});

test('the README shows example/worker.ts and example/auth-worker.ts as they are', () => {
  const copies = blocks.filter((b) => b.kind === 'same-as');
  assert.deepEqual(copies.map((b) => b.arg).sort(), ['example/auth-worker.ts', 'example/worker.ts']);
  for (const b of copies) assert.equal(b.code, readFileSync(path.join(root, b.arg), 'utf8'), `README line ${b.line} differs from ${b.arg}`);
});

test('the install lines install this package, by its name or under the alias wsbroker', () => {
  const lines = blocks.filter((b) => b.kind === 'install').flatMap((b) => commandsOf(b.code));
  assert.deepEqual(lines, [`npm install ${packageName}`, `npm install wsbroker@npm:${packageName}`]);
  // Under the alias, `import … from 'wsbroker'` gets the same API.
  const requireHere = createRequire(path.join(project, 'index.js'));
  assert.equal(typeof requireHere('wsbroker').start, 'function');
  assert.equal(requireHere('wsbroker'), requireHere(packageName));
});

test('the README links only to headings it has', () => {
  const slugs = new Set(
    readme
      .split('\n')
      .filter((l) => /^#{1,6} /.test(l))
      .map((l) => l.replace(/^#+ /, '').toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-')),
  );
  for (const [, anchor] of readme.matchAll(/\]\(#([^)]+)\)/g)) assert.ok(slugs.has(anchor), `#${anchor}`);
});

test('quick start: the client gets its echo, the other connections the broadcast', { timeout: 60_000 }, async (t) => {
  const { commands } = scenarios.get('quickstart');
  assert.deepEqual(commands, ['node server.mjs', 'node client.mjs'], 'the commands this test runs');
  const dir = writeScenario('quickstart');
  const port = await racyFreePort();
  await startServer(dir, 'server.mjs', port, t);

  const other = await Client.connect(port);
  t.after(() => other.terminate());
  const client = new Child(['client.mjs'], { cwd: dir, env: { PORT: String(port) } });
  t.after(() => client.stop());
  assert.deepEqual(await withTimeout(client.exited, 20_000, 'client.mjs to exit'), { code: 0, signal: null }, client.stderr);
  assert.deepEqual(client.lines, ['echo: hello']);
  assert.match((await other.next()).text, /^\d+ says: hello$/);

  // The sender gets its echo and not its own broadcast.
  other.send('hi');
  assert.equal((await other.next()).text, 'echo: hi');
  const third = await Client.connect(port);
  t.after(() => third.terminate());
  third.send('ping');
  assert.equal((await third.next()).text, 'echo: ping');
  assert.match((await other.next()).text, /^\d+ says: ping$/);
});

test('several nodes: the quick start as two nodes sharing Redis, a broadcast from one reaches the other', { timeout: 60_000 }, async (t) => {
  const redis = await redisServer(t);
  if (!redis) return;
  const dir = writeScenario('cluster', { 'worker.mjs': scenarios.get('quickstart').files.get('worker.mjs') });
  const ports = [await racyFreePort(), await racyFreePort()];
  for (const port of ports) {
    const server = new Child(['server.mjs'], { cwd: dir, env: { PORT: String(port), REDIS_URL: redis.url } });
    t.after(() => server.stop());
    await server.waitForLine(new RegExp(`^listening on ws://localhost:${port}$`), 30_000);
  }
  const [one, two] = [await Client.connect(ports[0]), await Client.connect(ports[1])];
  t.after(() => [one, two].forEach((c) => c.terminate()));
  // The second node's subscription to 'everyone' is confirmed by Redis about one round trip after
  // handleOpen: until then a broadcast from the first node does not reach it.
  const heard = () => two.messages.find((m) => m.text.endsWith(' says: hello'));
  while (!heard()) {
    one.send('hello');
    assert.equal((await one.next()).text, 'echo: hello');
    await new Promise((resolve) => setTimeout(resolve, 50)); // a retry, not a wait for an event
  }
  const id = Number(/^(\d+) says: hello$/.exec(heard().text)[1]);
  assert.ok(id > 2 ** 32, `${id}: a socket id of the other node (slot·2^32 + n)`);
});

/**
 * What the migration guide says both servers do: rooms from the URL (default lobby), a text
 * message to everyone else in the room, a binary message closes the sender with 4000.
 * (The heartbeat, 30 s, is left out: test/lifecycle.test.mjs covers idleTimeout.)
 */
async function roomServerBehaves(port, t) {
  const connect = async (urlPath) => {
    const c = await Client.connect(port, { path: urlPath });
    t.after(() => c.terminate());
    return c;
  };
  const [a1, a2, b1, b2, l1, l2] = await Promise.all(
    ['/?room=a', '/?room=a', '/?room=b', '/?room=b', '/', '/'].map(connect),
  );
  a1.send('hi a');
  assert.equal((await a2.next()).text, 'hi a');
  // Sent after a2 had 'hi a': had a1 (or b1) been sent 'hi a', it would come before these.
  a2.send('reply');
  assert.equal((await a1.next()).text, 'reply');
  b2.send('hello b');
  assert.equal((await b1.next()).text, 'hello b');
  l1.send('in the lobby');
  assert.equal((await l2.next()).text, 'in the lobby');

  a2.send(Buffer.from([1, 2, 3]));
  assert.deepEqual(await withTimeout(a2.closed, 10_000, 'the close after a binary message'), { code: 4000, reason: 'text only' });
  b1.send('still here');
  assert.equal((await b2.next()).text, 'still here');
}

test('migrating from ws: the ws server does what the guide says', { timeout: 60_000 }, async (t) => {
  const dir = writeScenario('migration-ws');
  const { port } = await startServer(dir, 'server.mjs', 0, t);
  await roomServerBehaves(port, t);
});

test('migrating from ws: the WSBroker server does the same', { timeout: 60_000 }, async (t) => {
  const dir = writeScenario('migration-wsbroker');
  const port = await racyFreePort();
  await startServer(dir, 'server.mjs', port, t);
  await roomServerBehaves(port, t);
});

test('FAQ, stopping cleanly: on SIGTERM new connections are refused, open ones go on for the grace, then 1001, every handleClose, exit 0', { timeout: 60_000 }, async (t) => {
  // The FAQ's server.mjs uses the quick start's worker.mjs with the FAQ's handleClose added, as it says.
  const { files } = scenarios.get('shutdown');
  const worker = scenarios.get('quickstart').files.get('worker.mjs') + files.get('worker-close.mjs');
  const dir = writeScenario('shutdown', { 'worker.mjs': worker });
  const port = await racyFreePort();
  // The grace leaves room for a loaded machine between the SIGTERM and the message sent in it.
  const server = new Child(['server.mjs'], { cwd: dir, env: { PORT: String(port), GRACE_MS: '4000' } });
  t.after(() => server.stop());
  await server.waitForLine(new RegExp(`^listening on ws://localhost:${port}$`), 30_000);
  const clients = [await Client.connect(port), await Client.connect(port)];
  clients[0].send('hello');
  assert.equal((await clients[0].next((m) => m.text.startsWith('echo'))).text, 'echo: hello');

  server.proc.kill('SIGTERM');
  await until('the listener to close on SIGTERM', () => isListening(port), (listening) => !listening);
  clients[1].send('in the grace');
  assert.equal((await clients[1].next((m) => m.text.startsWith('echo'))).text, 'echo: in the grace');
  for (const c of clients) assert.equal((await withTimeout(c.closed, 10_000, 'the close after the grace')).code, 1001);
  assert.deepEqual(await withTimeout(server.exited, 20_000, 'the server to exit'), { code: 0, signal: null }, server.stderr);
  const left = server.lines.filter((l) => / left \(\d+\)$/.test(l));
  assert.deepEqual(left.map((l) => l.replace(/^\d+ /, '')), ['left (1001)', 'left (1001)'], 'every handleClose ran, before stopped');
  assert.equal(server.lines.at(-1), 'stopped');
});

/**
 * The README's site.conf run by nginx on a free loopback port (its `listen 80` and the WSBroker
 * port replaced: nginx's configuration and the README's server both take a port, neither reports
 * one bound) in front of `server` of `dir` on another; resolves with a client connected through
 * it from 127.0.0.2 (so that it is not nginx's address) with an X-Forwarded-For of its own (a lie),
 * once `server` has logged which `ip` handleOpen got, or undefined without nginx.
 */
async function throughNginx(t, dir, server) {
  const [port, proxyPort] = [await racyFreePort(), await racyFreePort()];
  const { server: wsbroker } = await startServer(dir, server, port, t);
  const site = scenarios.get('behind-nginx').files.get('site.conf');
  const ours = site.replace('listen 80;', `listen 127.0.0.1:${proxyPort};`).replace('proxy_pass http://127.0.0.1:8080;', `proxy_pass http://127.0.0.1:${port};`);
  assert.equal(ours.split('\n').filter((line, i) => line !== site.split('\n')[i]).length, 2, 'site.conf listens on 80 and proxies to 127.0.0.1:8080');
  if (!(await nginxServer(t, ours, proxyPort))) return undefined;
  const client = await Client.connect(proxyPort, { path: '/ws', localAddress: '127.0.0.2', headers: { 'X-Forwarded-For': '203.0.113.66' } });
  t.after(() => client.terminate());
  const [, ip] = await wsbroker.waitForLine(/^(\S+) connected$/, 10_000);
  client.send('hello');
  assert.equal((await client.next()).text, 'echo: hello');
  return { client, ip };
}

test('behind nginx: the client address with trustProxy (nginx\'s without), a quiet connection open past nginx\'s 60 s proxy_read_timeout', { timeout: 120_000 }, async (t) => {
  const { files } = scenarios.get('behind-nginx');
  const untrusted = files.get('server.mjs').replace(/^ {2}trustProxy: .*\n/m, '');
  assert.notEqual(untrusted, files.get('server.mjs'), 'server.mjs has a trustProxy line to leave out');
  const dir = writeScenario('behind-nginx', { 'untrusted.mjs': untrusted });
  const trusting = await throughNginx(t, dir, 'server.mjs');
  if (!trusting) return;
  assert.equal(trusting.ip, '127.0.0.2', 'with trustProxy: the client nginx saw, not the X-Forwarded-For it sent');
  assert.equal((await throughNginx(t, dir, 'untrusted.mjs')).ip, '127.0.0.1', 'without trustProxy: nginx');

  // server.mjs has WSBroker's default idleTimeout, and site.conf nginx's default timeouts.
  const { client } = trusting;
  const pings = [];
  const since = Date.now();
  client.ws.on('ping', () => pings.push(Date.now() - since));
  const quiet = 65_000;
  const closed = await Promise.race([client.closed, new Promise((resolve) => setTimeout(resolve, quiet))]);
  assert.equal(closed, undefined, `closed after ${Date.now() - since} ms of silence: ${JSON.stringify(closed)}`);
  console.log(`behind nginx: ${quiet} ms without a message; the server pinged after ${pings.join(' and ')} ms`);
  assert.ok(pings.length >= 1 && pings[0] < 60_000, `pings after ${pings} ms`);
  client.send('still there');
  assert.equal((await client.next()).text, 'echo: still there');
});
