// The benchmark harness in a tiny configuration: cmd/wsbench against the Go bench server reports
// consistent figures (rates and costs are npm run bench's to print, never asserted here), and bench/run.mjs runs two servers end to end (plain, and over TLS with
// permessage-deflate) and writes its tables, JSON and chart; --scaling writes a table per scenario
// headed by its core sets, and rejects core sets it cannot use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Proc, root } from './helpers.mjs';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'wsbroker-bench-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const goEnv = { ...process.env, PATH: `/usr/local/go/bin:${process.env.PATH}` };
function goBuild(pkg) {
  const out = path.join(tmp, path.basename(pkg));
  const r = spawnSync('go', ['build', '-o', out, `./${pkg}`], { cwd: root, env: goEnv, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return out;
}

// wsbench runs the generator and returns its JSON report.
function wsbench(bin, args) {
  const r = spawnSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, `wsbench ${args.join(' ')}\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

test('wsbench against the Go server: rates, latencies, server CPU and memory per connection', { timeout: 60_000 }, async (t) => {
  const wsb = goBuild('cmd/wsbench');
  const server = new Proc(goBuild('bench/goserver'), ['-addr', '127.0.0.1:0']);
  t.after(() => server.stop());
  const addr = (await server.waitForLine(/^listening (\S+)$/))[1];
  const common = ['-addr', addr, '-pid', String(server.pid), '-warmup', '200ms', '-q'];

  // -warm: every connection echoes one message before idling. First, so that no garbage of the
  // other runs is returned to the OS meanwhile (RSS once fell 8 KiB while 200 connections opened).
  const idle = wsbench(wsb, [...common, '-scenario', 'idle', '-conns', '200', '-warm', '-size', '300', '-mem', '-duration', '200ms']);
  assert.equal(idle.alive, 200);
  // That an idle connection holds no goroutine is broker/read_linux_test.go's to assert, once the
  // readers have exited; here the figures are only there.
  const m = idle.server_mem_per_conn;
  assert.ok(Number.isFinite(m.goroutines) && Number.isFinite(m.goStacks) && idle.server_rss_per_conn_kib > 0 && idle.server_anon_per_conn_kib > 0, JSON.stringify(idle));

  const echo = wsbench(wsb, [...common, '-scenario', 'echo', '-conns', '20', '-size', '64', '-duration', '1s']);
  assert.equal(echo.errors, 0);
  assert.ok(echo.msgs > 0 && echo.msgs_per_s > 0, `${echo.msgs} echoes`);
  assert.equal(echo.deliveries, echo.msgs, 'one answer per echo');
  assert.ok(echo.server_cpu_s > 0 && echo.msgs_per_server_cpu_s > 0, JSON.stringify(echo));
  assert.ok(echo.gen_cpu_s > 0 && echo.gen_cpu_util > 0);
  const l = echo.latency_us;
  // Counters and the histogram start and stop a moment apart (a busy machine stretches it).
  assert.ok(Math.abs(l.count - echo.msgs) <= Math.max(20, echo.msgs / 100) && l.p50 > 0 && l.p50 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max, `${echo.msgs} echoes, latencies ${JSON.stringify(l)}`);
  assert.ok(echo.server_rss_kib > 1000 && echo.server_rss_peak_kib >= echo.server_rss_kib, JSON.stringify(echo));

  // Fan-out to 20 with one subscriber that never reads: every message reaches the 20 others.
  const fan = wsbench(wsb, [...common, '-scenario', 'fanout', '-conns', '20', '-stalled', '1', '-duration', '1s']);
  assert.equal(fan.errors, 0);
  assert.ok(fan.msgs > 0, `published messages ${fan.msgs}`);
  assert.ok(Math.abs(fan.deliveries - 20 * fan.msgs) <= 20 * fan.window, `${fan.deliveries} deliveries for ${fan.msgs} messages`);
  assert.equal(fan.stalled_closed, 0, 'far below the backpressure limit, the stalled subscriber stays open');

  // One connection's round trips, text and binary, size by size (one size over 64 KiB): each size
  // its own figures, the server's CPU per round trip included.
  for (const binary of [false, true]) {
    const rt = wsbench(wsb, [...common, '-scenario', 'roundtrip', '-sizes', '0,16,70000', '-count', '100', ...(binary ? ['-binary'] : [])]);
    assert.equal(rt.errors, 0);
    assert.equal(rt.binary ?? false, binary);
    assert.deepEqual(rt.sizes.map((x) => [x.size, x.count]), [[0, 100], [16, 100], [70000, 100]]);
    for (const x of rt.sizes) {
      const lat = x.latency_us;
      assert.ok(lat.count === x.count && lat.p50 > 0 && lat.p50 <= lat.p99 && lat.p99 <= lat.max && x.server_cpu_us > 0 && x.duration_s > 0, JSON.stringify(x));
    }
    assert.ok(rt.conns === 1 && rt.msgs >= 300 && rt.deliveries === rt.msgs && rt.latency_us === undefined, JSON.stringify(rt));
  }

  // A server without compression declines permessage-deflate: a -deflate run fails, saying so.
  const r = spawnSync(wsb, [...common, '-scenario', 'echo', '-conns', '2', '-duration', '1s', '-deflate'], { cwd: root, encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(JSON.parse(r.stdout.trim().split('\n').pop()).error, /declined permessage-deflate/);
});

test('bench/run.mjs: two servers, plain and over TLS with deflate, the tables, the reports and the chart', { timeout: 180_000 }, () => {
  const out = path.join(tmp, 'out');
  const r = spawnSync(process.execPath, ['bench/run.mjs', '--quick', '--only=ws,go', '--scenarios=echo-100-32,cost-echo-tls-deflate', `--out=${out}`],
    { cwd: root, env: goEnv, encoding: 'utf8', timeout: 170_000 });
  assert.equal(r.status, 0, r.stderr);
  const md = readFileSync(path.join(out, 'quick.md'), 'utf8');
  assert.equal(r.stdout.trim(), md.trim(), 'the table printed is the one written');
  const row = md.split('\n').find((line) => line.startsWith('| S1 | echo, 100 conns × 32 B |'));
  assert.match(row, /\| [\d,]+ \| \*\*\d+\.\d\d×\*\* \([\d,]+\) \|$/, 'ws\'s figure, then the Go core\'s ratio and figure');
  const json = JSON.parse(readFileSync(path.join(out, 'quick.json'), 'utf8'));
  assert.deepEqual(json.results.map((x) => [x.scenario, x.server, x.report.error]),
    [['echo-100-32', 'ws', undefined], ['echo-100-32', 'go', undefined], ['cost-echo-tls-deflate', 'ws', undefined], ['cost-echo-tls-deflate', 'go', undefined]]);
  // Both servers took wss:// and permessage-deflate from the runner: every 4 KiB JSON answer came
  // compressed (to well under half).
  for (const { report: rep } of json.results.filter((x) => x.scenario === 'cost-echo-tls-deflate')) {
    assert.ok(rep.tls && rep.deflate && rep.errors === 0 && rep.msgs > 0, JSON.stringify(rep));
    assert.ok(rep.compressed_msgs >= rep.deliveries && rep.compressed_bytes < rep.compressed_msgs * 2048, JSON.stringify(rep));
  }
  // The section: the per-echo table with plain's column empty (not run) and the ratio-free cell.
  assert.match(md, /\n### Compression and TLS\n/);
  assert.match(md.split('\n').find((line) => line.startsWith('| ws | ')), /^\| ws \| – \| – \| – \| [\d.]+ µs \|$/);
  assert.match(md, /\n\| TLS \+ deflate \| Go core \| [\d,]+ \| \d+% \| [\d,]+ \| \d+% \| 100% \| [\d,]+ B \|/);
  const png = readFileSync(path.join(out, 'quick.png'));
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
});

test('bench/run.mjs --scaling: a table per scenario, a row per server and thread count, headed by the core sets', { timeout: 180_000 }, () => {
  const out = path.join(tmp, 'scaling');
  const r = spawnSync(process.execPath, ['bench/run.mjs', '--scaling', '--server-cpus=0', '--client-cpus=1', '--quick', '--only=wsbroker,ws,ws-cluster',
    '--scenarios=echo-100-512,fanout-1000', `--out=${out}`], { cwd: root, env: goEnv, encoding: 'utf8', timeout: 170_000 });
  assert.equal(r.status, 0, r.stderr);
  const md = readFileSync(path.join(out, 'scaling-quick.md'), 'utf8');
  assert.equal(r.stdout.trim(), md.trim(), 'the tables printed are the ones written');
  assert.match(md, /^## WSBroker scaling with cores \(--quick\), 1\+1-core run: server on core 0, generator on core 1, \d{4}-\d\d-\d\d \d\d:\d\d UTC\n/);
  // Each scenario's table: its heading, then a row per server; one core makes the steps threads: 1
  // and the default, 4.
  const tables = Object.fromEntries(md.split('\n### ').slice(1).map((part) => {
    const [title, ...lines] = part.split('\n');
    return [title, lines.filter((line) => line.startsWith('| ') && !line.startsWith('| server |'))];
  }));
  assert.deepEqual(Object.keys(tables), ['echo, 100 conns × 512 B', 'fan-out to 1,000']);
  const measured = (name) => new RegExp(`^\\| ${name.replace(/[()]/g, '\\$&')} \\| [\\d,]+ \\| \\d+% \\| ([\\d.]+) µs \\| ([\\d,]+) \\| [\\d.]+× \\| [\\d.]+× \\| \\d+% \\|$`);
  const names = ['WSBroker, threads: 1', 'WSBroker, threads: 4 (default)', 'ws', 'ws cluster ×1'];
  assert.equal(tables['echo, 100 conns × 512 B'].length, names.length, md);
  tables['echo, 100 conns × 512 B'].forEach((row, i) => {
    const m = row.match(measured(names[i]));
    assert.ok(m, row);
    // CPU per message and messages per CPU-second are the same figure, one over the other.
    const [perMsg, perCpu] = [Number(m[1]), Number(m[2].replace(/,/g, ''))];
    assert.ok(Math.abs(perMsg * perCpu - 1e6) <= 0.01 * 1e6, row);
  });
  assert.match(tables['echo, 100 conns × 512 B'][2], /\| 1\.00× \| 1\.00× \|/, 'ws against itself');
  const fanout = tables['fan-out to 1,000'];
  assert.equal(fanout.length, names.length, md);
  fanout.slice(0, 3).forEach((row, i) => assert.match(row, measured(names[i])));
  assert.equal(fanout[3], '| ws cluster ×1 | not run: plain ws has no fan-out across processes (a worker\'s broadcast reaches only its own connections) | | | | | | |');

  const json = JSON.parse(readFileSync(path.join(out, 'scaling-quick.json'), 'utf8'));
  assert.deepEqual(json.cpus, { server: '0', client: '1' });
  assert.deepEqual(json.results.map((x) => [x.scenario, x.server, x.report.error]), [
    ...['wsbroker-t1', 'wsbroker-t4', 'ws', 'ws-cluster'].map((id) => ['echo-100-512', id, undefined]),
    ...['wsbroker-t1', 'wsbroker-t4', 'ws'].map((id) => ['fanout-1000', id, undefined]),
  ]);
  // The cluster's CPU is its primary's and its worker's, which serves every connection.
  const cluster = json.results.find((x) => x.server === 'ws-cluster').report;
  assert.equal(cluster.server_cpu_by_pid_s.length, 2, JSON.stringify(cluster));
  assert.ok(cluster.server_cpu_by_pid_s[1] > cluster.server_cpu_by_pid_s[0], JSON.stringify(cluster.server_cpu_by_pid_s));
});

test('bench/run.mjs --scaling: core sets that are not lists, not here, or not disjoint are usage errors', () => {
  const cases = [
    [['--scaling', '--server-cpus=0', '--client-cpus=0'], /^bench: the server's cpus \(0\) and the generator's \(0\) share cpu 0: they must be disjoint$/m],
    [['--scaling', '--server-cpus=0,1', '--client-cpus=1'], /share cpu 1: they must be disjoint/],
    [['--scaling', '--server-cpus=', '--client-cpus=1'], /^bench: --server-cpus=: not a cpu list like 0-3 or 0,2,4-7$/m],
    [['--scaling', '--server-cpus=0', '--client-cpus=3-1'], /^bench: --client-cpus=3-1: not a cpu list/m],
    [['--scaling', '--server-cpus=0', '--client-cpus=one'], /^bench: --client-cpus=one: not a cpu list/m],
    [['--scaling', '--server-cpus=4095', '--client-cpus=1'], /^bench: --server-cpus=4095: no cpu 4095 here \(the cpus online: [\d,-]+\)$/m],
    [['--server-cpus=0', '--client-cpus=1'], /^bench: --server-cpus and --client-cpus go with --scaling$/m],
    [['--scaling', '--no-pin'], /^bench: --scaling pins the server and the generator to their core sets: it does not go with --no-pin$/m],
  ];
  for (const [args, message] of cases) {
    const r = spawnSync(process.execPath, ['bench/run.mjs', ...args], { cwd: root, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.match(r.stderr, /\n\s+node bench\/run\.mjs --scaling \[--server-cpus=<cpu list>\] \[--client-cpus=<cpu list>\]/, 'with the usage');
  }
});
