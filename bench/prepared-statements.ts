// The group commit's attempt upsert on PGlite, unnamed (as PGlite's query() sends it) and
// prepared (as the worker runs the batch statements since issue #13's fifth round): PostgreSQL's
// own planning time for it (EXPLAIN ANALYZE), then one-row transactions, alternating the two.
//
//   npx tsx bench/prepared-statements.ts [--runs 200] [--rows 10]
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { UPSERT_ATTEMPTS } from '../src/db/fleet-repository.js';
import { openPgliteStore } from '../src/db/pglite-store.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '200' }, rows: { type: 'string', default: '10' } } });
const runs = Number(values.runs);
const rowsPerStatement = Number(values.rows);
const dir = await mkdtemp(path.join(os.tmpdir(), 'mqota-prepared-'));
const { db, releaseLock } = await openPgliteStore(dir, pino({ level: 'silent' }));
try {
  const devices = (4 * runs + 1) * rowsPerStatement; // the EXPLAIN, then two rounds of both modes
  await db.query(`INSERT INTO "Firmware" (id, type, version, sha256, size) VALUES ('fw', 'lamp', '2.0.0', '${'a'.repeat(64)}', 1)`);
  await db.query(`INSERT INTO "Rollout" (id, "firmwareId", state, "updatedAt") VALUES ('ro', 'fw', 'running', now())`);
  await db.query(`INSERT INTO "Device" (id, type, "updatedAt") SELECT 'dev-' || g, 'lamp', now() FROM generate_series(0, ${devices}) g`);
  let next = 0;
  const batch = () => JSON.stringify(Array.from({ length: rowsPerStatement }, () => {
    const i = next++;
    return { id: `u_${i}`, rolloutId: 'ro', deviceId: `dev-${i}`, firmwareId: 'fw', fromVersion: '1.0.0', retry: 0, state: 'pending',
      progress: null, error: null, reason: null, createdAt: new Date(), updatedAt: new Date(), finishedAt: null };
  }));

  const plan = await db.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE) ${UPSERT_ATTEMPTS}`, [batch()]);
  console.log(`attempt upsert, ${rowsPerStatement} rows: ${plan.rows.map((r) => r['QUERY PLAN']).filter((l) => /^(Planning|Execution) Time|^Trigger for constraint/.test(l)).join(', ')}`);

  for (const round of [1, 2]) {
    for (const mode of ['unnamed', 'prepared'] as const) {
      const started = performance.now();
      for (let k = 0; k < runs; k++) {
        await db.transaction(async (tx) => {
          if (mode === 'unnamed') await tx.query(UPSERT_ATTEMPTS, [batch()]);
          else await tx.queryPrepared(UPSERT_ATTEMPTS, [batch()]);
        });
      }
      console.log(`round ${round}, ${mode.padEnd(8)}: ${((performance.now() - started) / runs).toFixed(2)} ms a transaction (${runs} of one ${rowsPerStatement}-row upsert)`);
    }
  }
  const stats = await db.query<{ generic_plans: string; custom_plans: string }>('SELECT generic_plans, custom_plans FROM pg_prepared_statements');
  console.log(`prepared statement: ${stats.rows.map((r) => `${r.generic_plans} generic plans, ${r.custom_plans} custom`).join('; ')}`);
} finally {
  await db.close();
  await releaseLock();
  await rm(dir, { recursive: true, force: true });
}
