// V8's heap growth for a process that holds thousands of long-lived connections.
//
// With V8's own heuristics the old generation's limit stayed about 23 MB above what survived the
// last full collection (61 of 84 MB with 1,000 devices connecting), and incremental marking
// restarted some 200 ms after every full collection: ten mark-compacts, 5-20 ms pauses each, in
// the four seconds 1,000 devices took to connect (`npm run bench`, GC pauses per phase). Letting
// the old generation grow to twice its live size before the next full collection left two, and
// lowered the announce -> command p99 in that phase by 10-15 ms. The cost is memory: about 5 KiB
// more RSS per connected device (`bench/broker-memory.ts` with and without the flag), heap and
// allocator slack between collections. MQOTA_HEAP_GROWING_PERCENT chooses (0: V8's own).
import v8 from 'node:v8';

/** The old generation may grow by this much of its live size before the next full collection. */
export const DEFAULT_HEAP_GROWING_PERCENT = 100;

const FLAG = /^--heap[-_]growing[-_]percent(=|$)/;

/**
 * Applies `percent` (0 leaves V8's heuristics) unless the operator gave the V8 flag on the
 * command line; says which setting holds.
 */
export function tuneHeap(percent = DEFAULT_HEAP_GROWING_PERCENT, execArgv: readonly string[] = process.execArgv): 'mqota' | 'command line' | 'v8' {
  if (execArgv.some((arg) => FLAG.test(arg))) return 'command line';
  if (percent === 0) return 'v8';
  v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
  return 'mqota';
}
