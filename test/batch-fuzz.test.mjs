// A randomized test of the event batch decoder (js/batch.cts, built to lib/js/batch.cjs): random,
// truncated and mutated batches decode exactly, or throw a RangeError (never anything else), and
// never hang. It runs in a Worker (test/fixtures/batch-fuzz-worker.mjs) that is terminated if it
// stops reporting progress. The PRNG is seeded: a fixed seed by default, so that every run tests the
// same batches; WSBROKER_FUZZ_SEED=random draws a new one, WSBROKER_FUZZ_SEED=N replays seed N (a
// failure names its seed and iteration). Needs only `tsc`, not the native addon.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { fixture } from './helpers.mjs';

const FIXED_SEED = 0x5eed1;
const asked = process.env.WSBROKER_FUZZ_SEED;
const seed = asked === undefined || asked === '' ? FIXED_SEED : asked === 'random' ? Math.floor(Math.random() * 2 ** 32) : Number(asked);
if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new Error(`WSBROKER_FUZZ_SEED=${asked}: not an integer from 0 to 2^32-1, nor 'random'`);

/** Runs the fuzzer; rejects if it fails, throws something else than RangeError, or stalls. */
function fuzz(seed, { iterations = 15_000, stallMs = 30_000 } = {}) {
  return new Promise((resolve, reject) => {
    const w = new Worker(fixture('batch-fuzz-worker.mjs'), { workerData: { seed, iterations } });
    let last = -1;
    let timer;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        w.terminate();
        reject(new Error(`seed ${seed}: no progress for ${stallMs} ms after iteration ${last}: decodeBatch hangs (replay with WSBROKER_FUZZ_SEED=${seed})`));
      }, stallMs);
    };
    arm();
    w.on('message', (m) => {
      if (m.progress !== undefined) {
        last = m.progress;
        arm();
      } else if (m.done) {
        clearTimeout(timer);
        resolve(m.done);
      } else if (m.failure) {
        clearTimeout(timer);
        const f = m.failure;
        reject(new Error(`seed ${f.seed}, iteration ${f.iteration} (${f.mode}): ${f.message}\nbatch (${f.batchLength} bytes, hex, first 1 KiB): ${f.batchHex}\nreplay with WSBROKER_FUZZ_SEED=${f.seed}`));
      }
    });
    w.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    w.on('exit', () => clearTimeout(timer));
  });
}

test(`decodeBatch on random, truncated and mutated batches, seed ${seed}: exact or RangeError, never a hang`, async () => {
  const stats = await fuzz(seed);
  console.log(`decodeBatch fuzz, seed ${seed}: ${JSON.stringify(stats)}`);
  assert.ok(stats.valid > 0 && stats.truncated > 0 && stats.mutated > 0 && stats.random > 0, `seed ${seed}: every mode ran`);
  assert.ok(stats.rangeErrors > 0 && stats.decodedMutants > 0, `seed ${seed}: both outcomes were exercised`);
});
