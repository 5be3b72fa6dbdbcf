// The benchmark runner: starts each server in turn, loads it with cmd/wsbench, prints markdown
// tables and writes them, every wsbench report and a PNG chart to --out. The server is pinned to
// core 0 and the generator to core 1 (taskset), and figures are compared per server CPU-second.
//
//   npm run bench                 every scenario (S1–S7, compression and TLS), once each: ~10 minutes
//   npm run bench -- --rounds=3   the same 3 times, alternating servers (the committed run): ~27 minutes
//   npm run bench -- --quick      seven of them, shorter runs (about a minute)
//   options: --only=ws,wsbroker,bun,go,wsbroker-t2,wsbroker-default,sio,sio-3,wsbroker-3,wsbroker-3-nats,wsbroker-3-natsc
//            --scenarios=<ids>   --rounds=<n>   --out=<dir>   --no-pin
//   npm run bench -- --scaling    WSBroker at threads 1, 2, 4 … next to ws, ws under cluster and Bun
//            on echo, fan-out and rooms, the server and the generator on disjoint core sets:
//            --server-cpus=<list> --client-cpus=<list> (taskset lists; default: the first half of
//            the cores and the rest), --only=wsbroker,ws,ws-cluster,bun
// S6 (scale-out) runs servers of several nodes sharing an engine the runner starts itself: one
// redis-server, one nats-server, or 3 nats-servers joined by routes.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'bench', '.bin');

const usage = 'usage: node bench/run.mjs [--quick] [--only=<server ids>] [--scenarios=<scenario ids>] [--rounds=<n>] [--out=<dir>] [--no-pin]\n' +
  '       node bench/run.mjs --scaling [--server-cpus=<cpu list>] [--client-cpus=<cpu list>] [--quick] [--only=<server ids>] [--scenarios=<scenario ids>] [--rounds=<n>] [--out=<dir>]';
const args = process.argv.slice(2);
const opt = (name) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
function usageError(why) {
  console.error(`bench: ${why}\n${usage}`);
  process.exit(2);
}
for (const a of args) {
  if (!/^--(quick|no-pin|scaling|only=.+|scenarios=.+|rounds=[1-9][0-9]*|out=.+|server-cpus=.*|client-cpus=.*)$/.test(a)) usageError(`unknown argument ${a}`);
}
const quick = args.includes('--quick');
const scaling = args.includes('--scaling');
const only = opt('only')?.split(',');
const onlyScenarios = opt('scenarios')?.split(',');
const defaultOut = path.join(root, 'bench', 'results');
const outDir = path.resolve(opt('out') ?? defaultOut);
// benchmark.*: the full set; quick.*: --quick; partial.*: some servers or scenarios only; with
// --scaling: scaling.*, scaling-quick.*, scaling-partial.*.
const subset = quick ? 'quick' : only || onlyScenarios ? 'partial' : undefined;
const outName = scaling ? ['scaling', subset].filter(Boolean).join('-') : subset ?? 'benchmark';

// --- cores ---

// parseCpuList reads taskset's list syntax (0-3,6,8-15:2) into cpu numbers, or undefined if the
// text is not one.
function parseCpuList(text) {
  const cpus = new Set();
  for (const part of text.split(',')) {
    const m = /^(\d+)(?:-(\d+)(?::([1-9]\d*))?)?$/.exec(part);
    if (!m) return undefined;
    const [first, last, stride] = [Number(m[1]), Number(m[2] ?? m[1]), Number(m[3] ?? 1)];
    if (last < first) return undefined;
    for (let cpu = first; cpu <= last; cpu += stride) cpus.add(cpu);
  }
  return [...cpus].sort((a, b) => a - b);
}
// cpuListText writes cpus back in that syntax, runs as ranges (0-3,6).
function cpuListText(cpus) {
  const runs = [];
  for (const cpu of cpus) {
    const last = runs.at(-1);
    if (last && cpu === last[1] + 1) last[1] = cpu;
    else runs.push([cpu, cpu]);
  }
  return runs.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(',');
}
const cpuSet = (list) => ({ list, text: cpuListText(list) });
const coresText = (set) => `${set.list.length === 1 ? 'core' : 'cores'} ${set.text}`;

// cpuSets returns where the server and the generator run: cores 0 and 1 in the full run; with
// --scaling the core sets given, checked against the machine's online cpus (not this runner's own
// affinity: taskset -c may widen it).
function cpuSets() {
  const given = { server: opt('server-cpus'), client: opt('client-cpus') };
  if (!scaling) {
    if (given.server !== undefined || given.client !== undefined) usageError('--server-cpus and --client-cpus go with --scaling');
    return { serverCpus: cpuSet([0]), clientCpus: cpuSet([1]) };
  }
  if (args.includes('--no-pin')) usageError('--scaling pins the server and the generator to their core sets: it does not go with --no-pin');
  const onlineFile = '/sys/devices/system/cpu/online';
  const online = (existsSync(onlineFile) && parseCpuList(readFileSync(onlineFile, 'utf8').trim())) || os.cpus().map((_, i) => i);
  const half = Math.floor(online.length / 2);
  const sets = {};
  for (const [role, fallback] of [['server', online.slice(0, half)], ['client', online.slice(half)]]) {
    const text = given[role];
    const list = text === undefined ? fallback : parseCpuList(text);
    if (!list?.length) usageError(text === undefined ? `--scaling needs at least 2 cpus, one for the server and one for the generator; the cpus online here: ${cpuListText(online)}` : `--${role}-cpus=${text}: not a cpu list like 0-3 or 0,2,4-7`);
    const missing = list.find((cpu) => !online.includes(cpu));
    if (missing !== undefined) usageError(`--${role}-cpus=${text}: no cpu ${missing} here (the cpus online: ${cpuListText(online)})`);
    sets[role] = cpuSet(list);
  }
  const shared = sets.server.list.find((cpu) => sets.client.list.includes(cpu));
  if (shared !== undefined) usageError(`the server's cpus (${sets.server.text}) and the generator's (${sets.client.text}) share cpu ${shared}: they must be disjoint`);
  return { serverCpus: sets.server, clientCpus: sets.client };
}
const { serverCpus, clientCpus } = cpuSets();

const log = (...m) => console.error('bench:', ...m);

// --- what runs ---

// The bun binary: node_modules/.bin/bun once the package's install script has linked it, else the
// platform package's binary (npm ci --ignore-scripts).
const bunBin = [path.join(root, 'node_modules/.bin/bun'), path.join(root, `node_modules/@oven/bun-${process.platform}-${process.arch}/bin/bun`)]
  .find((p) => spawnSync(p, ['--version']).status === 0);

const node = (file) => (port) => [process.execPath, path.join(root, 'bench/servers', file), String(port)];
// redis-server and nats-server of the Debian packages (make installs them), for the servers of
// several nodes.
const redisBin = ['/usr/bin/redis-server', '/usr/sbin/redis-server'].find(existsSync);
const natsBin = ['/usr/bin/nats-server', '/usr/sbin/nats-server'].find(existsSync);
// The engines a server of several nodes shares, started by the runner before the nodes and pinned
// with them (their CPU is the server's):
//   start(cores, procs): starts its processes, pushing each onto procs as it is up (so that a
//   failure stops those already started), and returns each node's URL (urlOf(node index))
//   outage (S6 scale-outage): 'restart' kills the first process and starts it again on the same
//   ports; 'failover' kills the first node's server for good, and that node moves to another
//   monitored: its processes serve nats-server's monitoring endpoints (the interest check)
//   bin, pkg: the binary (undefined if missing) and its Debian package
const engines = {
  redis: { name: 'redis-server', bin: redisBin, pkg: 'redis-server', outage: 'restart', start: startRedis },
  nats: { name: 'nats-server', bin: natsBin, pkg: 'nats-server', outage: 'restart', monitored: true, start: (cores, procs) => startNats(1, cores, procs) },
  natsCluster: { name: 'a cluster of 3 nats-servers', bin: natsBin, pkg: 'nats-server', outage: 'failover', monitored: true, start: (cores, procs) => startNats(3, cores, procs) },
};
// cores: where the server may run, if not on the server's cores (the generator has its own).
// listedOnly: runs only the scenarios that list it (S6, S7); nodes: processes of the server, each
// on its own port, sharing an engine, whose URL each gets in the environment variable engineEnv.
const allServers = [
  { id: 'ws', name: 'ws', long: 'ws 8 + bufferutil', cmd: node('ws.mjs') },
  { id: 'wsbroker', name: 'WSBroker', long: 'WSBroker, threads: 1', cmd: node('wsbroker.mjs'), env: { THREADS: '1' } },
  { id: 'wsbroker-default', name: 'WSBroker default', long: `WSBroker, start's default threads (${Math.max(os.cpus().length, 4)} here)`, cmd: node('wsbroker.mjs'), env: { THREADS: 'default' }, listedOnly: true },
  { id: 'bun', name: 'Bun', long: 'Bun.serve + topics', cmd: (port) => [bunBin, path.join(root, 'bench/servers/bun.mjs'), String(port)] },
  { id: 'go', name: 'Go core', long: 'the Go core with Go handlers (no JS)', cmd: (port) => [path.join(bin, 'goserver'), '-addr', `127.0.0.1:${port}`] },
  { id: 'wsbroker-t2', name: 'WSBroker t2', long: 'WSBroker, threads: 2, server on cores 0-1 (sharing core 1 with the generator)', cmd: node('wsbroker.mjs'), env: { THREADS: '2' }, cores: '0,1', subset: true },
  { id: 'sio', name: 'Socket.IO', long: 'Socket.IO 4.8, one node, no adapter', cmd: node('socketio.mjs'), proto: 'socketio', listedOnly: true },
  { id: 'sio-3', name: 'Socket.IO 3 nodes', long: 'Socket.IO 4.8, 3 nodes + @socket.io/redis-adapter (node-redis) + redis-server', cmd: node('socketio.mjs'), proto: 'socketio', nodes: 3, engine: engines.redis, engineEnv: 'REDIS_URL', listedOnly: true },
  { id: 'wsbroker-3', name: 'WSBroker 3 nodes, Redis', engineName: 'Redis', long: 'WSBroker, threads: 1, 3 nodes + cluster: { redis } + redis-server', cmd: node('wsbroker.mjs'), env: { THREADS: '1' }, nodes: 3, engine: engines.redis, engineEnv: 'CLUSTER_REDIS', listedOnly: true },
  { id: 'wsbroker-3-nats', name: 'WSBroker 3 nodes, NATS', engineName: 'NATS', long: 'WSBroker, threads: 1, 3 nodes + cluster: { nats } + one nats-server', cmd: node('wsbroker.mjs'), env: { THREADS: '1' }, nodes: 3, engine: engines.nats, engineEnv: 'CLUSTER_NATS', listedOnly: true },
  { id: 'wsbroker-3-natsc', name: 'WSBroker 3 nodes, NATS cluster', engineName: 'NATS cluster', long: 'WSBroker, threads: 1, 3 nodes + cluster: { nats } + 3 nats-servers joined by routes, each node given all three, its own first', cmd: node('wsbroker.mjs'), env: { THREADS: '1' }, nodes: 3, engine: engines.natsCluster, engineEnv: 'CLUSTER_NATS', listedOnly: true },
];
// --scaling: WSBroker with threads 1, 2, 4 … up to the server's cores, and its default for a
// machine of that many cores (js/server.cts: Math.max(cores, 4)); ws and Bun as one process each,
// as their users run them; ws under Node's cluster with a worker per core. family: the id --only
// takes for all of WSBroker's steps; echoOnly: why a server runs S1 (echo) only.
const serverCores = serverCpus.list.length;
const defaultThreads = Math.max(serverCores, 4);
const threadSteps = [];
for (let t = 1; t <= serverCores; t *= 2) threadSteps.push(t);
if (!threadSteps.includes(defaultThreads)) threadSteps.push(defaultThreads);
const serverOf = (id) => allServers.find((s) => s.id === id);
const scalingServers = [
  ...threadSteps.map((t) => ({ ...serverOf('wsbroker'), id: `wsbroker-t${t}`, family: 'wsbroker', name: `WSBroker, threads: ${t}${t === defaultThreads ? ' (default)' : ''}`,
    long: `WSBroker, threads: ${t}`, env: { THREADS: String(t) } })),
  serverOf('ws'),
  { id: 'ws-cluster', name: `ws cluster ×${serverCores}`, long: `ws under Node's cluster module, ${serverCores} worker${serverCores > 1 ? 's' : ''}`,
    cmd: node('ws-cluster.mjs'), env: { WORKERS: String(serverCores) },
    echoOnly: 'not run: plain ws has no fan-out across processes (a worker\'s broadcast reaches only its own connections)' },
  serverOf('bun'),
];
const servers = (scaling ? scalingServers : allServers).filter((s) => !only || only.includes(s.id) || only.includes(s.family));
if (servers.length === 0) usageError(`no server among ${only.join(', ')} (ids: ${[...new Set((scaling ? scalingServers : allServers).map((s) => s.family ?? s.id))].join(', ')})`);
if (servers.some((s) => s.id === 'bun') && !bunBin) {
  console.error('bench: no bun binary: npm install (the bun package is a devDependency)');
  process.exit(1);
}

const timing = quick ? { warmup: '0.5s', duration: '2s' } : { warmup: '1s', duration: '3s' };
const echoRate = 20000; // S1 latency: a rate every server sustains on one core
// Open-loop runs are measured longer: in 3 s at 20,000/s, 600 messages lie above the p99, so one
// 30 ms disturbance of the machine sets it; in 10 s it takes 100 ms.
const openDuration = quick ? timing.duration : '10s';
// An open-loop p99 differs up to 3x from run to run (one disturbance in a run is enough), and
// throughput per server CPU-second 10-15% (more at a noisy hour), enough to move a ratio across a
// target: with --rounds=n the open-loop, throughput and S5 scenarios run n times, alternating
// servers, and the figures are the median. Once by default, so that the whole set takes minutes.
const rounds = Number(opt('rounds') ?? 1);
// S2 latency: broadcasts to 1,000 per second, a rate every server sustains on one core (ws, the
// slowest, delivers ~100,000 per CPU-second).
const fanoutRate = 50;
// S5: 64 KiB messages so that the stalled subscriber gets enough (640 KB/s, 6 MB in the run) to
// overflow the kernel's socket buffers (up to 4 MiB here) within the run.
// Its p99 varies by 2x from run to run, so each of its two runs is made `rounds` times, alternating,
// and the table shows the median and the range.
const stalled = { conns: 1000, size: 65536, rate: 10, backpressure: 1 << 20, duration: quick ? '4s' : '8s', rounds };

// A scenario: group (S1…S5), wsbench arguments, the figure it is compared by, whether the
// threads: 2 run takes part (t2), and server settings (backpressure).
//   figure: msgs | deliveries (per server CPU-second), latency (p99, open loop), memory (idle), stalled
const sizeText = (n) => (n >= 1 << 20 ? `${n / (1 << 20)} MiB` : n >= 1024 ? `${n / 1024} KiB` : `${n} B`);
const echo = (conns, size) => ({
  id: `echo-${conns}-${size}`, group: 'S1', title: `echo, ${conns.toLocaleString('en-US')} conns × ${sizeText(size)}`,
  args: ['-scenario', 'echo', '-conns', String(conns), '-size', String(size)], figure: 'msgs', t2: true, rounds,
});
// Compression and TLS: the same four ways over the wire for each server, as wsbench flags and
// server settings (COMPRESSION, TLS_CERT/TLS_KEY; goserver flags).
const variants = [
  { id: 'plain', name: 'plain' },
  { id: 'deflate', name: 'deflate', deflate: true },
  { id: 'tls', name: 'TLS', tls: true },
  { id: 'tls-deflate', name: 'TLS + deflate', tls: true, deflate: true },
];
const cost = { conns: 100, size: 4096, idleConns: 10000 };
const costScenarios = [
  ...variants.map((v) => ({ id: `cost-echo-${v.id}`, group: 'C', variant: v, figure: 'msgs', title: `4 KiB JSON echo, ${cost.conns} conns, ${v.name}`,
    args: ['-scenario', 'echo', '-conns', String(cost.conns), '-size', String(cost.size)] })),
  ...variants.map((v) => ({ id: `cost-idle-${v.id}`, group: 'C', variant: v, figure: 'memory', title: `${cost.idleConns.toLocaleString('en-US')} idle conns after one 4 KiB echo, ${v.name}`,
    args: ['-scenario', 'idle', '-conns', String(cost.idleConns), '-warm', '-size', String(cost.size), '-mem', '-duration', '2s'] })),
];
const scenarioList = [
  echo(100, 32), echo(100, 512), echo(100, 4096), echo(1000, 32), echo(1000, 512), echo(1000, 4096),
  { id: 'echo-open', group: 'S1', title: `echo, 100 conns × 32 B, open loop at ${echoRate.toLocaleString('en-US')}/s`,
    args: ['-scenario', 'echo', '-conns', '100', '-size', '32', '-rate', String(echoRate), '-duration', openDuration], figure: 'latency', rounds },
  { id: 'fanout-open', group: 'S2', title: `fan-out to 1,000, open loop at ${fanoutRate}/s`,
    args: ['-scenario', 'fanout', '-conns', '1000', '-size', '32', '-rate', String(fanoutRate), '-duration', openDuration], figure: 'latency', rounds },
  { id: 'fanout-1000', group: 'S2', title: 'fan-out to 1,000', args: ['-scenario', 'fanout', '-conns', '1000', '-size', '32'], figure: 'deliveries', t2: true, rounds },
  { id: 'fanout-5000', group: 'S2', title: 'fan-out to 5,000', args: ['-scenario', 'fanout', '-conns', '5000', '-size', '32'], figure: 'deliveries', t2: true, rounds },
  { id: 'rooms-10000', group: 'S2', title: '10,000 conns in rooms of 10', args: ['-scenario', 'rooms', '-conns', '10000', '-room', '10', '-size', '32'], figure: 'deliveries', t2: true, rounds },
  { id: 'idle-10000', group: 'S3', title: '10,000 idle conns', args: ['-scenario', 'idle', '-conns', '10000', '-mem', '-duration', '2s'], figure: 'memory' },
  { id: 'connect', group: 'S4', title: 'connect, 32 dialers', args: ['-scenario', 'connect', '-conns', '32'], figure: 'msgs', t2: true, rounds },
  { id: 'stalled-0', group: 'S5', title: `fan-out to ${stalled.conns.toLocaleString('en-US')} × 64 KiB at ${stalled.rate}/s`, stalledBase: true,
    args: ['-scenario', 'fanout', '-conns', String(stalled.conns), '-size', String(stalled.size), '-rate', String(stalled.rate), '-duration', stalled.duration], figure: 'stalled', backpressure: stalled.backpressure },
  { id: 'stalled-1', group: 'S5', title: 'the same, one more subscriber not reading',
    args: ['-scenario', 'fanout', '-conns', String(stalled.conns), '-size', String(stalled.size), '-rate', String(stalled.rate), '-duration', stalled.duration, '-stalled', '1'], figure: 'stalled', backpressure: stalled.backpressure },
  ...costScenarios,
];
// S6, scale-out: each scenario on servers of 3 nodes sharing an engine and on single nodes with the
// same connections. Subscribers are spread round-robin over the nodes; fanout publishes on the first.
//   nodesUsed: the connections go to the first nodes only (the others serve no client of the run)
//   interestCheck: the nodes without clients must get no channel traffic, and the run shows how
//   outage: the engine's outage (engines above) begins that long after the measured interval
//   starts; a restart comes after the given time (servers with an engine only)
const scaleOut = { outageAfterMs: 1000, outageMs: 2000, outageChannels: 10000 };
const scaleServers = ['wsbroker', 'sio', 'sio-3', 'wsbroker-3', 'wsbroker-3-nats', 'wsbroker-3-natsc'];
const scaleScenarios = [
  { id: 'scale-fanout', title: 'fan-out to 3,000 × 64 B', figure: 'deliveries',
    args: ['-scenario', 'fanout', '-conns', '3000', '-size', '64'] },
  { id: 'scale-rooms', title: '3,000 conns in rooms of 10 spread over the nodes', figure: 'deliveries',
    args: ['-scenario', 'rooms', '-conns', '3000', '-room', '10', '-size', '64'] },
  { id: 'scale-rooms-2of3', title: '1,000 conns in rooms of 2, on 2 of the 3 nodes', figure: 'deliveries', nodesUsed: 2, interestCheck: true,
    args: ['-scenario', 'rooms', '-conns', '1000', '-room', '2', '-size', '64'] },
  { id: 'scale-send', title: 'send to a socket on another node and back, 100 pairs', figure: 'msgs', nodesUsed: 2,
    args: ['-scenario', 'send', '-conns', '200', '-size', '64'] },
  { id: 'scale-outage', title: `fan-out to 3,000 at 10/s, an engine server killed (restarted after ${scaleOut.outageMs / 1000} s if alone), ${scaleOut.outageChannels.toLocaleString('en-US')} more channels per node`, figure: 'outage',
    outage: scaleOut, args: ['-scenario', 'fanout', '-conns', '3000', '-size', '64', '-rate', '10', '-gaps', '-channels', String(scaleOut.outageChannels), '-duration', '6s'] },
].map((sc) => ({ ...sc, group: 'S6', ...(sc.outage ? { servers: scaleServers.filter((id) => allServers.find((s) => s.id === id).engine) } : { servers: scaleServers, rounds }) }));
scenarioList.push(...scaleScenarios);
// S7, one connection's round trips (issue 26): Autobahn|Testsuite's 9.7 (text) and 9.8 (binary)
// sizes and more, 1,000 serial round trips each but at most 5 s of them (a 16 MiB round trip takes
// 0.1 s or more), after a short warm-up of each size; the servers take a 16 MiB payload after "e:".
const roundtrip = { sizes: [0, 16, 64, 256, 1024, 4096, 65536, 1 << 20, 16 << 20], count: 1000, duration: '5s', warmup: '300ms',
  maxPayload: (16 << 20) + 2, servers: ['ws', 'wsbroker', 'wsbroker-default', 'bun', 'go'] };
scenarioList.push(...[false, true].map((binary) => ({
  id: binary ? 'roundtrip-binary' : 'roundtrip', group: 'S7', figure: 'roundtrip', binary, rounds, servers: roundtrip.servers, maxPayload: roundtrip.maxPayload,
  title: binary ? 'binary messages, echoed as they are (Autobahn 9.8)' : 'text messages "e:<payload>", answered <payload> (Autobahn 9.7)',
  args: ['-scenario', 'roundtrip', '-sizes', roundtrip.sizes.join(','), '-count', String(roundtrip.count), '-duration', roundtrip.duration,
    '-warmup', roundtrip.warmup, ...(binary ? ['-binary'] : [])],
})));
const quickIds = ['echo-100-32', 'echo-100-4096', 'echo-open', 'fanout-1000', 'idle-2000', 'connect', 'scale-fanout'];
const idle2000 = { ...scenarioList.find((s) => s.id === 'idle-10000'), id: 'idle-2000', title: '2,000 idle conns', args: ['-scenario', 'idle', '-conns', '2000', '-mem', '-duration', '1s'] };
// --scaling: echo, fan-out and rooms, each a table of its own; ws under cluster runs S1 (echo) only.
const scalingScenarios = scenarioList.filter((s) => ['echo-100-512', 'fanout-1000', 'rooms-10000'].includes(s.id))
  .map((sc) => ({ ...sc, group: 'scaling', servers: scalingServers.filter((s) => !s.echoOnly || sc.group === 'S1').map((s) => s.id) }));
// --scenarios picks from all of them, or from the scaling ones (with --quick: run with its shorter timing).
const pickable = scaling ? scalingScenarios : [...scenarioList, idle2000];
const scenarios = onlyScenarios
  ? pickable.filter((s) => onlyScenarios.includes(s.id))
  : scaling ? scalingScenarios : quick ? [...scenarioList.filter((s) => quickIds.includes(s.id)), idle2000] : scenarioList;
if (onlyScenarios && scenarios.length === 0) {
  console.error(`bench: no scenario among ${onlyScenarios.join(', ')} (ids: ${pickable.map((s) => s.id).join(', ')}${scaling ? '' : `; --quick: ${quickIds.join(', ')}`})`);
  process.exit(2);
}
// S6, S7, the compression and TLS runs (C) and --scaling have sections of their own.
const mainScenarios = scenarios.filter((s) => s.group !== 'C' && s.group !== 'S6' && s.group !== 'S7' && s.group !== 'scaling');
const s6Scenarios = scenarios.filter((s) => s.group === 'S6');
const enginesUsed = new Set(s6Scenarios.flatMap((sc) => sc.servers.map((id) => servers.find((s) => s.id === id)?.engine).filter(Boolean)));
for (const { bin: binary, pkg } of enginesUsed) {
  if (!binary) {
    console.error(`bench: no ${pkg} for the S6 scale-out scenarios: apt-get install ${pkg} (the Debian package; make installs it)`);
    process.exit(1);
  }
}
// Those compared as ratios to ws (the summary and the chart); S5 has a table of its own.
const ratioScenarios = mainScenarios.filter((s) => s.figure !== 'stalled');
// The threads: 2 run: on the S1/S2/S4 throughput scenarios (in --quick, the first only). S6 and S7
// run the servers they list, and the servers listedOnly run nothing else.
const runsOf = (sc) => servers.filter((s) => (sc.servers ? sc.servers.includes(s.id)
  : !s.listedOnly && (!s.subset || (sc.t2 && (!quick || sc.id === 'echo-100-32')))));

// --- helpers ---

const pin = !args.includes('--no-pin') && os.cpus().length >= 2 && spawnSync('taskset', ['-c', serverCpus.text, 'true']).status === 0;
if (!pin && scaling) {
  console.error('bench: --scaling pins the server and the generator with taskset, and taskset -c does not run here: apt-get install util-linux');
  process.exit(1);
}
if (!pin) log('running without taskset pinning (no taskset, fewer than 2 cores, or --no-pin)');
const pinned = (cores, cmd) => (pin ? ['taskset', '-c', cores, ...cmd] : cmd);

function run(cmd, cmdArgs) {
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit' });
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

// The certificate of the TLS runs: self-signed for 127.0.0.1, made once by openssl in a temporary
// directory (removed on exit); wsbench verifies the servers' certificate against it.
let certDir;
function certificate() {
  if (!certDir) {
    certDir = mkdtempSync(path.join(os.tmpdir(), 'wsbroker-bench-cert-'));
    process.on('exit', () => rmSync(certDir, { recursive: true, force: true }));
    execFileSync('/usr/bin/openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout', path.join(certDir, 'key.pem'), '-out', path.join(certDir, 'cert.pem')], { stdio: 'pipe' });
  }
  return { cert: path.join(certDir, 'cert.pem'), key: path.join(certDir, 'key.pem') };
}

// startProcess spawns cmd pinned to cores and resolves once its output matches ready (stdout or
// stderr: nats-server logs on stderr), with that match as readyMatch.
async function startProcess(name, cmd, env, cores, ready) {
  const [file, ...rest] = pinned(cores, cmd);
  const child = spawn(file, rest, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let errText = '';
  child.stderr.on('data', (d) => {
    errText = (errText + d).slice(-4000);
  });
  const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve(sig ?? code)));
  const readyMatch = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not start within 30 s\n${errText}`));
    }, 30_000);
    const check = () => {
      const match = ready.exec(out) ?? ready.exec(errText);
      if (match) {
        clearTimeout(timer);
        resolve(match);
      }
    };
    child.stdout.on('data', (d) => {
      out = (out + d).slice(-4000);
      check();
    });
    child.stderr.on('data', check); // after the listener that appends to errText
    exited.then((c) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${c}) before it was ready\n${errText}`));
    });
  });
  return { child, exited, stderr: () => errText, readyMatch };
}

async function stopProcess(p) {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), 3000);
  await p.exited;
  clearTimeout(t);
}

// startEngineProcess starts a process of an engine; what it is started with is kept, so that
// restartEngineProcess can start it again the same way (same ports), keeping extra (its URL…).
async function startEngineProcess(name, cmd, ready, cores, extra) {
  return { name, cmd, ready, ...extra, ...(await startProcess(name, cmd, process.env, cores, ready)) };
}
const restartEngineProcess = (p, cores) => startEngineProcess(p.name, p.cmd, p.ready, cores, p);

// startRedis starts redis-server on a loopback port, without persistence; every node gets its URL.
async function startRedis(cores, procs) {
  const port = await freePort();
  procs.push(await startEngineProcess('redis-server', [redisBin, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    /Ready to accept connections/, cores, { url: `redis://127.0.0.1:${port}` }));
  return () => procs[0].url;
}

// startNats starts count nats-servers on loopback ports, each with its monitoring endpoints, and
// when there are several joins them by routes into a cluster (resolving once each has a route to
// every other). Node i gets every server's URL, server i mod count's first: it connects to that one
// (the engine keeps the order given) and moves to another if it goes.
async function startNats(count, cores, procs) {
  const ports = [];
  for (let i = 0; i < count; i++) ports.push({ client: await freePort(), monitor: await freePort(), route: await freePort() });
  const routes = ports.map((p) => `nats://127.0.0.1:${p.route}`);
  for (const [i, p] of ports.entries()) {
    const cmd = [natsBin, '-a', '127.0.0.1', '-p', String(p.client), '-m', String(p.monitor)];
    if (count > 1) cmd.push('--cluster', routes[i], '--cluster_name', 'bench', '--routes', routes.filter((_, j) => j !== i).join(','));
    procs.push(await startEngineProcess('nats-server', cmd, /Server is ready/, cores,
      { url: `nats://127.0.0.1:${p.client}`, monitoring: `http://127.0.0.1:${p.monitor}` }));
  }
  if (count > 1) await Promise.all(procs.map((p) => waitRoutes(p, count - 1)));
  return (node) => procs.map((_, j) => procs[(node + j) % count].url).join(',');
}

// monitor reads one of a nats-server's monitoring endpoints (routez, connz?subs=1, …).
async function monitor(p, endpoint) {
  const res = await fetch(`${p.monitoring}/${endpoint}`);
  if (!res.ok) throw new Error(`nats-server ${p.url}: monitoring ${endpoint}: ${res.status}`);
  return res.json();
}

// waitRoutes resolves once the nats-server has routes to n others; routes announce themselves
// only through this endpoint, so it is polled.
async function waitRoutes(p, n) {
  const deadline = Date.now() + 10_000;
  while ((await monitor(p, 'routez')).num_routes < n) {
    if (Date.now() > deadline) throw new Error(`nats-server ${p.url} has fewer than ${n} routes after 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// nodeConnections reads each node's connection from the nats-servers' monitoring (connz): node i's
// is the i-th wsbroker connection taken server by server in order of connection, since the nodes
// start one after another, each connected before it listens, and node i uses server i mod count.
async function nodeConnections(s) {
  const conns = [];
  for (const p of s.engine) conns.push(...(await monitor(p, 'connz?subs=1&sort=cid')).connections.filter((c) => c.name === 'wsbroker'));
  if (conns.length !== s.nodes.length) throw new Error(`the nats-servers have ${conns.length} node connections, not ${s.nodes.length}`);
  return conns;
}

// channelSubjects counts the channel subjects a node's connection subscribes (<prefix>.c.… and
// the hashed <prefix>.%H.…), leaving out its node subject, the control subject and its inbox.
const channelSubjects = (conn) => (conn.subscriptions_list ?? []).filter((subject) => /^wsb\.(c|%H)\./.test(subject)).length;

// engineTraffic starts the interest check of a run on some of the nodes (interestCheck), from the
// nats-servers' monitoring, when the measured interval starts: it reads the channels each node
// subscribes (all its clients are in place then; as they leave, their channels go), and returns
// the function that completes it at the end of the run with the messages sent each node since.
function engineTraffic(s) {
  const atStart = nodeConnections(s).then((conns) => ({ conns }), (error) => ({ error })); // awaited at the end
  return async () => {
    const { conns, error } = await atStart;
    if (error) throw error;
    const atEnd = await nodeConnections(s);
    return conns.map((c, i) => ({ channels: channelSubjects(c), msgs: atEnd[i].out_msgs - c.out_msgs }));
  };
}

// startServer starts a server (pinned): its engine first if it has one, then each of its nodes,
// once listening. The result's pids are the nodes' and then the engine's processes'.
async function startServer(server, sc) {
  const s = { nodes: [], ports: [], engine: [], cores: server.cores ?? serverCpus.text };
  try {
    const urlOf = server.engine && (await server.engine.start(s.cores, s.engine));
    for (let i = 0; i < (server.nodes ?? 1); i++) {
      const node = await startNode(server, sc, s.cores, urlOf && { [server.engineEnv]: urlOf(i) });
      s.nodes.push(node);
      s.ports.push(node.port);
    }
  } catch (err) {
    await stopServer(s);
    throw err;
  }
  s.pids = [...s.nodes.flatMap((node) => node.pids), ...s.engine.map((p) => p.child.pid)];
  s.stderr = () => s.nodes.map((n) => n.stderr()).filter(Boolean).join('\n');
  return s;
}

async function stopServer(s) {
  await Promise.all(s.nodes.map(stopProcess));
  await Promise.all(s.engine.map(stopProcess));
}

// startNode starts one process of a server on cores and resolves once it prints "listening". Its
// pids are its own and its workers' (a server of several processes lists them on that line).
async function startNode(server, sc, cores, engineEnv) {
  const port = await freePort();
  let cmd = server.cmd(port);
  const env = { ...process.env, ...server.env, ...engineEnv };
  if (sc.maxPayload) {
    env.MAX_PAYLOAD = String(sc.maxPayload);
    if (server.id === 'go') cmd = [...cmd, '-max-payload', String(sc.maxPayload)];
  }
  if (sc.backpressure) {
    env.BACKPRESSURE = String(sc.backpressure);
    if (server.id === 'go') cmd = [...cmd, '-backpressure', String(sc.backpressure)];
  }
  if (sc.variant?.deflate) {
    env.COMPRESSION = '1';
    if (server.id === 'go') cmd = [...cmd, '-compression'];
  }
  if (sc.variant?.tls) {
    const { cert, key } = certificate();
    Object.assign(env, { TLS_CERT: cert, TLS_KEY: key });
    if (server.id === 'go') cmd = [...cmd, '-tls-cert', cert, '-tls-key', key];
  }
  const p = await startProcess(server.id, cmd, env, cores, /^listening \S+(?: workers (\d+(?:,\d+)*))?\n/m);
  return { ...p, port, pids: [p.child.pid, ...(p.readyMatch[1]?.split(',').map(Number) ?? [])] };
}

// wsbench runs the generator on its cores; its summary goes to our stderr, its JSON line is returned.
// onMeasuring runs when the measured interval starts.
function wsbench(benchArgs, onMeasuring) {
  return new Promise((resolve) => {
    const [cmd, ...rest] = pinned(clientCpus.text, [path.join(bin, 'wsbench'), ...benchArgs]);
    const child = spawn(cmd, rest, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => {
      process.stderr.write(d);
      if (onMeasuring && /wsbench: measuring/.test(d)) {
        onMeasuring();
        onMeasuring = undefined;
      }
    });
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
mkdirSync(outDir, { recursive: true });
log('building cmd/wsbench, bench/goserver and bench/chart');
for (const cmd of ['cmd/wsbench', 'bench/goserver', 'bench/chart']) run('go', ['build', '-o', path.join(bin, path.basename(cmd)), `./${cmd}`]);

// --- run ---

// The runs in order: each scenario sc.rounds times (default once), S5's pair alternately,
// stalled.rounds times.
const stalledPair = scenarios.filter((sc) => sc.figure === 'stalled');
const roundsOf = (sc) => (sc.figure === 'stalled' ? stalled.rounds : sc.rounds ?? 1);
const runOrder = scenarios.flatMap((sc) => {
  if (sc.figure !== 'stalled') return Array.from({ length: roundsOf(sc) }, (_, round) => ({ sc, round }));
  if (sc !== stalledPair[0]) return []; // runs with the first of the pair
  return Array.from({ length: stalled.rounds }, (_, round) => stalledPair.map((x) => ({ sc: x, round }))).flat();
});

// outage makes the engine's outage (S6 scale-outage): kills its first process (the first node's
// server) and, for an engine that restarts, starts it again on the same ports o.outageMs later.
// The result resolves once that is done.
function outage(s, engine, o) {
  return new Promise((resolve) => setTimeout(() => {
    s.engine[0].child.kill('SIGKILL');
    if (engine.outage !== 'restart') {
      resolve();
      return;
    }
    setTimeout(async () => {
      try {
        s.engine[0] = await restartEngineProcess(s.engine[0], s.cores);
      } catch (err) {
        log(`restarting ${s.engine[0].name}: ${err.message}`);
      }
      resolve();
    }, o.outageMs);
  }, o.outageAfterMs));
}

// A build whose start() rejects the cluster option runs no scenario on a server that needs it.
const notSupported = 'not supported by this build (start rejects options.cluster)';
const clusterRejected = (err) => /unknown option options\.cluster/.test(String(err.message ?? err));
const unsupported = new Set();

const results = [];
const started = Date.now();
for (const { sc, round } of runOrder) {
  for (const server of runsOf(sc)) {
    log(`${sc.group} ${sc.title} on ${server.long}${roundsOf(sc) > 1 ? `, round ${round + 1} of ${roundsOf(sc)}` : ''}`);
    if (unsupported.has(server.id)) {
      log(`${server.id}: ${notSupported}`);
      results.push({ scenario: sc.id, server: server.id, round, report: { error: notSupported } });
      continue;
    }
    let s;
    let rep;
    let restarted;
    let finishInterest;
    let traffic;
    try {
      s = await startServer(server, sc);
      const wire = [...(sc.variant?.tls ? ['-tls', '-cafile', certificate().cert] : []), ...(sc.variant?.deflate ? ['-deflate'] : []),
        ...(server.proto ? ['-proto', server.proto] : [])];
      const addrs = s.ports.slice(0, sc.nodesUsed).map((p) => `127.0.0.1:${p}`);
      rep = await wsbench([...sc.args, ...wire, '-addr', addrs.join(','), '-pid', s.pids.join(','), '-label', server.id,
        ...(sc.args.includes('-warmup') ? [] : ['-warmup', timing.warmup]), ...(sc.args.includes('-duration') ? [] : ['-duration', timing.duration])],
      () => {
        if (sc.outage && server.engine) restarted = outage(s, server.engine, sc.outage);
        if (sc.interestCheck && server.engine?.monitored) finishInterest = engineTraffic(s);
      });
      await restarted;
      if (finishInterest) traffic = await finishInterest().catch((err) => ({ error: String(err.message ?? err) }));
      if (rep.error && s.stderr()) log(`${server.id} stderr:\n${s.stderr()}`);
    } catch (err) {
      if (clusterRejected(err)) {
        unsupported.add(server.id);
        rep = { error: notSupported };
        log(`${server.id}: ${notSupported}`);
      } else {
        rep = { error: String(err.message ?? err) };
        log(rep.error);
      }
    } finally {
      if (s) await stopServer(s);
    }
    results.push({ scenario: sc.id, server: server.id, round, report: rep, ...(traffic && { traffic }) });
  }
}
const elapsed = Math.round((Date.now() - started) / 1000);

// --- figures ---

// Every good report of a server in a scenario (S5's have several rounds), and the first.
const reportsOf = (scId, serverId) =>
  results.filter((x) => x.scenario === scId && x.server === serverId && !x.report.error).map((x) => x.report);
const reportOf = (scId, serverId) => reportsOf(scId, serverId)[0];
// The figure a scenario compares, and whether more is better.
const figureOf = (sc, r) => {
  if (!r) return undefined;
  switch (sc.figure) {
    case 'msgs': return r.msgs_per_server_cpu_s;
    case 'deliveries': return r.deliveries_per_server_cpu_s;
    case 'latency': return sustained(r) ? r.latency_us?.p99 : undefined;
    case 'memory': return r.server_anon_per_conn_kib;
  }
  return undefined;
};
const higherIsBetter = (sc) => sc.figure === 'msgs' || sc.figure === 'deliveries';
// An open-loop run counts only if the server kept up with the rate.
// Open loop: what the server answered (echo) or delivered (fan-out) per second, and what was asked.
const openLoad = (r) => (r.scenario === 'fanout' ? [r.deliveries_per_s, r.rate * r.conns] : [r.msgs_per_s, r.rate]);
const sustained = (r) => !r.rate || openLoad(r)[0] >= 0.95 * openLoad(r)[1];
// ratio: >1 means better than ws whatever the figure (for latency and memory, ws's over the server's).
// A server's figure in a scenario: the median over its rounds.
const figureOfServer = (sc, serverId) => median(reportsOf(sc.id, serverId).map((r) => figureOf(sc, r)));
const ratioOf = (sc, serverId) => {
  const v = figureOfServer(sc, serverId);
  const w = figureOfServer(sc, 'ws');
  if (!v || !w) return undefined;
  return higherIsBetter(sc) ? v / w : w / v;
};

const fmt = (n, digits = 0) => (n === undefined || n === null || Number.isNaN(n) ? '–' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const us = (v) => (v === undefined ? '–' : v >= 1e6 ? `${fmt(v / 1e6, 2)} s` : v >= 1000 ? `${fmt(v / 1000, 2)} ms` : `${fmt(v)} µs`);
const mib = (kib) => (kib ? `${fmt(kib / 1024, 1)} MiB` : '–');
const median = (vs) => {
  const v = vs.filter((x) => typeof x === 'number').sort((x, y) => x - y);
  return v.length ? v[(v.length - 1) >> 1] : undefined; // the lower middle of an even count
};
// spread: the median of several runs' figures, with their range when there are several.
const spread = (vs, show) => {
  const v = vs.filter((x) => typeof x === 'number');
  if (v.length <= 1) return v.length ? show(v[0]) : '';
  return `${show(median(v))} (${show(Math.min(...v))}–${show(Math.max(...v))})`;
};
const cell = (s) => String(s).replace(/\|/g, '\\|').split('\n')[0];
const failed = (scId, serverId) => {
  const runs = results.filter((x) => x.scenario === scId && x.server === serverId);
  if (runs.length === 0) return '–';
  const bad = runs.filter((x) => x.report.error);
  if (bad.length && bad.every((x) => x.report.error === notSupported)) return notSupported;
  if (bad.length) return `failed${runs.length > 1 ? ` in ${bad.length} of ${runs.length} runs` : ''}: ${cell(bad[0].report.error).slice(0, 80)}`;
  const slow = runs.find((x) => !sustained(x.report));
  if (slow) return `did not sustain the rate (${fmt(openLoad(slow.report)[0])}/s${runs.length > 1 ? ` in round ${slow.round + 1}` : ''})`;
  return undefined;
};

const cpuModel = os.cpus()[0]?.model ?? 'unknown CPU';
const versions = {
  node: process.version,
  go: spawnSync('go', ['env', 'GOVERSION'], { encoding: 'utf8' }).stdout.trim(),
  ws: JSON.parse(readFileSync(path.join(root, 'node_modules/ws/package.json'), 'utf8')).version,
  bun: bunBin ? spawnSync(bunBin, ['--version'], { encoding: 'utf8' }).stdout.trim() : undefined,
};
// The servers of S1–S5 and the compression and TLS runs; S6, S7 and --scaling have their own.
const shown = servers.filter((s) => scenarios.some((sc) => sc.group !== 'S6' && sc.group !== 'S7' && sc.group !== 'scaling' && runsOf(sc).includes(s)));
const others = shown.filter((s) => s.id !== 'ws');

// A --scaling run is named by its core sets, as "1+1-core run: server on core 0, generator on core 1".
const scalingRunName = `${serverCores}+${clientCpus.list.length}-core run: server on ${coresText(serverCpus)}, generator on ${coresText(clientCpus)}`;
const L = [];
L.push(`## WSBroker ${scaling ? `scaling with cores${quick ? ' (--quick)' : ''}, ${scalingRunName}` : `benchmark${quick ? ' (--quick)' : ''}`}, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`);
L.push('');
L.push(`${os.cpus().length} × ${cpuModel}, Linux ${os.release()}; Node ${versions.node}, ${versions.go}, ws ${versions.ws}, Bun ${versions.bun ?? '–'}. ` +
  (pin ? `Server pinned to ${coresText(serverCpus)} (taskset -c ${serverCpus.text}), generator (cmd/wsbench) to ${coresText(clientCpus)}` : 'Server and generator not pinned') +
  (shown.some((s) => s.cores) ? '; WSBroker t2 (threads: 2) pinned to cores 0-1, so it shares core 1 with the generator' : '') +
  `. Warm-up ${timing.warmup}, ${timing.duration} measured per run${scaling ? '' : ` (open loop ${openDuration}, S5 ${stalled.duration})`}; every run is a fresh server process. ${elapsed} s in all.`);
if (ratioScenarios.length) {
  L.push('');
  L.push('### Summary: relative to ws in the same run (higher is better)');
  L.push('');
  L.push(`Per server CPU-second for throughput (S1, S2, S4); ws's p99 over the server's for latency (S1 open loop); ws's anonymous RSS per idle connection over the server's (S3: the process's own memory, without the executable's and libraries' pages it faults in as it runs more of their code). ws's own figure is in its column.${rounds > 1 ? ` Throughput and latency figures are the median of ${rounds} rounds, alternating servers (every round is in "Each run").` : ''}`);
  L.push('');
  L.push(`| | scenario | compared by | ${shown.map((s) => s.name).join(' | ')} |`);
  L.push(`|---|---|---|${shown.map(() => '--:').join('|')}|`);
}
const figureName = { msgs: 'msgs per server CPU-s', deliveries: 'deliveries per server CPU-s', latency: 'p99', memory: 'anonymous RSS per conn' };
const figureText = (sc, v) => (sc.figure === 'latency' ? us(v) : sc.figure === 'memory' ? `${fmt(v, 2)} KiB` : fmt(v));
for (const sc of ratioScenarios) {
  const row = shown.map((s) => {
    const why = failed(sc.id, s.id);
    if (why) return why;
    const v = figureOfServer(sc, s.id);
    if (s.id === 'ws') return figureText(sc, v);
    const ratio = ratioOf(sc, s.id);
    return `**${fmt(ratio, 2)}×** (${figureText(sc, v)})`;
  });
  L.push(`| ${sc.group} | ${sc.id === 'connect' ? 'connect (open handler checks a header, sets a token)' : sc.title} | ${sc.id === 'connect' ? 'conns per server CPU-s' : figureName[sc.figure]} | ${row.join(' | ')} |`);
}

const summaryEnd = L.length;

// Throughput and latency, run by run.
const loadScenarios = mainScenarios.filter((s) => s.figure === 'msgs' || s.figure === 'deliveries' || s.figure === 'latency');
if (loadScenarios.length) {
  L.push('');
  L.push('### Each run');
  L.push('');
  L.push('Rates per second of wall time; CPU as % of one core over the measured interval. Latency: echo round trip (open loop: from the scheduled send time); fan-out, until the last subscriber has the message ("time until all received"); rooms, until the reply; connect, connect + upgrade. A generator near 100% may have been the limit (the per server CPU-second figure stays comparable).');
  L.push('');
  L.push('| scenario | server | per second | server CPU | per server CPU-s | generator CPU | p50 | p99 | p99.9 |');
  L.push('|---|---|--:|--:|--:|--:|--:|--:|--:|');
  for (const sc of loadScenarios) {
    for (const s of runsOf(sc)) {
      const why = failed(sc.id, s.id);
      const reps = reportsOf(sc.id, s.id);
      if (why && !reps.length) {
        L.push(`| ${sc.title} | ${s.name} | ${why} | | | | | | |`);
        continue;
      }
      reps.forEach((r, i) => {
        const title = reps.length > 1 ? `${sc.title}, round ${i + 1}` : sc.title;
        const deliveries = r.scenario === 'fanout' || r.scenario === 'rooms';
        const rate = deliveries ? `${fmt(r.deliveries_per_s)} deliveries` : sc.id === 'connect' ? `${fmt(r.msgs_per_s)} conns` : `${fmt(r.msgs_per_s)} msgs`;
        const per = deliveries ? r.deliveries_per_server_cpu_s : r.msgs_per_server_cpu_s;
        const scpu = r.server_cpu_s !== undefined ? `${fmt((100 * r.server_cpu_s) / r.duration_s)}%` : '–';
        L.push(`| ${title} | ${s.name} | ${rate}${why ? ` (${why})` : ''} | ${scpu} | ${fmt(per)} | ${fmt(100 * r.gen_cpu_util)}% | ` +
          `${us(r.latency_us?.p50)} | ${us(r.latency_us?.p99)} | ${us(r.latency_us?.p999)} |`);
      });
    }
  }
}

// Where the bytes of an idle connection go: a table of rows [label, scenario, server].
const memoryNote = 'RSS from /proc (VmRSS; anonymous: RssAnon, without the pages of the executable and libraries, which a process faults in when it first runs their code, not per connection); the rest as each server reports it when asked ("m:"): the Go runtime (runtime/metrics: heap in use, goroutine stacks, all it holds) and the JavaScript heap (committed; WSBroker: the handlers\' worker isolate) and what JS holds outside it (buffers). Go mapped covers Go heap and stacks.';
function memoryTable(first, rows) {
  const kib = (b) => (b === undefined ? '–' : `${fmt(b / 1024, 2)} KiB`);
  const T = [`| ${first} | RSS per conn | anonymous RSS per conn | Go heap | goroutine stacks | Go mapped | goroutines per conn | JS heap | JS external | RSS at the end |`,
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|'];
  for (const [label, scId, serverId] of rows) {
    const r = reportOf(scId, serverId);
    if (!r) {
      T.push(`| ${label} | ${failed(scId, serverId)} | | | | | | | | |`);
      continue;
    }
    const m = r.server_mem_per_conn ?? {};
    T.push(`| ${label} | ${fmt(r.server_rss_per_conn_kib, 2)} KiB | ${r.server_anon_per_conn_kib === undefined ? '–' : `${fmt(r.server_anon_per_conn_kib, 2)} KiB`} | ${kib(m.goHeap)} | ${kib(m.goStacks)} | ${kib(m.goMapped)} | ${fmt(m.goroutines, 2)} | ${kib(m.jsHeap)} | ${kib(m.jsExternal)} | ${mib(r.server_rss_kib)} |`);
  }
  return T;
}

// S3: where the bytes of an idle connection go.
for (const sc of mainScenarios.filter((s) => s.figure === 'memory')) {
  L.push('');
  L.push(`### S3 memory: ${sc.title}`);
  L.push('');
  L.push(`Per connection, from the difference between one connection open and all of them, after holding them idle. ${memoryNote}`);
  L.push('');
  L.push(...memoryTable('server', runsOf(sc).map((s) => [s.name, sc.id, s.id])));
}

// S5: one subscriber that stops reading.
const base5 = scenarios.find((s) => s.id === 'stalled-0');
const stall5 = scenarios.find((s) => s.id === 'stalled-1');
if (base5 && stall5) {
  L.push('');
  L.push(`### S5: a subscriber that stops reading (fan-out to ${stalled.conns.toLocaleString('en-US')} × 64 KiB at ${stalled.rate}/s, ${stalled.duration} measured)`);
  L.push('');
  L.push(`The same open-loop fan-out twice: as it is, and with one more subscriber that never reads (its receive buffer is 4 KiB, so what is sent to it piles up in the server). The servers that have a backpressure limit run with ${stalled.backpressure / 1024} KiB (WSBroker maxBackpressure, Bun backpressureLimit + closeOnBackpressureLimit, the Go core MaxBackpressure); ws has none. p99: until the last reading subscriber has the message.` +
    (stalled.rounds > 1 ? ` Each of the two runs is made ${stalled.rounds} times, alternating: the figures are the median, the p99s with their range in brackets.` : ''));
  L.push('');
  L.push('| server | p99 | p99, one stalled | RSS peak | RSS peak, one stalled | peak growth over the interval, one stalled | the stalled one closed by the server |');
  L.push('|---|--:|--:|--:|--:|--:|--:|');
  for (const s of shown.filter((x) => runsOf(base5).includes(x))) {
    const a = reportsOf(base5.id, s.id);
    const b = reportsOf(stall5.id, s.id);
    const note = (scId) => failed(scId, s.id) ?? '';
    const p99 = (reps) => spread(reps.map((r) => r.latency_us?.p99), us);
    const closed = b.filter((r) => r.stalled_closed).length;
    L.push(`| ${s.name} | ${p99(a)} ${note(base5.id)} | ${p99(b)} ${note(stall5.id)} | ${mib(median(a.map((r) => r.server_rss_peak_kib)))} | ` +
      `${mib(median(b.map((r) => r.server_rss_peak_kib)))} | ${mib(median(b.map((r) => r.server_rss_peak_kib - r.server_rss_start_kib)))} | ` +
      `${b.length === 0 || b[0].stalled_closed === undefined ? '–' : closed === b.length ? 'yes' : closed === 0 ? 'no' : `${closed} of ${b.length} runs`} |`);
  }
}
if (shown.length) {
  L.push('');
  L.push('Servers: ' + shown.map((s) => `${s.name}: ${s.long}`).join('; ') + '.');
}

// S6: servers of 3 nodes sharing an engine, next to single nodes with the same connections.
const s6Shown = servers.filter((s) => s6Scenarios.some((sc) => runsOf(sc).includes(s)));
const s6Load = s6Scenarios.filter((sc) => sc.figure !== 'outage');
if (s6Shown.length) {
  const pct = (cpu, r) => `${fmt((100 * cpu) / r.duration_s)}%`;
  const ms = (v) => (v === undefined ? '–' : us(v * 1000));
  const figure6 = (sc, id) => figureOfServer(sc, id);
  const ratio6 = (sc, a, b) => (figure6(sc, a) && figure6(sc, b) ? `**${fmt(figure6(sc, a) / figure6(sc, b), 2)}×**` : '–');
  // The WSBroker servers of several nodes, one per engine: the ratio table has a column for each.
  const clustered = s6Shown.filter((s) => s.engineName);
  L.push('');
  L.push('### S6 scale-out: 3 nodes sharing an engine');
  L.push('');
  L.push('A server of 3 nodes is 3 processes, each on its own port, and the engine the runner starts for it on loopback ports: one redis-server (no persistence), one nats-server, or 3 nats-servers joined by routes into a cluster (node i given all three URLs, that of server i first, which it connects to); the nodes and the engine share core 0' +
    (pin ? ' (taskset -c 0)' : '') + ', as the single-node servers do, and the generator has core 1. Server CPU is the sum over every node and engine process. ' +
    'Connections go round-robin over the nodes (in the scenarios "on 2 of the 3 nodes", over the first two: the third serves no client, so what it spends is what the engine sends it); a fan-out publishes on the first node. ' +
    'Targets (issue 22): fan-out ≥ 0.8× single-node WSBroker and ≥ 10× Socket.IO 3 nodes per server CPU-second; rooms ≥ 0.5× single node; the node without members of "rooms on 2 of the 3 nodes" gets no engine traffic.' +
    (rounds > 1 ? ` Each figure below the outage's is the median of ${rounds} rounds, alternating servers (every round is in "Each run").` : ''));
  if (s6Load.length) {
    L.push('');
    L.push(`| scenario | compared by | ${s6Shown.map((s) => s.name).join(' | ')} |`);
    L.push(`|---|---|${s6Shown.map(() => '--:').join('|')}|`);
    for (const sc of s6Load) {
      const row = s6Shown.map((s) => {
        if (!runsOf(sc).includes(s)) return '–';
        const r = reportOf(sc.id, s.id);
        return r ? `${fmt(figure6(sc, s.id))} (p99 ${us(r.latency_us?.p99)})` : failed(sc.id, s.id);
      });
      const name = sc.figure === 'msgs' ? 'round trips per server CPU-s' : figureName[sc.figure];
      L.push(`| ${sc.title} | ${name} | ${row.join(' | ')} |`);
    }
    if (clustered.length) {
      L.push('');
      L.push('WSBroker on 3 nodes, by engine: its figure over single-node WSBroker\'s / over Socket.IO 3 nodes\'.');
      L.push('');
      L.push(`| scenario | ${clustered.map((s) => s.engineName).join(' | ')} |`);
      L.push(`|---|${clustered.map(() => '--:').join('|')}|`);
      for (const sc of s6Load) L.push(`| ${sc.title} | ${clustered.map((s) => `${ratio6(sc, s.id, 'wsbroker')} / ${ratio6(sc, s.id, 'sio-3')}`).join(' | ')} |`);
    }
    L.push('');
    L.push('Each run: CPU as % of one core over the measured interval, by process: the nodes in order, then the engine\'s processes (redis-server, or the nats-servers in the order of the nodes using them).');
    L.push('');
    L.push('| scenario | server | per second | server CPU | by process | per server CPU-s | generator CPU | p50 | p99 |');
    L.push('|---|---|--:|--:|---|--:|--:|--:|--:|');
    for (const sc of s6Load) {
      for (const s of runsOf(sc)) {
        for (const r of reportsOf(sc.id, s.id)) {
          const rate = sc.figure === 'msgs' ? `${fmt(r.msgs_per_s)} round trips` : `${fmt(r.deliveries_per_s)} deliveries`;
          const per = sc.figure === 'msgs' ? r.msgs_per_server_cpu_s : r.deliveries_per_server_cpu_s;
          const byPid = r.server_cpu_by_pid_s?.map((c) => pct(c, r)).join(', ') ?? '–';
          L.push(`| ${sc.title} | ${s.name} | ${rate} | ${r.server_cpu_s === undefined ? '–' : pct(r.server_cpu_s, r)} | ${byPid} | ${fmt(per)} | ${fmt(100 * r.gen_cpu_util)}% | ${us(r.latency_us?.p50)} | ${us(r.latency_us?.p99)} |`);
        }
        if (!reportOf(sc.id, s.id)) L.push(`| ${sc.title} | ${s.name} | ${failed(sc.id, s.id)} | | | | | | |`);
      }
    }
    // The interest check: the node without members must get no channel traffic from the engine.
    for (const sc of s6Load.filter((x) => x.interestCheck)) {
      const checked = runsOf(sc).filter((s) => s.nodes > sc.nodesUsed);
      if (!checked.length) continue;
      L.push('');
      L.push(`Interest, "${sc.title}": the nodes past the first ${sc.nodesUsed} serve no client and must get no channel traffic from the engine. ` +
        'With Redis that is checked by their CPU (a node decoding what it is sent would be busy). With NATS also by the nats-servers\' monitoring (connz): ' +
        'for each node\'s connection, the channels it subscribes when the measured interval starts (its subjects wsb.c.… and wsb.%H.…), and the messages the server sent it from then to the end of the run, heartbeats of the other nodes included.');
      L.push('');
      L.push('| server | channels subscribed, by node | messages sent by the engine, by node | check |');
      L.push('|---|--:|--:|---|');
      for (const s of checked) {
        const runs = results.filter((x) => x.scenario === sc.id && x.server === s.id && !x.report.error);
        if (!runs.length) L.push(`| ${s.name} | ${failed(sc.id, s.id)} | | |`);
        for (const { report: r, traffic } of runs) {
          const cpu = `CPU of the nodes without clients: ${r.server_cpu_by_pid_s?.slice(sc.nodesUsed, s.nodes).map((c) => pct(c, r)).join(', ') ?? '–'}`;
          if (!traffic) {
            L.push(`| ${s.name} | – | – | ${cpu} |`);
          } else if (traffic.error) {
            L.push(`| ${s.name} | ${cell(traffic.error)} | | ${cpu} |`);
          } else {
            const holds = traffic.slice(sc.nodesUsed).every((t) => t.channels === 0);
            L.push(`| ${s.name} | ${traffic.map((t) => fmt(t.channels)).join(', ')} | ${traffic.map((t) => fmt(t.msgs)).join(', ')} | ` +
              `${holds ? 'holds' : '**fails**'}: ${holds ? 'no' : 'a'} channel subscribed by the nodes without clients; ${cpu} |`);
          }
        }
      }
    }
  }
  for (const sc of s6Scenarios.filter((x) => x.figure === 'outage')) {
    const o = sc.outage;
    L.push('');
    L.push(`#### ${sc.title}`);
    L.push('');
    L.push(`Each node also holds ${o.outageChannels.toLocaleString('en-US')} other channels (one more connection per node), which it must subscribe again after losing its engine connection. ` +
      `One redis-server or nats-server is killed ${o.outageAfterMs / 1000} s into the measured interval and started again on its ports ${o.outageMs / 1000} s later; ` +
      'in the NATS cluster the first node\'s server (the publisher\'s) is killed at the same time and not restarted: that node moves to another server of the cluster. ' +
      'Longest time without a delivery on a node over the run; "resumed" is the other nodes\' longest gap less the time the engine was away (the restart\'s wait; none in the cluster, which stays up): how long after the engine was back their deliveries came again. Lost: messages published at least 1 s before the end that did not reach every subscriber (their missing deliveries in brackets).');
    L.push('');
    L.push('| server | what was killed | first node (the publisher\'s): longest gap | other nodes: longest gap | resumed | lost |');
    L.push('|---|---|--:|--:|--:|--:|');
    for (const s of runsOf(sc)) {
      const killed = s.engine.outage === 'restart' ? `${s.engine.name}, restarted after ${o.outageMs / 1000} s` : 'the first node\'s nats-server, for good';
      const r = reportOf(sc.id, s.id);
      if (!r) {
        L.push(`| ${s.name} | ${killed} | ${failed(sc.id, s.id)} | | | |`);
        continue;
      }
      const [local, ...remote] = r.node_gap_ms ?? [];
      const far = remote.length ? Math.max(...remote) : undefined;
      const away = s.engine.outage === 'restart' ? o.outageMs : 0;
      L.push(`| ${s.name} | ${killed} | ${ms(local)} | ${ms(far)} | ${far === undefined ? '–' : ms(Math.max(0, far - away))} | ${fmt(r.lost_msgs)} (${fmt(r.lost_deliveries ?? 0)}) |`);
    }
  }
  L.push('');
  L.push('S6 servers: ' + s6Shown.map((s) => `${s.name}: ${s.long}`).join('; ') + '.');
}

// --scaling: a table per scenario, every server at each step next to ws.
const scalingShown = scenarios.filter((s) => s.group === 'scaling');
if (scalingShown.length) {
  const clientCores = clientCpus.list.length;
  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  L.push('');
  L.push(`WSBroker with threads: ${threadSteps.join(', ')}: powers of two up to the server's cores, and ${defaultThreads}, its default on a machine of ${plural(serverCores, 'core')} (Math.max(cores, 4)). ` +
    `ws and Bun as one process each, as their users run them; ws under Node's cluster module with ${plural(serverCores, 'worker')} (one per server core), in echo only: plain ws has no fan-out across processes, so a broadcast would reach only the connections of the worker that got it. ` +
    `Every process and thread of a server runs on the server's cores; the Go runtime sizes GOMAXPROCS by that affinity (${serverCores} in WSBroker, plus one per worker thread once its threads outnumber the cores; ${clientCores} in the generator). ` +
    'Rates per second of wall time; server CPU as % of one core over the measured interval (200% is two cores busy); CPU per message is one over the messages per server CPU-second; "× ws" is the ratio to ws in the same run. ' +
    `A generator near ${100 * clientCores}% was the limit of the rate, not the server.` +
    (rounds > 1 ? ` Each figure is the median of ${rounds} rounds, alternating servers.` : ''));
  for (const sc of scalingShown) {
    const [many, one] = sc.figure === 'msgs' ? ['msgs', 'msg'] : ['deliveries', 'delivery'];
    const rateOf = (r) => (sc.figure === 'msgs' ? r.msgs_per_s : r.deliveries_per_s);
    const medianOf = (serverId, value) => median(reportsOf(sc.id, serverId).map(value));
    const ratio = (v) => (v === undefined ? '–' : `${fmt(v, 2)}×`);
    const wsRate = medianOf('ws', rateOf);
    L.push('');
    L.push(`### ${sc.title}`);
    L.push('');
    L.push(`| server | ${many}/s | server CPU | server CPU per ${one} | ${many} per server CPU-s | × ws, ${many}/s | × ws, per server CPU-s | generator CPU |`);
    L.push('|---|--:|--:|--:|--:|--:|--:|--:|');
    for (const s of servers) {
      const why = runsOf(sc).includes(s) ? failed(sc.id, s.id) : s.echoOnly;
      if (why) {
        L.push(`| ${s.name} | ${why} | | | | | | |`);
        continue;
      }
      const rate = medianOf(s.id, rateOf);
      const perCpu = figureOfServer(sc, s.id);
      L.push(`| ${s.name} | ${fmt(rate)} | ${fmt(medianOf(s.id, (r) => (100 * r.server_cpu_s) / r.duration_s))}% | ${perCpu ? `${fmt(1e6 / perCpu, 2)} µs` : '–'} | ${fmt(perCpu)} | ` +
        `${ratio(rate && wsRate ? rate / wsRate : undefined)} | ${ratio(ratioOf(sc, s.id))} | ${fmt(medianOf(s.id, (r) => 100 * r.gen_cpu_util))}% |`);
    }
  }
}

// Compression and TLS: each server against itself plain, side by side.
const C = [];
const costEcho = variants.map((v) => scenarios.find((s) => s.id === `cost-echo-${v.id}`));
const costIdle = variants.map((v) => scenarios.find((s) => s.id === `cost-idle-${v.id}`));
const costServers = shown.filter((s) => [...costEcho, ...costIdle].some((sc) => sc && runsOf(sc).includes(s)));
if (costServers.length) {
  // cells: a figure per variant for one server, with its ratio to the same server plain.
  const cells = (scs, server, value, text) => {
    const plain = value(reportOf(scs[0]?.id, server.id));
    return scs.map((sc) => {
      if (!sc) return '–';
      const why = failed(sc.id, server.id);
      if (why) return why;
      const v = value(reportOf(sc.id, server.id));
      return sc === scs[0] || !plain || v === undefined ? text(v) : `${text(v)} (${fmt(v / plain, 2)}×)`;
    });
  };
  const head = `| server | ${variants.map((v) => v.name).join(' | ')} |`;
  const rule = `|---|${variants.map(() => '--:').join('|')}|`;
  C.push('### Compression and TLS');
  C.push('');
  C.push(`Each server four ways: plain, with permessage-deflate (offered by wsbench without context takeover either way; every message it sends is compressed, a server that declines fails the run), over TLS (wss://: ECDSA P-256 certificate, a full handshake per connection, no session resumption) and both. The message is ${cost.size / 1024} KiB of chat-like JSON (user, room, timestamp, words; compresses to about a quarter). In brackets: relative to the same server plain.`);
  if (costEcho.some(Boolean)) {
    C.push('');
    C.push(`#### Server CPU per echo: ${cost.size / 1024} KiB JSON, ${cost.conns} connections, closed loop (lower is better)`);
    C.push('');
    C.push('One over the echoes per server CPU-second: the server\'s CPU time for receiving one message and sending it back, compression, TLS and the loopback share of TCP included.');
    C.push('');
    C.push(head, rule);
    const perEcho = (r) => (r?.msgs_per_server_cpu_s ? 1e6 / r.msgs_per_server_cpu_s : undefined);
    for (const s of costServers) C.push(`| ${s.name} | ${cells(costEcho, s, perEcho, (v) => (v === undefined ? '–' : `${fmt(v, 1)} µs`)).join(' | ')} |`);
    C.push('');
    C.push('| way | server | echoes per second | server CPU | echoes per server CPU-s | generator CPU | answers compressed | bytes per answer on the wire | p50 | p99 |');
    C.push('|---|---|--:|--:|--:|--:|--:|--:|--:|--:|');
    for (const sc of costEcho.filter(Boolean)) {
      for (const s of costServers) {
        const r = reportOf(sc.id, s.id);
        if (!r) {
          C.push(`| ${sc.variant.name} | ${s.name} | ${failed(sc.id, s.id)} | | | | | | | |`);
          continue;
        }
        const z = r.compressed_msgs ?? 0;
        const bytes = z ? r.compressed_bytes / z : cost.size;
        C.push(`| ${sc.variant.name} | ${s.name} | ${fmt(r.msgs_per_s)} | ${fmt((100 * r.server_cpu_s) / r.duration_s)}% | ${fmt(r.msgs_per_server_cpu_s)} | ${fmt(100 * r.gen_cpu_util)}% | ` +
          `${fmt((100 * z) / Math.max(r.deliveries, 1))}% | ${fmt(bytes)} B | ${us(r.latency_us?.p50)} | ${us(r.latency_us?.p99)} |`);
      }
    }
  }
  if (costIdle.some(Boolean)) {
    C.push('');
    C.push(`#### Memory per idle connection: ${cost.idleConns.toLocaleString('en-US')} connections, each after one ${cost.size / 1024} KiB echo`);
    C.push('');
    C.push('Anonymous RSS per connection: the difference between one connection open and all of them (each has exchanged one message, so that what a server keeps after a message counts), after holding them idle 2 s.');
    C.push('');
    C.push(head, rule);
    for (const s of costServers) C.push(`| ${s.name} | ${cells(costIdle, s, (r) => r?.server_anon_per_conn_kib, (v) => (v === undefined ? '–' : `${fmt(v, 2)} KiB`)).join(' | ')} |`);
    C.push('');
    C.push(`Where those bytes go. ${memoryNote}`);
    C.push('');
    C.push(...memoryTable('way, server', costIdle.filter(Boolean).flatMap((sc) => costServers.map((s) => [`${sc.variant.name}, ${s.name}`, sc.id, s.id]))));
  }
}
// S7: one connection's round trips, size by size, each server's figures the medians over its rounds.
const R = [];
const rtScenarios = scenarios.filter((sc) => sc.group === 'S7');
if (rtScenarios.length) {
  R.push('### S7: one connection\'s round trips');
  R.push('');
  R.push(`One connection sends a message and waits for its echo before the next: ${roundtrip.count.toLocaleString('en-US')} round trips of each size in turn, at most ${roundtrip.duration} of them (the last column: the fewest any server made), after ${roundtrip.warmup} of that size not counted. ` +
    'Each cell: median / p99 round trip, the median as a multiple of ws\'s (lower is better), and the server\'s CPU per round trip (its threads\' time from schedstat; the loopback share of TCP included)' +
    `${rounds > 1 ? `; medians of ${rounds} rounds, alternating servers` : ''}. Servers: ${roundtrip.servers.map((id) => allServers.find((s) => s.id === id)).map((s) => `${s.name}: ${s.long}`).join('; ')}.`);
  for (const sc of rtScenarios) {
    const rtShown = runsOf(sc);
    // A size's figures from every run, those of a run that failed at a later size included.
    const sizeOf = (serverId, size) => results.filter((x) => x.scenario === sc.id && x.server === serverId)
      .map((x) => x.report.sizes?.find((y) => y.size === size)).filter((y) => y?.latency_us);
    const p50 = (serverId, size) => median(sizeOf(serverId, size).map((y) => y.latency_us.p50));
    R.push('', `#### ${sc.title}`, '');
    R.push(`| size | ${rtShown.map((s) => s.name).join(' | ')} | round trips |`);
    R.push(`|--:|${rtShown.map(() => '--:').join('|')}|--:|`);
    for (const size of roundtrip.sizes) {
      const row = rtShown.map((s) => {
        const ys = sizeOf(s.id, size);
        if (!ys.length) return failed(sc.id, s.id) ?? '–';
        const ratio = s.id !== 'ws' && p50('ws', size) ? ` **${fmt(p50(s.id, size) / p50('ws', size), 2)}×**` : '';
        return `${us(p50(s.id, size))} / ${us(median(ys.map((y) => y.latency_us.p99)))}${ratio}, CPU ${fmt(median(ys.map((y) => y.server_cpu_us)), 1)} µs`;
      });
      const counts = rtShown.flatMap((s) => sizeOf(s.id, size).map((y) => y.count));
      R.push(`| ${sizeText(size)} | ${row.join(' | ')} | ${counts.length ? fmt(Math.min(...counts)) : '–'} |`);
    }
  }
}
const markdown = [L, C, R].filter((x) => x.length).map((x) => x.join('\n') + '\n').join('\n');
console.log(markdown);

// --- files ---

const chart = {
  title: `WSBroker benchmark${quick ? ' (--quick)' : ''}: relative to ws in the same run, higher is better`,
  subtitle: 'throughput per server CPU-second; open-loop p99 and anonymous RSS per idle connection as ws / server',
  baseline: 'ws',
  clip: 10, // a latency ratio can be far larger than the rest: it would flatten every other bar
  series: others.map((s) => s.name),
  groups: ratioScenarios.map((sc) => ({
    label: `${sc.group} ${sc.id}`,
    values: others.map((s) => ratioOf(sc, s.id) ?? null),
  })),
};
const files = { md: path.join(outDir, `${outName}.md`), json: path.join(outDir, `${outName}.json`), png: path.join(outDir, `${outName}.png`) };
writeFileSync(files.md, markdown);
writeFileSync(files.json, JSON.stringify({ date: new Date().toISOString(), quick, scaling, pinned: pin, cpus: { server: serverCpus.text, client: clientCpus.text },
  cpu: cpuModel, cores: os.cpus().length, kernel: os.release(), versions, timing, results }, null, 2) + '\n');
if (others.length && chart.groups.length) {
  const r = spawnSync(path.join(bin, 'chart'), [files.png], { input: JSON.stringify(chart), stdio: ['pipe', 'inherit', 'inherit'] });
  if (r.status !== 0) process.exitCode = 1;
}
// A full run into bench/results also puts its tables into BENCHMARKS.md and its summary into the
// README, between their markers, so that the documents show the run whose chart they link; a full
// --scaling run its tables into BENCHMARKS.md's section "Scaling with cores".
if (outName === 'scaling' && outDir === defaultOut) replaceBetween(path.join(root, 'BENCHMARKS.md'), 'bench:scaling', (L.join('\n') + '\n').replace(/^#/gm, '##'));
if (outName === 'benchmark' && outDir === defaultOut) {
  replaceBetween(path.join(root, 'BENCHMARKS.md'), 'bench:results', (L.join('\n') + '\n').replace(/^#/gm, '##'));
  // The section has its own heading and words in BENCHMARKS.md: its tables go one level up.
  replaceBetween(path.join(root, 'BENCHMARKS.md'), 'bench:costs', `Run of ${L[0].slice(L[0].lastIndexOf(', ') + 2)}, with the results above.\n\n` + C.slice(2).join('\n').replace(/^####/gm, '###') + '\n');
  replaceBetween(path.join(root, 'BENCHMARKS.md'), 'bench:roundtrip', `Run of ${L[0].slice(L[0].lastIndexOf(', ') + 2)}, with the results above.\n\n` + R.slice(2).join('\n').replace(/^####/gm, '###') + '\n');
  replaceBetween(path.join(root, 'README.md'), 'bench:summary', L.slice(0, summaryEnd).join('\n').replace(/^#/gm, '##') + '\n');
}

function replaceBetween(file, marker, text) {
  const begin = `<!-- ${marker} -->\n`;
  const end = `<!-- /${marker} -->`;
  const doc = readFileSync(file, 'utf8');
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  if (i < 0 || j < i) {
    log(`${path.basename(file)} has no ${begin.trim()} … ${end}: not updated`);
    return;
  }
  writeFileSync(file, doc.slice(0, i + begin.length) + text + doc.slice(j));
  log(`updated ${path.basename(file)}`);
}

log(`done in ${elapsed} s; wrote ${Object.values(files).filter(existsSync).map((f) => path.relative(process.cwd(), f)).join(', ')}`);
if (results.some((r) => r.report.error)) process.exitCode = 1;
