// Every SQL statement about devices, rollouts and update attempts. The per-message path writes
// through a group commit (src/db/group-commit.ts): device rows, attempt snapshots with their
// history, late rollout members and rollout transitions gather in a batch that one transaction
// commits. Whoever adds to it is told when it is committed; that is what acknowledgements wait for.
//
// The batch's statements are idempotent, so a retry after an ambiguous failure (the connection
// dropped during COMMIT) changes nothing twice: attempt rows never leave a final state, history
// rows are inserted once, a rollout transition applies only from the state it was decided in.
import type { PrismaClient } from '../generated/prisma/client.js';
import type { BatchStep, Database } from './database.js';
import type { StoredHealth } from '../fleet/health.js';
import type { Logger } from '../logger.js';
import { ATTEMPT_RANK } from '../rollouts/attempt-state.js';
import { ACTIVE_ROLLOUT_STATES, isTerminal, zeroCounts, type AttemptState } from '../rollouts/states.js';
import type { ChangeFeedWriter, FeedChange } from '../cluster/change-feed.js';
import { GroupCommit, type BatchSink, type CommitHealth, type GroupCommitOptions } from './group-commit.js';

export interface DeviceRow {
  /** null: provisioned without a type, none announced yet. */
  id: string; type: string | null; version: string | null; chip: string | null; idfVersion: string | null;
  secureVersion: number | null; slot: string | null; online: boolean; lastSeenAt: Date | null;
  /** The latest health report (src/protocol/messages.ts), with when it came; one JSON column. */
  health: StoredHealth | null;
}

export interface DeviceRecord extends DeviceRow { tags: string[]; channel: string }

export interface AttemptRow {
  id: string; rolloutId: string; deviceId: string; firmwareId: string; fromVersion: string | null; retry: number;
  state: string; progress: number | null; error: string | null; reason: string | null;
  createdAt: Date; updatedAt: Date; finishedAt: Date | null;
}

export interface AttemptEventRow {
  attemptId: string; state: string; progress: number | null; error: string | null; reason: string | null; at: Date;
}

/** A rollout's move from one (state, wave) to another, applied only if the rollout is still in the first. */
export interface RolloutTransition {
  rolloutId: string;
  from: { state: string; wave: number };
  to: { state: string; wave: number };
  reason: string;
  actor: string | null;
  at: Date;
  final: boolean;
  /** Settings and bookkeeping that change with the transition, and only if it applies (src/rollouts/rollout-edits.ts). */
  changes?: RolloutChanges;
  /** Set by the commit: whether the rollout was still in `from` (and, for completed, had no open attempt). */
  applied?: boolean;
}

export interface RolloutChanges {
  policy?: object;
  waves?: object;
  /** The failure threshold counts from these (a resume). */
  acknowledged?: { failures: number; finished: number };
  waveStartedAt?: Date;
  /** Members whose wave (an edit of the waves) or granted retries change. */
  members?: Array<{ deviceId: string; wave?: number; retryUpTo?: number }>;
  /** The rollout keeps the reason it has; the history row records this transition's. */
  keepReason?: boolean;
}

export interface RolloutRecord {
  id: string; firmwareId: string; state: string; currentWave: number; reason: string | null;
  deviceIds: string[]; targetTags: string[]; versionRange: string | null; channel: string | null;
  waves: unknown; policy: unknown; startAt: Date | null; createdAt: Date;
  acknowledgedFailures: number; acknowledgedFinished: number; waveStartedAt: Date | null;
  targets: Array<{ deviceId: string; wave: number; retryUpTo: number }>;
}

export interface NewRollout {
  id: string; name: string | null; firmwareId: string; state: string; deviceIds: string[]; targetTags: string[];
  versionRange: string | null; channel: string | null; waves: object; policy: object; startAt: Date | null;
  reason: string; createdBy: string | null; createdAt: Date;
}

interface Batch {
  devices: Map<string, DeviceRow>;
  targets: Array<{ r: string; d: string; w: number }>;
  attempts: Map<string, AttemptRow>;
  /** Set by the commit: the attempt rows the database did not take (see UPSERT_ATTEMPTS). */
  refused: Set<string>;
  events: AttemptEventRow[];
  /** Reports that came after a later one: history only, unless the same report is there already. */
  lateEvents: AttemptEventRow[];
  transitions: RolloutTransition[];
}

// Attempt states in the order an attempt moves through them (all final states last and equal), as SQL.
const RANK_SQL = (column: string) => `CASE ${column} ${Object.entries(ATTEMPT_RANK).map(([s, r]) => `WHEN '${s}' THEN ${r}`).join(' ')} END`;


// json_to_recordset turns one JSON parameter into rows: one round trip whatever the batch size.
const UPSERT_DEVICES = `
INSERT INTO "Device" (id, type, version, chip, "idfVersion", "secureVersion", slot, online, "lastSeenAt", health, "updatedAt")
SELECT id, type, version, chip, "idfVersion", "secureVersion", slot, online, "lastSeenAt", health, now()
FROM json_to_recordset($1::json) AS x(id text, type text, version text, chip text, "idfVersion" text,
  "secureVersion" integer, slot text, online boolean, "lastSeenAt" timestamp, health jsonb)
ON CONFLICT (id) DO UPDATE SET type = EXCLUDED.type, version = EXCLUDED.version, chip = EXCLUDED.chip,
  "idfVersion" = EXCLUDED."idfVersion", "secureVersion" = EXCLUDED."secureVersion", slot = EXCLUDED.slot,
  online = EXCLUDED.online, "lastSeenAt" = EXCLUDED."lastSeenAt", health = EXCLUDED.health, "updatedAt" = now()`;

const INSERT_TARGETS = `
INSERT INTO "RolloutTarget" ("rolloutId", "deviceId", wave)
SELECT x.r, x.d, x.w FROM json_to_recordset($1::json) AS x(r text, d text, w integer)
ON CONFLICT DO NOTHING`;

// A final attempt row never changes again, and an open one only moves forward: whatever arrives
// later (a late report, a retried batch, another instance's older view of the same attempt)
// cannot end it a second time or take it back. The ids returned are the rows that did NOT apply:
// almost always none, where returning the applied ones gave a fan-out's batch thousands of result
// rows to map on the event loop.
export const UPSERT_ATTEMPTS = `
WITH x AS (SELECT * FROM json_to_recordset($1::json) AS x(id text, "rolloutId" text, "deviceId" text, "firmwareId" text, "fromVersion" text,
  retry integer, state text, progress integer, error text, reason text, "createdAt" timestamp, "updatedAt" timestamp, "finishedAt" timestamp)),
up AS (
  INSERT INTO "UpdateAttempt" (id, "rolloutId", "deviceId", "firmwareId", "fromVersion", retry, state, progress, error, reason, "createdAt", "updatedAt", "finishedAt")
  SELECT id, "rolloutId", "deviceId", "firmwareId", "fromVersion", retry, state, progress, error, reason, "createdAt", "updatedAt", "finishedAt" FROM x
  ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, progress = EXCLUDED.progress, error = EXCLUDED.error,
    reason = EXCLUDED.reason, "updatedAt" = EXCLUDED."updatedAt", "finishedAt" = EXCLUDED."finishedAt"
  WHERE "UpdateAttempt"."finishedAt" IS NULL AND ${RANK_SQL('EXCLUDED.state')} >= ${RANK_SQL('"UpdateAttempt".state')}
  RETURNING id
)
SELECT x.id FROM x WHERE NOT EXISTS (SELECT 1 FROM up WHERE up.id = x.id)`;

// Idempotent: a history row already there (same attempt, state, progress and time) is not added
// again. Rows keep the order they were queued in (ids follow it; the history is read by id): the
// anti-join alone may reorder them. Every report is kept, also one that came after the attempt
// ended (the row keeps the state that ended it).
export const INSERT_EVENTS = `
INSERT INTO "AttemptEvent" ("attemptId", state, progress, error, reason, at)
SELECT x."attemptId", x.state, x.progress, x.error, x.reason, x.at
FROM ROWS FROM (json_to_recordset($1::json) AS ("attemptId" text, state text, progress integer, error text, reason text, at timestamp))
  WITH ORDINALITY AS x("attemptId", state, progress, error, reason, at, n)
WHERE NOT EXISTS (SELECT 1 FROM "AttemptEvent" e WHERE e."attemptId" = x."attemptId" AND e.at = x.at
  AND e.state = x.state AND e.progress IS NOT DISTINCT FROM x.progress)
ORDER BY x.n`;

// A report that came after a later one (the device's reports are shared among instances, or it
// resent one): kept unless the history already has the same report (state and progress). Final
// ones never come here: an attempt ends once.
const INSERT_LATE_EVENTS = `
INSERT INTO "AttemptEvent" ("attemptId", state, progress, error, reason, at)
SELECT x."attemptId", x.state, x.progress, x.error, x.reason, x.at
FROM ROWS FROM (json_to_recordset($1::json) AS ("attemptId" text, state text, progress integer, error text, reason text, at timestamp))
  WITH ORDINALITY AS x("attemptId", state, progress, error, reason, at, n)
WHERE EXISTS (SELECT 1 FROM "UpdateAttempt" a WHERE a.id = x."attemptId")
  AND NOT EXISTS (SELECT 1 FROM "AttemptEvent" e WHERE e."attemptId" = x."attemptId" AND e.state = x.state
    AND e.progress IS NOT DISTINCT FROM x.progress)
ORDER BY x.n`;

// A rollout moves only from the state and wave it was decided in, and is never completed while
// one of its attempts is open in the database. The event is written with it, or not at all.
export const TRANSITION = `
WITH t AS (SELECT * FROM json_to_record($1::json) AS x(id text, "fromState" text, "fromWave" integer, state text, wave integer,
  reason text, actor text, at timestamp, final boolean, policy jsonb, waves jsonb, "ackFailures" integer, "ackFinished" integer,
  "waveStartedAt" timestamp, "keepReason" boolean, members json)),
moved AS (
  UPDATE "Rollout" r SET state = t.state, "currentWave" = t.wave, "updatedAt" = t.at,
    reason = CASE WHEN t."keepReason" THEN r.reason ELSE t.reason END,
    "finishedAt" = CASE WHEN t.final THEN t.at ELSE r."finishedAt" END,
    policy = COALESCE(t.policy, r.policy), waves = COALESCE(t.waves, r.waves),
    "acknowledgedFailures" = COALESCE(t."ackFailures", r."acknowledgedFailures"),
    "acknowledgedFinished" = COALESCE(t."ackFinished", r."acknowledgedFinished"),
    "waveStartedAt" = COALESCE(t."waveStartedAt", r."waveStartedAt")
  FROM t
  WHERE r.id = t.id AND r.state = t."fromState" AND r."currentWave" = t."fromWave"
    AND (t.state <> 'completed' OR NOT EXISTS (SELECT 1 FROM "UpdateAttempt" a WHERE a."rolloutId" = t.id AND a."finishedAt" IS NULL))
  RETURNING r.id
),
-- Members' new waves (an edit of the waves) and granted retries, only with the transition.
members AS (
  UPDATE "RolloutTarget" rt SET wave = COALESCE(m.wave, rt.wave), "retryUpTo" = COALESCE(m."retryUpTo", rt."retryUpTo")
  FROM moved, t, json_to_recordset(t.members) AS m(d text, wave integer, "retryUpTo" integer)
  WHERE rt."rolloutId" = moved.id AND rt."deviceId" = m.d
)
INSERT INTO "RolloutEvent" ("rolloutId", state, wave, reason, actor, at)
SELECT moved.id, t.state, t.wave, t.reason, t.actor, t.at FROM moved, t`;

// The change feed (src/cluster/change-feed.ts): delivered to the other instances on commit, in commit order.
const NOTIFY = `SELECT pg_notify($1, c) FROM json_array_elements_text($2::json) AS c`;

/**
 * Rows per batch statement. Prisma encodes a raw statement's parameters as JSON and decodes them
 * again on the event loop: one statement for a 10,000-device fan-out's attempts held the loop
 * ~100 ms (`npm run bench -- --devices 10000`); statements of this size take a few ms each, and the
 * loop gets a turn between them while the database runs each. Smaller and larger statements both
 * cost more in all: a 5,000-device fan-out took 2.9–3.0 s (4.4–4.5 s of server CPU) at 250 rows,
 * 2.5–3.0 s (3.7–4.5 s) at 2,500, and 2.0–2.2 s (3.0–3.3 s) at 1,000 (bench/README.md, "Ninth round").
 */
const ROWS_PER_STATEMENT = 1_000;

function chunked<T>(rows: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) out.push(rows.slice(i, i + ROWS_PER_STATEMENT));
  return out;
}

export class FleetRepository {
  private readonly queue: GroupCommit<Batch>;
  private readonly feed: ChangeFeedWriter | null;

  /** With `feed`, every commit tells the other instances what it changed (PostgreSQL only). */
  private readonly prisma: PrismaClient;

  /** Batches go through `db.batch` (the driver itself); reads and the rest through Prisma. */
  constructor(private readonly db: Pick<Database, 'prisma' | 'batch'>, log: Logger, opts: GroupCommitOptions & { feed?: ChangeFeedWriter | null } = {}) {
    this.prisma = db.prisma;
    this.feed = opts.feed ?? null;
    const sink: BatchSink<Batch> = {
      create: () => ({ devices: new Map(), targets: [], attempts: new Map(), refused: new Set(), events: [], lateEvents: [], transitions: [] }),
      rows: (b) => b.devices.size + b.targets.length + b.attempts.size + b.events.length + b.lateEvents.length + b.transitions.length,
      commit: (b) => this.commit(b),
    };
    this.queue = new GroupCommit(sink, log, opts);
  }

  // ── the group commit ──────────────────────────────────────────────────────

  saveDevice(row: DeviceRow): Promise<void> {
    const copy = { ...row };
    return this.queue.add((b) => { b.devices.set(row.id, copy); });
  }

  /**
   * Resolves once committed, with whether the row applied: false when the database already held
   * the attempt further on (finished, or moved on by another instance).
   */
  async saveAttempt(row: AttemptRow, event?: AttemptEventRow): Promise<boolean> {
    const copy = { ...row };
    let batch: Batch | undefined;
    await this.queue.add((b) => {
      batch = b;
      b.attempts.set(row.id, copy);
      if (event) b.events.push({ ...event });
    });
    return !batch!.refused.has(row.id);
  }

  /**
   * A report that changes nothing (it arrived after a later one, at this instance or another) but
   * was sent, and is acknowledged: it goes into the attempt's history only.
   */
  saveLateEvent(event: AttemptEventRow): Promise<void> {
    const copy = { ...event };
    return this.queue.add((b) => { b.lateEvents.push(copy); });
  }

  /** A device that joined a running rollout. */
  addTarget(rolloutId: string, deviceId: string, wave: number): Promise<void> {
    return this.queue.add((b) => { b.targets.push({ r: rolloutId, d: deviceId, w: wave }); });
  }

  /** Commits with everything queued before it; resolves with whether it applied. */
  async transition(t: RolloutTransition): Promise<boolean> {
    const item = { ...t, applied: false };
    await this.queue.add((b) => { b.transitions.push(item); });
    return item.applied;
  }

  /** Resolves when everything queued so far is committed. */
  durable(): Promise<void> {
    return this.queue.durable();
  }

  /** Resolves when there is room for more work (see GroupCommit.room). */
  room(): Promise<void> {
    return this.queue.room();
  }

  /** True while new work should wait: the backlog is full or the database is failing. */
  get saturated(): boolean {
    return this.queue.saturated;
  }

  health(): CommitHealth {
    return this.queue.health();
  }

  get commits(): number {
    return this.queue.commits;
  }

  get commitFailures(): number {
    return this.queue.failures;
  }

  /** Device messages that waited for room in the backlog (unacknowledged meanwhile). */
  get messagesHeld(): number {
    return this.queue.held;
  }

  close(): Promise<void> {
    return this.queue.close();
  }

  private async commit(b: Batch): Promise<void> {
    // Parents before children: devices, then rollout members and attempts, then their history.
    const attempts = [...b.attempts.values()];
    b.refused.clear(); // a retried batch starts over
    const steps: BatchStep[] = [];
    for (const rows of chunked([...b.devices.values()])) steps.push(async (sql) => { await sql.query(UPSERT_DEVICES, [JSON.stringify(rows)]); });
    for (const rows of chunked(b.targets)) steps.push(async (sql) => { await sql.query(INSERT_TARGETS, [JSON.stringify(rows)]); });
    for (const rows of chunked(attempts)) {
      steps.push(async (sql) => {
        for (const r of (await sql.query<{ id: string }>(UPSERT_ATTEMPTS, [JSON.stringify(rows)])).rows) b.refused.add(r.id);
      });
    }
    if (b.events.length || b.lateEvents.length) {
      steps.push(async (sql) => {
        // An event whose row did not apply (the database held the attempt further on: another
        // instance moved it, or ended it) is late: kept unless already there, and a final one is
        // dropped, since the attempt ends once.
        const events: AttemptEventRow[] = [];
        const late = [...b.lateEvents];
        for (const e of b.events) {
          if (!b.refused.has(e.attemptId)) events.push(e);
          else if (!isTerminal(e.state as AttemptState)) late.push(e);
        }
        // The history's anti-join, planned for the history's size at each run: a plan kept from
        // a small history scans the whole table (bench/kept-plans.ts: a 1,000-row insert, 40 ms
        // with 800 history rows, 184-317 ms with 201,800; planned at that run, 43-75 ms, by index).
        for (const rows of chunked(events)) await sql.query(INSERT_EVENTS, [JSON.stringify(rows)], { planEachRun: true });
        for (const rows of chunked(late)) await sql.query(INSERT_LATE_EVENTS, [JSON.stringify(rows)], { planEachRun: true });
      });
    }
    // Planned at each run too: kept from a small attempts table, its "no attempt open" check scans
    // every rollout's attempts; planned then, it reads the rollout's own by index (bench/kept-plans.ts:
    // completing a 1,000-attempt rollout among 100,000 attempts, 24-36 ms kept, 1.6-2.2 ms).
    for (const t of b.transitions) steps.push(async (sql) => { t.applied = (await sql.query(TRANSITION, [JSON.stringify(transitionRecord(t))], { planEachRun: true })).count > 0; });
    const feed = this.feed;
    if (feed) {
      // Only what applied: another instance takes these as committed facts.
      steps.push(async (sql) => {
        const change: FeedChange = {
          devices: [...b.devices.values()], targets: b.targets,
          attempts: attempts.filter((a) => !b.refused.has(a.id)), transitions: b.transitions.filter((t) => t.applied),
        };
        const chunks = feed.encode(change);
        if (chunks.length) await sql.query(NOTIFY, [feed.channel, JSON.stringify(chunks)]);
      });
    }
    await this.db.batch(steps); // one statement alone needs no BEGIN/COMMIT: one round trip, not three
  }

  // ── direct statements ─────────────────────────────────────────────────────

  /** `resetPresence`: this process held every device connection (embedded broker), so none is online now. */
  async loadDevices(resetPresence: boolean): Promise<DeviceRecord[]> {
    if (resetPresence) await this.prisma.device.updateMany({ where: { online: true }, data: { online: false } });
    const rows = await this.prisma.device.findMany({
      select: { id: true, type: true, version: true, chip: true, idfVersion: true, secureVersion: true, slot: true, online: true, lastSeenAt: true, tags: true, channel: true, health: true },
    });
    return rows.map((r) => ({ ...r, health: r.health as StoredHealth | null }));
  }

  async setDeviceLabels(id: string, labels: { tags: string[]; channel: string }): Promise<void> {
    await this.queue.flush(); // the device row may still be queued (its first announce)
    await this.prisma.device.update({ where: { id }, data: labels });
    if (this.feed) await this.prisma.$executeRawUnsafe(NOTIFY, this.feed.channel, JSON.stringify(this.feed.encode({ labels: [{ id, ...labels }] })));
  }

  /** Scheduled, running and paused rollouts with their members (one, given its id). */
  loadActiveRollouts(id?: string): Promise<RolloutRecord[]> {
    return this.prisma.rollout.findMany({
      where: { state: { in: [...ACTIVE_ROLLOUT_STATES] }, ...(id ? { id } : {}) },
      select: {
        id: true, firmwareId: true, state: true, currentWave: true, reason: true, deviceIds: true, targetTags: true, versionRange: true,
        channel: true, waves: true, policy: true, startAt: true, createdAt: true, acknowledgedFailures: true, acknowledgedFinished: true,
        waveStartedAt: true, targets: { select: { deviceId: true, wave: true, retryUpTo: true } },
      },
    });
  }

  /** Attempts of these rollouts, and every attempt not final, oldest first. */
  loadAttempts(rolloutIds: string[], openStates: readonly string[]): Promise<AttemptRow[]> {
    return this.prisma.updateAttempt.findMany({
      where: { OR: [{ rolloutId: { in: rolloutIds } }, { state: { in: [...openStates] } }] },
      orderBy: { createdAt: 'asc' },
    });
  }

  /** Ids of the rollouts not finished (scheduled, running, paused). */
  async unfinishedRolloutIds(): Promise<string[]> {
    const rows = await this.prisma.rollout.findMany({ where: { state: { in: [...ACTIVE_ROLLOUT_STATES] } }, select: { id: true } });
    return rows.map((r) => r.id);
  }

  /** Attempts not final, with their state. */
  openAttempts(openStates: readonly string[]): Promise<Array<{ id: string; state: string }>> {
    return this.prisma.updateAttempt.findMany({ where: { state: { in: [...openStates] } }, select: { id: true, state: true } });
  }

  /** A rollout's state and wave as committed (after a transition that did not apply). */
  rolloutHeader(id: string): Promise<{ state: string; currentWave: number; reason: string | null } | null> {
    return this.prisma.rollout.findUnique({ where: { id }, select: { state: true, currentWave: true, reason: true } });
  }

  /** A rollout's standing as committed: state, wave, members and attempts per state. */
  async rolloutSummary(id: string): Promise<{ state: string; reason: string | null; wave: number; waves: number; targets: number; counts: Record<AttemptState, number> } | null> {
    const row = await this.prisma.rollout.findUnique({ where: { id }, select: { state: true, reason: true, currentWave: true, waves: true, _count: { select: { targets: true } } } });
    if (!row) return null;
    const waves = (row.waves as { sizes?: number[] } | null)?.sizes?.length ?? 1;
    return { state: row.state, reason: row.reason, wave: row.currentWave, waves, targets: row._count.targets, counts: await this.attemptCounts(id) };
  }

  /** A rollout's attempts per state, every state present. */
  async attemptCounts(rolloutId: string): Promise<Record<AttemptState, number>> {
    const groups = await this.prisma.updateAttempt.groupBy({ by: ['state'], where: { rolloutId }, _count: { _all: true } });
    const counts = zeroCounts();
    for (const g of groups) counts[g.state as AttemptState] = g._count._all;
    return counts;
  }

  /**
   * The rollout API's reads, once, for an id that matches nothing. Prisma's query compiler plans
   * a query shape on its first use (several milliseconds of WebAssembly on the event loop) and
   * keeps the plan for that shape; the first `POST /api/rollouts` after a start otherwise plans
   * its answer's reads while the rollout's commands go out.
   */
  async planRolloutReads(): Promise<void> {
    const none = '';
    await this.findRollout(none);
    await this.attemptCounts(none);
    await this.rolloutDetail(none);
    await this.deferrals(none);
  }

  /** A rollout with its firmware and member count, as the API shows it. */
  findRollout(id: string) {
    return this.prisma.rollout.findUnique({ where: { id }, include: { firmware: { select: { type: true, version: true, sha256: true } }, _count: { select: { targets: true } } } });
  }

  /** Rollout ids, newest first. */
  async listRolloutIds(state: string | undefined, take: number): Promise<string[]> {
    const rows = await this.prisma.rollout.findMany({ where: state ? { state } : {}, orderBy: { createdAt: 'desc' }, take, select: { id: true } });
    return rows.map((r) => r.id);
  }

  /** A rollout's members, attempts (oldest first) and transitions. */
  async rolloutDetail(id: string) {
    const [targets, attempts, history] = await Promise.all([
      this.prisma.rolloutTarget.findMany({ where: { rolloutId: id }, select: { deviceId: true, wave: true, retryUpTo: true } }),
      this.prisma.updateAttempt.findMany({ where: { rolloutId: id }, orderBy: { createdAt: 'asc' },
        select: { deviceId: true, id: true, state: true, retry: true, progress: true, error: true, reason: true, fromVersion: true, updatedAt: true } }),
      this.prisma.rolloutEvent.findMany({ where: { rolloutId: id }, orderBy: { id: 'asc' }, select: { state: true, wave: true, reason: true, actor: true, at: true } }),
    ]);
    return { targets, attempts, history };
  }

  /** How many times the devices of a rollout deferred its offer (every deferral is a history row). */
  deferrals(rolloutId: string): Promise<number> {
    return this.prisma.attemptEvent.count({ where: { state: 'deferred', attempt: { rolloutId } } });
  }

  /** A device's latest attempts, newest first, each with its history. */
  deviceAttempts(deviceId: string, take: number) {
    return this.prisma.updateAttempt.findMany({
      where: { deviceId }, orderBy: { createdAt: 'desc' }, take,
      include: { firmware: { select: { type: true, version: true } }, events: { orderBy: { id: 'asc' }, select: { state: true, progress: true, error: true, reason: true, at: true } } },
    });
  }

  /** An attempt as the database holds it (a report about an attempt another instance opened). */
  attemptRow(updateId: string): Promise<AttemptRow | null> {
    return this.prisma.updateAttempt.findUnique({ where: { id: updateId } });
  }

  /** One active rollout with its members (created by another instance). */
  async loadRollout(id: string): Promise<RolloutRecord | null> {
    const [r] = await this.loadActiveRollouts(id);
    return r ?? null;
  }

  /** Who an update belongs to and where it stands, for a report about an attempt not in memory. */
  attemptOwner(updateId: string): Promise<{ deviceId: string; state: string } | null> {
    return this.prisma.updateAttempt.findUnique({ where: { id: updateId }, select: { deviceId: true, state: true } });
  }

  /** Stores a new rollout, its members with their waves and its first event, in one transaction. */
  async createRollout(r: NewRollout, members: Map<string, number>): Promise<void> {
    await this.queue.flush(); // members reference device rows, which may still be queued
    await this.prisma.$transaction(async (tx) => {
      await tx.rollout.create({
        data: {
          id: r.id, name: r.name, firmwareId: r.firmwareId, state: r.state, deviceIds: r.deviceIds, targetTags: r.targetTags,
          versionRange: r.versionRange, channel: r.channel, waves: r.waves, policy: r.policy, startAt: r.startAt, reason: r.reason,
          createdBy: r.createdBy, createdAt: r.createdAt, updatedAt: r.createdAt,
        },
      });
      // One set-based statement per chunk: createMany costs ~0.1 ms per row, this a fraction of it.
      const rows = [...members].map(([deviceId, wave]) => ({ r: r.id, d: deviceId, w: wave }));
      for (const chunk of chunked(rows)) await tx.$executeRawUnsafe(INSERT_TARGETS, JSON.stringify(chunk));
      await tx.rolloutEvent.create({ data: { rolloutId: r.id, state: r.state, wave: 0, reason: r.reason, actor: r.createdBy, at: r.createdAt } });
      if (this.feed) await tx.$executeRawUnsafe(NOTIFY, this.feed.channel, JSON.stringify(this.feed.encode({ created: [r.id] })));
    }, { timeout: 60_000 });
  }
}


function transitionRecord(t: RolloutTransition) {
  const c = t.changes ?? {};
  return {
    id: t.rolloutId, fromState: t.from.state, fromWave: t.from.wave, state: t.to.state, wave: t.to.wave,
    reason: t.reason, actor: t.actor, at: t.at, final: t.final, policy: c.policy ?? null, waves: c.waves ?? null,
    ackFailures: c.acknowledged?.failures ?? null, ackFinished: c.acknowledged?.finished ?? null, waveStartedAt: c.waveStartedAt ?? null,
    keepReason: c.keepReason ?? false, members: c.members?.map((m) => ({ d: m.deviceId, wave: m.wave ?? null, retryUpTo: m.retryUpTo ?? null })) ?? null,
  };
}
