// The benchmark harness in a tiny configuration: cmd/wsbench against the Go bench server reports
// consistent figures (rates and costs are npm run bench's to print, never asserted here), and bench/run.mjs runs two servers end to end (plain, and over TLS with
// permessage-deflate) and writes its tables, JSON and chart.
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
