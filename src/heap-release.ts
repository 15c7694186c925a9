// One memory-reducing collection of the calling thread's isolate, as V8's memory reducer runs at
// rest: full collections that also shrink the young generation, compact the old one and drop code
// no longer used. Start-up leaves both of mqota's isolates (the event loop's and PGlite's worker's)
// holding pages it no longer needs. V8 13 (Node 24) gives them back only after ~100 s without a
// collection: the allocation rate it last measured, start-up's, reads as "high" until something
// is collected again, so only its watchdog starts the reducer. Node 20's V8 did so after ~30 s.
// A restart at rest on Node 24 held 200-203 MiB until then (bench/README.md, "Eighth round").
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

type Gc = (options?: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

/** V8 12 and later (Node 22, 24) take gc's options; V8 11 (Node 20) collects fully only when called bare. */
const TAKES_OPTIONS = Number(process.versions.v8.split('.')[0]) >= 12;

/** What the isolate's heap held before and after, bytes in use. */
export interface HeapReleased { usedBefore: number; usedAfter: number }

/** Collects everything it can on this thread now; blocks it for tens of milliseconds. */
export function releaseHeap(): HeapReleased {
  const usedBefore = v8.getHeapStatistics().used_heap_size;
  const gc = (globalThis as { gc?: Gc }).gc ?? exposeOnce();
  if (TAKES_OPTIONS) gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  else gc();
  return { usedBefore, usedAfter: v8.getHeapStatistics().used_heap_size };
}

/**
 * `gc` for a process started without --expose-gc: V8 gives it to a context made while the flag is
 * set. The flag is set for that one new context and cleared again, so no other code gets it.
 */
function exposeOnce(): Gc {
  v8.setFlagsFromString('--expose-gc');
  try {
    return runInNewContext('gc') as Gc;
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
}
