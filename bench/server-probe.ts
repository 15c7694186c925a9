// Preloaded into the benchmarked server (node --expose-gc --import bench/server-probe.ts) to see
// inside it without changing it. On SIGUSR2 it writes one JSON line to stderr with
// - the event-loop delay since the previous probe: how long a ready message (an announce, a
//   PUBACK) waited behind whatever ran before it;
// - process.memoryUsage() after full garbage collections, so memory readings do not depend on
//   when V8 last happened to collect (PGlite's start-up alone leaves hundreds of MiB of garbage).
// The delay histogram restarts after the collections, so their pause counts in no phase.
import { monitorEventLoopDelay } from 'node:perf_hooks';

const TAG = 'mqota-bench-probe'; // server-process.ts looks for it
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('server-probe needs node --expose-gc');

const loop = monitorEventLoopDelay({ resolution: 5 });
loop.enable();

process.on('SIGUSR2', () => {
  const ms = (ns: number) => Math.round(ns / 1e4) / 100;
  const loopDelay = { p50: ms(loop.percentile(50)), p99: ms(loop.percentile(99)), max: ms(loop.max), mean: ms(loop.mean) };
  for (let i = 0; i < 3; i++) gc();
  process.stderr.write(`${JSON.stringify({ tag: TAG, loopDelay, memory: process.memoryUsage() })}\n`);
  loop.reset();
});
