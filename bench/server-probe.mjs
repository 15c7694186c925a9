// Preloaded into the benchmarked server (node --expose-gc --import bench/server-probe.mjs; plain JavaScript,
// so the server needs no TypeScript loader for it) to see
// inside it without changing it. On SIGUSR2 it writes one JSON line to stderr with
// - the event-loop delay since the previous probe: how long a ready message (an announce, a
//   PUBACK) waited behind whatever ran before it;
// - the garbage collector's pauses since the previous probe, minor (scavenges) and major
//   (mark-compact), counted from PerformanceObserver 'gc' entries;
// - process.memoryUsage() after full garbage collections, so memory readings do not depend on
//   when V8 last happened to collect (PGlite's start-up alone leaves hundreds of MiB of garbage).
// The delay histogram restarts after the collections, so their pause counts in no phase.
import { constants, monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';
import { getHeapCodeStatistics } from 'node:v8';

const TAG = 'mqota-bench-probe'; // server-process.ts looks for it
const gc = globalThis.gc;
if (!gc) throw new Error('server-probe needs node --expose-gc');

// monitorEventLoopDelay records the interval between its timer's runs, the resolution included: an
// idle loop reads the resolution, not 0. The delay a ready message meets is what exceeds it (as
// @fastify/under-pressure computes it).
const RESOLUTION_MS = 1;
const loop = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
loop.enable();

/** @returns {{ count: number, totalMs: number, maxMs: number }} */
const none = () => ({ count: 0, totalMs: 0, maxMs: 0 });
let pauses = { minor: none(), major: none() };
/** When the probe's own collections ran: their entries arrive later and are not the phase's. */
let forced = { from: 0, to: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (entry.startTime >= forced.from && entry.startTime <= forced.to) continue;
    const kind = entry.detail?.kind;
    const p = kind === constants.NODE_PERFORMANCE_GC_MINOR ? pauses.minor : kind === constants.NODE_PERFORMANCE_GC_MAJOR ? pauses.major : null;
    if (!p) continue; // incremental marking steps and weak callbacks run inside other tasks
    p.count++;
    p.totalMs += entry.duration;
    p.maxMs = Math.max(p.maxMs, entry.duration);
  }
}).observe({ entryTypes: ['gc'] });

process.on('SIGUSR2', () => {
  const ms = (ns) => Math.max(0, Math.round((ns / 1e6 - RESOLUTION_MS) * 100) / 100);
  const loopDelay = { p50: ms(loop.percentile(50)), p99: ms(loop.percentile(99)), max: ms(loop.max), mean: ms(loop.mean) };
  const gcPauses = pauses;
  pauses = { minor: none(), major: none() };
  forced = { from: performance.now(), to: Infinity };
  for (let i = 0; i < 3; i++) gc();
  // V8 sweeps after a full collection concurrently, and whatever is left when the next phase
  // starts the main thread finishes itself (10 of the 31 perf samples in the first stall of a
  // 1,000-device fan-out). Code statistics make the heap iterable, which finishes sweeping now.
  getHeapCodeStatistics();
  forced.to = performance.now();
  process.stderr.write(`${JSON.stringify({ tag: TAG, loopDelay, gcPauses, memory: process.memoryUsage() })}\n`);
  loop.reset();
});
