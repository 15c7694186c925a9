// Preloaded into the benchmarked server to find what holds its event loop (issue #13): a 1 ms
// timer on the main thread, and every gap between two of its runs longer than 12 ms written as
// one JSON line {endUs, ms} (endUs on process.hrtime's clock, the one the bench's phases and V8's
// CPU profiles use). bench/stall-summary.mjs matches each stall with the profile's samples.
//
//   npm run bench -- --devices 10000 --databases pglite --profile \
//     --server-node-arg=--import=./bench/stall-probe.mjs --server-env MQOTA_STALL_FILE=/tmp/stalls.jsonl
//   node bench/stall-summary.mjs bench/results/profile-<stamp>/pglite /tmp/stalls.jsonl [fan-out]
//
// Worker threads get the preload too: only the main thread measures (PGlite's worker runs SQL
// for tens of ms at a time, which is what it is there for).
import { appendFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';

const file = process.env.MQOTA_STALL_FILE ?? path.join(os.tmpdir(), `mqota-stalls-${process.pid}.jsonl`);
let last = process.hrtime.bigint();
function tick() {
  const now = process.hrtime.bigint();
  const ms = Number(now - last) / 1e6;
  if (ms > 12) appendFileSync(file, `${JSON.stringify({ endUs: Number(now / 1000n), ms })}\n`);
  last = process.hrtime.bigint();
  setTimeout(tick, 1).unref();
}
if (isMainThread) setTimeout(tick, 1).unref();
