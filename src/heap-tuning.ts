// V8's heap growth for a process that holds thousands of long-lived connections.
//
// With V8's own heuristics the old generation's limit stayed about 23 MB above what survived the
// last full collection (61 of 84 MB with 1,000 devices connecting), and incremental marking
// restarted some 200 ms after every full collection: ten mark-compacts, 5–16 ms pauses each, in
// the four seconds 1,000 devices took to connect (`npm run bench`, GC pauses per phase). Letting
// the old generation grow to twice its live size before the next full collection left two, and
// the announce → command p99 in that phase fell from 52–66 ms to 36–51 ms. The cost is heap
// headroom: up to as much garbage as there is live data, in memory the allocator keeps anyway.
import v8 from 'node:v8';

/** The old generation may grow by this much of its live size before the next full collection. */
export const HEAP_GROWING_PERCENT = 100;

const FLAG = /^--heap[-_]growing[-_]percent(=|$)/;

/** Applies the setting unless the operator chose their own on the command line; says which. */
export function tuneHeap(execArgv: readonly string[] = process.execArgv): 'mqota' | 'command line' {
  if (execArgv.some((arg) => FLAG.test(arg))) return 'command line';
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  return 'mqota';
}
