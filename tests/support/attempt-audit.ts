// What the database says about a rollout, read with plain SQL (prisma/schema.prisma's tables),
// checked against what the devices were told was received: every status report a device got a
// PUBACK for must be in its attempt's history, every attempt ends exactly once, none is left in a
// non-final state once the rollout is completed, and the rollout's state agrees with its attempts.
// Deliberately independent of the server's code, so a rewrite of the core cannot bend the check.
import { PGlite } from '@electric-sql/pglite';
import path from 'node:path';
import pg from 'pg';
import type { AcknowledgedReport } from './reporting-fleet.js';

/** docs/protocol.md: the states an attempt ends in. */
export const FINAL_ATTEMPT_STATES = ['succeeded', 'failed', 'rolled_back', 'rejected', 'cancelled', 'timed_out'];
const isFinal = (state: string) => FINAL_ATTEMPT_STATES.includes(state);

export type Query = (sql: string, params: unknown[]) => Promise<Record<string, unknown>[]>;

export interface RolloutAudit {
  rolloutState: string | null;
  attempts: number;
  /** Attempts per state, from the UpdateAttempt rows. */
  counts: Record<string, number>;
  acknowledged: number;
  /** Acknowledged reports with no matching AttemptEvent (updateId + state [+ progress]). */
  lost: AcknowledgedReport[];
  /** Attempts with more than one final-state event. */
  endedTwice: { attemptId: string; finals: string[] }[];
  /** Attempts whose row state disagrees with their history (a final event but another row state, or a final row without its event). */
  inconsistent: { attemptId: string; rowState: string; finalEvents: string[]; finishedAt: unknown }[];
  /** Attempts not in a final state. */
  unfinished: { attemptId: string; deviceId: string; state: string }[];
  /** Target devices without any attempt. */
  devicesWithoutAttempt: string[];
}

export async function auditRollout(query: Query, rolloutId: string, acknowledged: AcknowledgedReport[], deviceIds: string[]): Promise<RolloutAudit> {
  const [rollout] = await query('SELECT state FROM "Rollout" WHERE id = $1', [rolloutId]);
  const attempts = await query('SELECT id, "deviceId", state, "finishedAt" FROM "UpdateAttempt" WHERE "rolloutId" = $1', [rolloutId]);
  const events = await query(
    'SELECT e."attemptId", e.state, e.progress FROM "AttemptEvent" e JOIN "UpdateAttempt" a ON a.id = e."attemptId" WHERE a."rolloutId" = $1 ORDER BY e.id',
    [rolloutId],
  );
  const history = new Map<string, { state: string; progress: number | null }[]>();
  for (const e of events) {
    const id = String(e.attemptId);
    if (!history.has(id)) history.set(id, []);
    history.get(id)!.push({ state: String(e.state), progress: e.progress === null || e.progress === undefined ? null : Number(e.progress) });
  }
  const counts: Record<string, number> = {};
  const endedTwice: RolloutAudit['endedTwice'] = [];
  const inconsistent: RolloutAudit['inconsistent'] = [];
  const unfinished: RolloutAudit['unfinished'] = [];
  for (const a of attempts) {
    const id = String(a.id);
    const state = String(a.state);
    counts[state] = (counts[state] ?? 0) + 1;
    const finals = (history.get(id) ?? []).filter((e) => isFinal(e.state)).map((e) => e.state);
    if (finals.length > 1) endedTwice.push({ attemptId: id, finals });
    const consistent = isFinal(state) ? finals.length === 1 && finals[0] === state && a.finishedAt !== null : finals.length === 0;
    if (!consistent) inconsistent.push({ attemptId: id, rowState: state, finalEvents: finals, finishedAt: a.finishedAt });
    if (!isFinal(state)) unfinished.push({ attemptId: id, deviceId: String(a.deviceId), state });
  }
  const lost = acknowledged.filter((r) => !(history.get(r.updateId) ?? []).some((e) => e.state === r.state && (r.progress === undefined || e.progress === r.progress)));
  const withAttempt = new Set(attempts.map((a) => String(a.deviceId)));
  return {
    rolloutState: rollout ? String(rollout.state) : null,
    attempts: attempts.length,
    counts,
    acknowledged: acknowledged.length,
    lost,
    endedTwice,
    inconsistent,
    unfinished,
    devicesWithoutAttempt: deviceIds.filter((id) => !withAttempt.has(id)),
  };
}

/** One line per kind of finding, for a failure message or the test's diagnostics. */
export function describeAudit(a: RolloutAudit): string {
  const sample = <T>(xs: T[]) => JSON.stringify(xs.slice(0, 3));
  const lostByState: Record<string, number> = {};
  for (const r of a.lost) lostByState[r.state] = (lostByState[r.state] ?? 0) + 1;
  return [
    `rollout ${a.rolloutState}; ${a.attempts} attempts ${JSON.stringify(a.counts)}`,
    `${a.lost.length} of ${a.acknowledged} acknowledged reports missing from the histories ${JSON.stringify(lostByState)} e.g. ${sample(a.lost)}`,
    `${a.endedTwice.length} attempts ended more than once e.g. ${sample(a.endedTwice)}`,
    `${a.inconsistent.length} attempts whose row disagrees with their history e.g. ${sample(a.inconsistent)}`,
    `${a.unfinished.length} attempts not final e.g. ${sample(a.unfinished)}`,
    `${a.devicesWithoutAttempt.length} target devices without an attempt e.g. ${sample(a.devicesWithoutAttempt)}`,
  ].join('\n');
}

/** SQL on a PostgreSQL database; close it when done. */
export async function postgresQuery(url: string): Promise<{ query: Query; close(): Promise<void> }> {
  const client = new pg.Client(url);
  await client.connect();
  return { query: async (sql, params) => (await client.query(sql, params)).rows, close: () => client.end() };
}

/** SQL on the PGlite database in a server's data folder; the server must not be running. */
export async function pgliteQuery(dataDir: string): Promise<{ query: Query; close(): Promise<void> }> {
  const db = await PGlite.create(path.join(dataDir, 'pglite'));
  return { query: async (sql, params) => (await db.query<Record<string, unknown>>(sql, params)).rows, close: () => db.close() };
}
