// V8's GC trace of a server the bench starts, in a file of its own (issue #13, "Connect, sixth
// round" in bench/README.md): why and when each full collection starts, with the heap's size and
// limit. V8 prints its traces on fd 1, which the bench reads as the server's log, so this preload
// points fd 1 at a file first (closing it, then opening, takes the lowest free descriptor).
//
//   npm run bench -- --devices 5000 --databases pglite \
//     --server-node-arg=--import=./bench/gc-trace.mjs --server-env GC_TRACE_FILE=/tmp/gc
//   grep 'Start (' /tmp/gc.start.js.<pid>
//
// The server's own log then goes to the same file, and the bench sees none of its warnings.
import fs from 'node:fs';
import v8 from 'node:v8';
import { isMainThread } from 'node:worker_threads';

// Workers inherit the preload; the flags are per process, so the main thread sets them once.
if (isMainThread) {
  const script = process.argv[1]?.split('/').pop() ?? 'node';
  fs.closeSync(1);
  const fd = fs.openSync(`${process.env.GC_TRACE_FILE ?? '/tmp/mqota-gc'}.${script}.${process.pid}`, 'w');
  if (fd !== 1) throw new Error(`gc-trace: the trace file opened as fd ${fd}, not 1`);
  v8.setFlagsFromString('--trace-incremental-marking');
  v8.setFlagsFromString('--trace-gc');
}
