// Preloaded into the benchmarked server to see what its main thread allocates, phase by phase
// (issue #13, "Eighth round" in bench/README.md): V8's sampling heap profiler with the objects
// that minor and major collections took included, so a profile is everything allocated, not what
// survived. The bench probes the server with SIGUSR2 at every phase boundary (server-probe.mjs);
// each probe ends one profile, written as /tmp/alloc-<k>.heapprofile (or MQOTA_ALLOC_DIR), and
// starts the next. Match k with the phases by their order (the probes' own collections fall in
// small profiles of their own).
//
//   npm run bench -- --devices 2000 --databases pglite --concurrency 100 --server-node-arg=--import=./bench/alloc-probe.mjs
//   node bench/alloc-summary.mjs /tmp/alloc-2.heapprofile [top]
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';

if (isMainThread) {
  const dir = process.env.MQOTA_ALLOC_DIR ?? '/tmp';
  const session = new Session();
  session.connect();
  const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
  const start = () => post('HeapProfiler.startSampling', { samplingInterval: 2048, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  let k = 0;
  await post('HeapProfiler.enable');
  await start();
  process.on('SIGUSR2', async () => {
    const { profile } = await post('HeapProfiler.stopSampling');
    writeFileSync(path.join(dir, `alloc-${k++}.heapprofile`), JSON.stringify(profile));
    await start();
  });
}
