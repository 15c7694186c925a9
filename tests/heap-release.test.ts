// The memory-reducing collection mqota runs once start-up is done (src/heap-release.ts), on the
// event loop's isolate and in PGlite's worker: it collects, and it leaves no `gc` behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runInNewContext } from 'node:vm';
import { releaseHeap } from '../src/heap-release.js';
import { openPgliteThread } from '../src/db/pglite-thread.js';

test('releaseHeap runs a full collection on this thread and exposes no gc function afterwards', async () => {
  const exposedAtStart = typeof (globalThis as { gc?: unknown }).gc === 'function'; // node --expose-gc
  let garbage: object | null = { rows: Array.from({ length: 1000 }, (_, i) => ({ i })) };
  const ref = new WeakRef(garbage);
  garbage = null;
  // A WeakRef's target is kept until the job that made or read it ends: collect in a later one.
  await new Promise<void>((resolve) => setImmediate(resolve));
  const released = releaseHeap();
  assert.equal(ref.deref(), undefined, 'a full collection clears a WeakRef to what nothing else holds');
  assert.ok(released.usedAfter > 0 && released.usedBefore > 0);
  if (!exposedAtStart) {
    assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined');
    assert.equal(runInNewContext('typeof gc'), 'undefined', 'a context made afterwards gets no gc either');
  }
});

test("PGlite's worker runs it on its own isolate when asked, and serves queries after", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mqota-heap-release-'));
  const db = await openPgliteThread(dir);
  try {
    await db.query('CREATE TABLE t (n int)');
    const released = await db.releaseHeap();
    // Opening a database leaves garbage behind on the worker: start-up's, which this is for.
    assert.ok(released.usedAfter < released.usedBefore, `worker heap ${released.usedBefore} -> ${released.usedAfter} bytes`);
    await db.query('INSERT INTO t VALUES (1)');
    assert.deepEqual((await db.query<{ n: number }>('SELECT n FROM t')).rows, [{ n: 1 }]);
  } finally {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  }
});
