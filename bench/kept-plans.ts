// What a plan kept from a young database costs once its tables have grown (issue #13, "Ninth
// round" in bench/README.md). PGlite's worker prepares batch statements once, and after five runs
// PostgreSQL keeps the generic plan made for the tables' sizes then; PGlite runs no autovacuum, so
// nothing plans them again. This prepares the history insert and the rollout transition while the
// tables are small, grows them, and times each on the kept plan against the same statement planned
// at that run (unnamed, as the repository now runs both: BatchSql's `planEachRun`).
//
//   npx tsx bench/kept-plans.ts [--attempts 100000] [--history 200000]
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { INSERT_EVENTS, TRANSITION, UPSERT_ATTEMPTS } from '../src/db/fleet-repository.js';
import { openPgliteStore } from '../src/db/pglite-store.js';

const { values } = parseArgs({ options: { attempts: { type: 'string', default: '100000' }, history: { type: 'string', default: '200000' } } });
const attempts = Number(values.attempts);
const history = Number(values.history);
const ROWS = 1_000; // the repository's rows per statement
const dir = await mkdtemp(path.join(os.tmpdir(), 'mqota-kept-plans-'));
const { db, releaseLock } = await openPgliteStore(dir, pino({ level: 'silent' }));
try {
  const at = new Date();
  const attemptRows = (from: number, n: number) => JSON.stringify(Array.from({ length: n }, (_, k) => ({
    id: `u_${from + k}`, rolloutId: from + k < ROWS ? 'ro-done' : 'ro-old', deviceId: `dev-${from + k}`, firmwareId: 'fw', fromVersion: '1.0.0', retry: 0,
    state: 'succeeded', progress: null, error: null, reason: null, createdAt: at, updatedAt: at, finishedAt: at })));
  let tick = 0;
  const eventRows = (from: number, n: number) => JSON.stringify(Array.from({ length: n }, (_, k) => ({
    attemptId: `u_${from + k}`, state: 'downloading', progress: null, error: null, reason: null, at: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, ++tick)) })));
  const transition = (id: string) => JSON.stringify({ id, fromState: 'running', fromWave: 0, state: 'completed', wave: 0, reason: 'done', actor: null, at,
    final: true, policy: null, waves: null, ackFailures: null, ackFinished: null, waveStartedAt: null, keepReason: false, members: null });
  const executionMs = async (sql: string) => Number((await db.query<{ 'QUERY PLAN': string }>(`EXPLAIN ANALYZE ${sql}`)).rows
    .map((r) => r['QUERY PLAN']).find((l) => l.startsWith('Execution Time'))!.match(/[\d.]+/)![0]);
  const historyRows = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM "AttemptEvent"')).rows[0]!.n;

  await db.query(`INSERT INTO "Firmware" (id, type, version, sha256, size) VALUES ('fw', 'lamp', '2.0.0', '${'a'.repeat(64)}', 1)`);
  await db.query(`INSERT INTO "Device" (id, type, "updatedAt") SELECT 'dev-' || g, 'lamp', now() FROM generate_series(0, ${attempts}) g`);
  await db.query(`INSERT INTO "Rollout" (id, "firmwareId", state, "updatedAt") SELECT 'ro-' || g, 'fw', 'running', now() FROM generate_series(0, 20) g`);
  // The rollout to complete holds the first 1,000 attempts; the others are earlier rollouts' (history).
  await db.query(`INSERT INTO "Rollout" (id, "firmwareId", state, "updatedAt") VALUES ('ro-done', 'fw', 'running', now()), ('ro-old', 'fw', 'completed', now())`);
  await db.query(UPSERT_ATTEMPTS, [attemptRows(0, ROWS)]);

  // Young database: both prepared and run past PostgreSQL's five custom plans.
  await db.query(`PREPARE kept_events(json) AS ${INSERT_EVENTS.replace('$1::json', '$1')}`);
  await db.query(`PREPARE kept_transition(json) AS ${TRANSITION.replace('$1::json', '$1')}`);
  for (let i = 0; i < 8; i++) {
    await db.query(`EXECUTE kept_events('${eventRows(i * 100, 100)}')`);
    await db.query(`EXECUTE kept_transition('${transition(`ro-${i}`)}')`);
  }
  const small = { history: await historyRows(), kept: await executionMs(`EXECUTE kept_events('${eventRows(0, ROWS)}')`) };

  // Grown: earlier rollouts' finished attempts, and a long history.
  for (let i = ROWS; i < attempts; i += ROWS) await db.query(UPSERT_ATTEMPTS, [attemptRows(i, Math.min(ROWS, attempts - i))]);
  await db.query(`INSERT INTO "AttemptEvent" ("attemptId", state, at) SELECT 'u_' || (g % ${attempts}), 'grown', now() FROM generate_series(1, ${history}) g`);
  const big = {
    history: await historyRows(),
    kept: await executionMs(`EXECUTE kept_events('${eventRows(0, ROWS)}')`),
    each: await executionMs(INSERT_EVENTS.replace('$1::json', `'${eventRows(0, ROWS)}'::json`)),
  };
  // The same rollout both times: planned at that run first, in a transaction rolled back.
  await db.query('BEGIN');
  const each = await executionMs(TRANSITION.replace('$1::json', `'${transition('ro-done')}'::json`));
  await db.query('ROLLBACK');
  const transitions = { kept: await executionMs(`EXECUTE kept_transition('${transition('ro-done')}')`), each };
  console.log(`history insert, ${ROWS} rows: kept plan ${small.kept.toFixed(1)} ms with ${small.history} history rows, ${big.kept.toFixed(1)} ms with ${big.history}; planned at that run ${big.each.toFixed(1)} ms`);
  console.log(`transition to completed of a ${ROWS}-attempt rollout, ${attempts} attempts in all: kept plan ${transitions.kept.toFixed(2)} ms; planned at that run ${transitions.each.toFixed(2)} ms`);
} finally {
  await db.close();
  await releaseLock();
  await rm(dir, { recursive: true, force: true });
}
