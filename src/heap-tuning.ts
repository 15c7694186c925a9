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
//
// The young generation is the other half, and only the command line can set it (V8 sizes it when
// the isolate is made): `npm start` and the container run `node --max-semi-space-size=2`. With V8's
// default (up to 2 × 16 MB) start-up grew it to its maximum and left it empty, ~25 MiB of the idle
// process (bench/README.md, "Start-up and memory at rest"); with 2 MB, scavenges are ten times as
// many and each is shorter: at 10,000 devices the fan-out's longest GC pause fell from 38-44 ms to
// 18-22 ms and its time did not grow (3.8-3.9 s with 2 or 4 MB, 3.9-4.4 s with the default).
//
// And one V8 helper thread instead of Node's four: parallel scavenges (hundreds a second while
// devices connect) wake every helper, and on a small machine four helpers only queue for the cores
// the event loop, PGlite's worker and the TLS peers need. 5,000 devices connecting on 2 cores:
// 16.5-16.8 s with one helper, 18.9-24.0 s with four, memory per device the same (bench/README.md,
// "Connect, fourth round"). A bigger host may give more: `node --v8-pool-size=N`.
//
// And where V8 can (13 and later: Node 24), the external memory Node reports counts in V8's global
// limit, which grows with the heap. Node reports every TLS connection as ~49 KiB of external memory
// (TLSWrap's estimate) plus its BIO buffers, and V8 before that counts external growth against a
// fixed 64 MB step: a full collection every few hundred connecting devices, however big the heap,
// each marking every device's objects, so connecting cost grew faster than the fleet (bench/README.md,
// "Connect, sixth round": 32 full collections while 18,500 devices connect on Node 24, 6 with the
// flag). Node 20 and 22 have no such flag.
import v8 from 'node:v8';

/** What `npm start` passes to node (bin/start.sh, which the container runs too; the bench's server does the same). */
// --liftoff-only: PGlite's WebAssembly stays on V8's baseline compiler (src/db/pglite-worker.ts
// says why). The worker also sets it at run time, which Node 20 honours and Node 24 did not: there a
// restart compiled PGlite with TurboFan, peaked at 693 MiB and took 3.5 s; with the flag on the
// command line, 221 MiB and 1.8 s (bench/README.md, "Connect, sixth round").
export const START_NODE_ARGS: readonly string[] = ['--max-semi-space-size=2', '--v8-pool-size=1', '--liftoff-only'];

/** The old generation may grow by this much of its live size before the next full collection. */
export const DEFAULT_HEAP_GROWING_PERCENT = 100;

/**
 * Whether the operator gave node this V8 flag on the command line: with dashes or underscores,
 * negated or not, with a value or not.
 */
function onCommandLine(flag: string, execArgv: readonly string[]): boolean {
  const name = flag.replace(/^--/, '').replace(/[-_]/g, '[-_]');
  const given = new RegExp(`^--(no[-_])?${name}(=|$)`);
  return execArgv.some((arg) => given.test(arg));
}

/** V8's switch for counting external memory in its global limit; V8 13 (Node 24) has it, 11 and 12 do not. */
export const EXTERNAL_MEMORY_FLAG = '--external-memory-accounted-in-global-limit';

/**
 * Counts external memory in V8's global limit where V8 has the switch, unless `percent` is 0 (V8's
 * own heuristics throughout) or the operator set it either way on the command line; says which
 * setting holds ('unsupported': this V8 has no such switch).
 */
export function accountExternalMemory(percent = DEFAULT_HEAP_GROWING_PERCENT, v8Version = process.versions.v8,
  execArgv: readonly string[] = process.execArgv): 'mqota' | 'command line' | 'v8' | 'unsupported' {
  if (Number(v8Version.split('.')[0]) < 13) return 'unsupported';
  if (onCommandLine(EXTERNAL_MEMORY_FLAG, execArgv)) return 'command line';
  if (percent === 0) return 'v8';
  v8.setFlagsFromString(EXTERNAL_MEMORY_FLAG);
  return 'mqota';
}

/**
 * Applies `percent` (0 leaves V8's heuristics) unless the operator gave the V8 flag on the
 * command line; says which setting holds.
 */
export function tuneHeap(percent = DEFAULT_HEAP_GROWING_PERCENT, execArgv: readonly string[] = process.execArgv): 'mqota' | 'command line' | 'v8' {
  if (onCommandLine('--heap-growing-percent', execArgv)) return 'command line';
  if (percent === 0) return 'v8';
  v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
  return 'mqota';
}
