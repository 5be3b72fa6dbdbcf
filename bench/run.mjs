// The benchmark runner: starts each server in turn, loads it with cmd/wsbench, prints a markdown
// table. The server is pinned to core 0 and the generator to core 1 (taskset), and every figure
// is also given per server CPU-second, so servers are compared on the work they do.
//
//   npm run bench                 the default set (a few minutes)
//   npm run bench -- --quick      echo 100 conns × 32 B and 4 KiB, fan-out to 1,000 (about a minute)
//   options: --only=ws,wsbroker,go   --json=<file> (all wsbench reports)   --no-pin
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'bench', '.bin');

const args = process.argv.slice(2);
const opt = (name) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const quick = args.includes('--quick');
const only = opt('only')?.split(',');
const jsonOut = opt('json');
for (const a of args) {
  if (!/^--(quick|no-pin|only=.*|json=.*)$/.test(a)) {
    console.error(`bench: unknown argument ${a}\nusage: node bench/run.mjs [--quick] [--only=ws,wsbroker,go] [--json=<file>] [--no-pin]`);
    process.exit(2);
  }
}

const log = (...m) => console.error('bench:', ...m);

// --- what runs ---

const servers = [
  {
    id: 'wsbroker',
    name: 'WSBroker (threads: 1)',
    cmd: (port) => [process.execPath, path.join(root, 'bench/servers/wsbroker.mjs'), String(port)],
    env: { THREADS: '1' },
  },
  {
    id: 'ws',
    name: 'ws 8 + bufferutil',
    cmd: (port) => [process.execPath, path.join(root, 'bench/servers/ws.mjs'), String(port)],
  },
  {
    id: 'go',
    name: 'Go core, Go handler',
    cmd: (port) => [path.join(bin, 'goserver'), '-addr', `127.0.0.1:${port}`],
  },
].filter((s) => !only || only.includes(s.id));

const timing = quick ? { warmup: '1s', duration: '3s' } : { warmup: '2s', duration: '8s' };
const scenarios = quick
  ? [
      { id: 'echo-100-32', title: 'echo, 100 conns, 32 B', args: ['-scenario', 'echo', '-conns', '100', '-size', '32'] },
      { id: 'echo-100-4k', title: 'echo, 100 conns, 4 KiB', args: ['-scenario', 'echo', '-conns', '100', '-size', '4096'] },
      { id: 'fanout-1000', title: 'fan-out to 1,000', args: ['-scenario', 'fanout', '-conns', '1000', '-size', '32'], deliveries: true },
    ]
  : [
      { id: 'echo-100-32', title: 'echo, 100 conns, 32 B', args: ['-scenario', 'echo', '-conns', '100', '-size', '32'] },
      { id: 'echo-100-512', title: 'echo, 100 conns, 512 B', args: ['-scenario', 'echo', '-conns', '100', '-size', '512'] },
      { id: 'echo-100-4k', title: 'echo, 100 conns, 4 KiB', args: ['-scenario', 'echo', '-conns', '100', '-size', '4096'] },
      { id: 'echo-1000-32', title: 'echo, 1,000 conns, 32 B', args: ['-scenario', 'echo', '-conns', '1000', '-size', '32'] },
      { id: 'fanout-1000', title: 'fan-out to 1,000', args: ['-scenario', 'fanout', '-conns', '1000', '-size', '32'], deliveries: true },
      { id: 'fanout-5000', title: 'fan-out to 5,000', args: ['-scenario', 'fanout', '-conns', '5000', '-size', '32'], deliveries: true },
      { id: 'rooms-1000', title: 'rooms of 10, 1,000 conns', args: ['-scenario', 'rooms', '-conns', '1000', '-room', '10', '-size', '32'], deliveries: true },
    ];

// --- helpers ---

const pin = !args.includes('--no-pin') && os.cpus().length >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0;
if (!pin) log('running without taskset pinning (no taskset, fewer than 2 cores, or --no-pin)');
const pinned = (core, cmd) => (pin ? ['taskset', '-c', String(core), ...cmd] : cmd);

function run(cmd, cmdArgs, opts = {}) {
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit', ...opts });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${cmdArgs.join(' ')} exited with ${r.status}`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// startServer spawns a server pinned to core 0 and resolves once it prints "listening".
async function startServer(server) {
  const port = await freePort();
  const [cmd, ...rest] = pinned(0, server.cmd(port));
  const child = spawn(cmd, rest, { cwd: root, env: { ...process.env, ...server.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let errText = '';
  child.stderr.on('data', (d) => {
    errText = (errText + d).slice(-4000);
  });
  const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve(sig ?? code)));
  await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${server.id} did not start within 30 s\n${errText}`)), 30_000);
    child.stdout.on('data', (d) => {
      out += d;
      if (/listening/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    exited.then((c) => {
      clearTimeout(timer);
      reject(new Error(`${server.id} exited (${c}) before listening\n${errText}`));
    });
  });
  return { child, port, exited, stderr: () => errText };
}

async function stopServer(s) {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  s.child.kill('SIGTERM');
  const t = setTimeout(() => s.child.kill('SIGKILL'), 3000);
  await s.exited;
  clearTimeout(t);
}

// wsbench runs the generator pinned to core 1; its summary goes to our stderr, its JSON line is
// returned.
function wsbench(benchArgs) {
  return new Promise((resolve) => {
    const [cmd, ...rest] = pinned(1, [path.join(bin, 'wsbench'), ...benchArgs]);
    const child = spawn(cmd, rest, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => {
      const line = out.trim().split('\n').pop();
      try {
        resolve(JSON.parse(line));
      } catch {
        resolve({ error: `wsbench exited with ${code} and no report` });
      }
    });
  });
}

// --- build ---

if (!existsSync(path.join(root, 'build/Release/wsbroker.node')) || !existsSync(path.join(root, 'lib/js/index.mjs'))) {
  log('the addon is not built: npm run build');
  run('npm', ['run', 'build']);
}
mkdirSync(bin, { recursive: true });
log('building cmd/wsbench and bench/goserver');
run('go', ['build', '-o', path.join(bin, 'wsbench'), './cmd/wsbench']);
if (servers.some((s) => s.id === 'go')) run('go', ['build', '-o', path.join(bin, 'goserver'), './bench/goserver']);

// --- run ---

const results = [];
const started = Date.now();
for (const sc of scenarios) {
  for (const server of servers) {
    log(`${sc.title} on ${server.name}`);
    let s;
    let rep;
    try {
      s = await startServer(server);
      rep = await wsbench([...sc.args, '-addr', `127.0.0.1:${s.port}`, '-pid', String(s.child.pid), '-label', server.id,
        '-warmup', timing.warmup, '-duration', timing.duration]);
      if (rep.error && s.stderr()) log(`${server.id} stderr:\n${s.stderr()}`);
    } catch (err) {
      rep = { error: String(err.message ?? err) };
      log(rep.error);
    } finally {
      if (s) await stopServer(s);
    }
    results.push({ scenario: sc.id, server: server.id, report: rep });
  }
}

// --- report ---

const fmt = (n, digits = 0) => (n === undefined || n === null || Number.isNaN(n) ? '–' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const ms = (us) => (us === undefined ? '–' : us >= 1000 ? `${fmt(us / 1000, 2)} ms` : `${fmt(us)} µs`);
const cpuModel = os.cpus()[0]?.model ?? 'unknown CPU';
const goVersion = spawnSync('go', ['env', 'GOVERSION'], { encoding: 'utf8' }).stdout.trim();
const wsVersion = JSON.parse(readFileSync(path.join(root, 'node_modules/ws/package.json'), 'utf8')).version;

const lines = [];
lines.push(`## WSBroker benchmark${quick ? ' (--quick)' : ''}`);
lines.push('');
lines.push(`${os.cpus().length} × ${cpuModel}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}, ${goVersion}, ws ${wsVersion}. ` +
  `Server ${pin ? 'pinned to core 0, generator (cmd/wsbench) to core 1' : 'and generator not pinned'}; warm-up ${timing.warmup}, measured ${timing.duration} per run. ` +
  'Echo: one message in flight per connection. Fan-out: one publisher, 8 messages in flight, a message is done when every subscriber has it; the figure is deliveries.');
lines.push('');
lines.push('| scenario | server | msgs/s | server CPU | per server CPU-s | vs ws | generator CPU | p50 | p99 |');
lines.push('|---|---|--:|--:|--:|--:|--:|--:|--:|');
for (const sc of scenarios) {
  const of = (id) => results.find((r) => r.scenario === sc.id && r.server === id)?.report;
  const rate = (r) => (sc.deliveries ? r.deliveries_per_s : r.msgs_per_s);
  const perCPU = (r) => (sc.deliveries ? r.deliveries_per_server_cpu_s : r.msgs_per_server_cpu_s);
  const ws = of('ws');
  for (const server of servers) {
    const r = of(server.id);
    if (!r || r.error) {
      lines.push(`| ${sc.title} | ${server.name} | failed: ${(r?.error ?? 'no report').split('\n')[0].replace(/\|/g, '\\|')} | | | | | | |`);
      continue;
    }
    const ratio = ws && !ws.error && perCPU(ws) ? `${fmt(perCPU(r) / perCPU(ws), 2)}×` : '–';
    const scpu = r.server_cpu_s !== undefined ? `${fmt((100 * r.server_cpu_s) / r.duration_s)}%` : '–';
    lines.push(`| ${sc.title} | ${server.name} | ${fmt(rate(r))}${sc.deliveries ? ' deliveries' : ''} | ${scpu} | ${fmt(perCPU(r))} | ${ratio} | ` +
      `${fmt(100 * r.gen_cpu_util)}% | ${ms(r.latency_us?.p50)} | ${ms(r.latency_us?.p99)} |`);
  }
}
lines.push('');
lines.push('Server and generator CPU are percentages of one core over the measured interval; a generator near 100% may have been the limit ' +
  '(the per server CPU-second figure stays comparable). Latency: echo round trip; fan-out, until the last subscriber has the message.');
console.log(lines.join('\n'));
log(`done in ${Math.round((Date.now() - started) / 1000)} s`);

if (jsonOut) {
  writeFileSync(jsonOut, JSON.stringify({ date: new Date().toISOString(), quick, pinned: pin, cpu: cpuModel, node: process.version, go: goVersion, ws: wsVersion, timing, results }, null, 2) + '\n');
  log(`reports written to ${jsonOut}`);
}
if (results.some((r) => r.report.error)) process.exitCode = 1;
