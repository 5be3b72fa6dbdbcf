// What start({ server }) costs per connection: WSBroker on its own listener and attached to a Node
// http.Server (bench/servers/wsbroker.mjs with ATTACH=1), side by side, rounds alternating:
// connections per server CPU-second (wsbench connect: 32 dialers, each upgrading, then closing
// with a close frame) and RSS per idle connection (wsbench idle, 10,000 connections held 2 s).
//
//   node bench/attach.mjs [--rounds=3]      (after npm run bench has built bench/.bin/wsbench)
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const rounds = Number(process.argv.find((a) => a.startsWith('--rounds='))?.slice(9) ?? 3);
const modes = [['own listener', {}], ['attached http.Server', { ATTACH: '1' }]];
const scenarios = [
  ['connect', ['-scenario', 'connect', '-conns', '32'], (r) => r.msgs_per_server_cpu_s],
  ['idle', ['-scenario', 'idle', '-conns', '10000', '-mem', '-duration', '2s'], (r) => r.server_rss_per_conn_kib],
];

/** A free loopback port. */
function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Runs `cmd` with the hard limit on open files pinned to `core`; resolves with the child and its stdout so far. */
function run(core, cmd, env = {}) {
  const quoted = cmd.map((a) => `'${a}'`).join(' ');
  const child = spawn('/bin/bash', ['-c', `ulimit -n "$(ulimit -Hn)"; exec taskset -c ${core} ${quoted}`], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  return { child, out: () => out, exited: new Promise((resolve) => child.once('exit', resolve)) };
}

const results = {};
for (let round = 0; round < rounds; round++) {
  for (const [mode, env] of round % 2 ? [...modes].reverse() : modes) {
    for (const [name, benchArgs, figure] of scenarios) {
      const port = await freePort();
      const server = run('0', [process.execPath, 'bench/servers/wsbroker.mjs', String(port)], { THREADS: '1', WSBROKER_LOG: 'warn', ...env });
      while (!/listening/.test(server.out())) await new Promise((resolve) => setTimeout(resolve, 50));
      const bench = run('1', [path.join(root, 'bench/.bin/wsbench'), '-q', '-addr', `127.0.0.1:${port}`, '-pid', String(server.child.pid), ...benchArgs]);
      await bench.exited;
      const report = JSON.parse(bench.out().trim().split('\n').pop());
      (results[`${name}|${mode}`] ??= []).push(figure(report));
      server.child.kill('SIGTERM');
      await server.exited;
    }
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`| | ${modes.map(([m]) => m).join(' | ')} |\n|---|---|---|`);
console.log(`| connections per server CPU-second (median of ${rounds}) | ${modes.map(([m]) => Math.round(median(results[`connect|${m}`]))).join(' | ')} |`);
console.log(`| RSS per idle connection, KiB (median of ${rounds}) | ${modes.map(([m]) => median(results[`idle|${m}`]).toFixed(2)).join(' | ')} |`);
console.log(JSON.stringify(results));
