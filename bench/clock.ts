// One clock for the orchestrator and the fleet process. `performance.timeOrigin` is the wall
// clock when each process started, so `timeOrigin + now()` agrees across processes to well under
// a millisecond, while staying monotonic inside each one (Date.now() has neither property).
import { performance } from 'node:perf_hooks';

export function now(): number {
  return performance.timeOrigin + performance.now();
}
