// Group commit for the per-message path: device presence and announces, attempt snapshots and
// their state history are queued in memory and written in one transaction of a few set-based
// statements. While a transaction is in flight the next batch gathers, so at low load a write
// lands at once and at high load thousands share one commit. Rows are full snapshots, coalesced
// by id, so a batch only ever holds the latest state of each device and attempt.
//
// Commits start at most once per `minIntervalMs`. Without that floor the benchmark's connect storm
// (1,000 devices, PostgreSQL) committed 1,254 times, 3 devices each; with 25 ms, 152 times. Each
// commit costs the event loop per query, not per row (Prisma's ≈0.5 ms of CPU a query, PGlite's
// SQL on the main thread). A batch of one statement needs no BEGIN/COMMIT: one round trip, not three.
import { performance } from 'node:perf_hooks';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';

export interface DeviceRow {
  id: string; type: string; version: string | null; chip: string | null; idfVersion: string | null;
  secureVersion: number | null; slot: string | null; online: boolean; lastSeenAt: Date | null;
}

export interface AttemptRow {
  id: string; rolloutId: string; deviceId: string; firmwareId: string; fromVersion: string | null; retry: number;
  state: string; progress: number | null; error: string | null; reason: string | null;
  createdAt: Date; updatedAt: Date; finishedAt: Date | null;
}

export interface AttemptEventRow {
  attemptId: string; state: string; progress: number | null; error: string | null; reason: string | null; at: Date;
}

// json_to_recordset turns one JSON parameter into rows: one round trip whatever the batch size.
const UPSERT_DEVICES = `
INSERT INTO "Device" (id, type, version, chip, "idfVersion", "secureVersion", slot, online, "lastSeenAt", "updatedAt")
SELECT id, type, version, chip, "idfVersion", "secureVersion", slot, online, "lastSeenAt", now()
FROM json_to_recordset($1::json) AS x(id text, type text, version text, chip text, "idfVersion" text,
  "secureVersion" integer, slot text, online boolean, "lastSeenAt" timestamp)
ON CONFLICT (id) DO UPDATE SET type = EXCLUDED.type, version = EXCLUDED.version, chip = EXCLUDED.chip,
  "idfVersion" = EXCLUDED."idfVersion", "secureVersion" = EXCLUDED."secureVersion", slot = EXCLUDED.slot,
  online = EXCLUDED.online, "lastSeenAt" = EXCLUDED."lastSeenAt", "updatedAt" = now()`;

const UPSERT_ATTEMPTS = `
INSERT INTO "UpdateAttempt" (id, "rolloutId", "deviceId", "firmwareId", "fromVersion", retry, state, progress, error, reason, "createdAt", "updatedAt", "finishedAt")
SELECT id, "rolloutId", "deviceId", "firmwareId", "fromVersion", retry, state, progress, error, reason, "createdAt", "updatedAt", "finishedAt"
FROM json_to_recordset($1::json) AS x(id text, "rolloutId" text, "deviceId" text, "firmwareId" text, "fromVersion" text, retry integer,
  state text, progress integer, error text, reason text, "createdAt" timestamp, "updatedAt" timestamp, "finishedAt" timestamp)
ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, progress = EXCLUDED.progress, error = EXCLUDED.error,
  reason = EXCLUDED.reason, "updatedAt" = EXCLUDED."updatedAt", "finishedAt" = EXCLUDED."finishedAt"`;

const INSERT_EVENTS = `
INSERT INTO "AttemptEvent" ("attemptId", state, progress, error, reason, at)
SELECT "attemptId", state, progress, error, reason, at
FROM json_to_recordset($1::json) AS x("attemptId" text, state text, progress integer, error text, reason text, at timestamp)`;

interface Batch {
  devices: Map<string, DeviceRow>;
  attempts: Map<string, AttemptRow>;
  events: AttemptEventRow[];
  committed: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

const MAX_RETRIES = 5;
/** Default floor between two commits' starts: at most 40 transactions a second under load. */
const DEFAULT_MIN_INTERVAL_MS = 25;

export class WriteBehind {
  private pending: Batch | null = null;
  private inFlight: Promise<void> | null = null;
  private closed = false;
  /** When the latest commit started, and the timer that starts the next one once the floor has passed. */
  private lastStartedAt = -Infinity;
  private timer: NodeJS.Timeout | null = null;
  /** Someone waits in flush(): the next batch starts without waiting for the floor. */
  private urgent = false;
  private committed = 0;

  constructor(private readonly prisma: PrismaClient, private readonly log: Logger, private readonly minIntervalMs = DEFAULT_MIN_INTERVAL_MS) {}

  /** Batches committed so far. */
  get commits(): number {
    return this.committed;
  }

  device(row: DeviceRow): Promise<void> {
    const b = this.batch();
    b.devices.set(row.id, { ...row });
    return b.committed;
  }

  attempt(row: AttemptRow, event?: AttemptEventRow): Promise<void> {
    const b = this.batch();
    b.attempts.set(row.id, { ...row });
    if (event) b.events.push(event);
    return b.committed;
  }

  /** Resolves when everything queued so far is committed; what is queued starts without waiting for the floor. */
  async flush(): Promise<void> {
    if (this.pending) {
      const { committed } = this.pending;
      this.urgent = true;
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = null;
        this.drain();
      }
      await committed;
    } else if (this.inFlight) await this.inFlight;
  }

  async close(): Promise<void> {
    await this.flush().catch(() => undefined);
    this.closed = true;
  }

  private batch(): Batch {
    if (this.closed) throw new Error('write-behind queue is closed');
    if (!this.pending) {
      let resolve!: () => void;
      let reject!: (err: Error) => void;
      const committed = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
      committed.catch(() => undefined); // callers that do not wait must not see unhandled rejections
      this.pending = { devices: new Map(), attempts: new Map(), events: [], committed, resolve, reject };
      if (!this.inFlight) setImmediate(() => this.drain());
    }
    return this.pending;
  }

  private drain(): void {
    const batch = this.pending;
    if (!batch || this.inFlight || this.timer) return;
    const wait = this.urgent ? 0 : this.lastStartedAt + this.minIntervalMs - performance.now();
    if (wait > 0) {
      this.timer = setTimeout(() => { this.timer = null; this.drain(); }, wait);
      return;
    }
    this.lastStartedAt = performance.now();
    this.urgent = false;
    this.pending = null;
    this.inFlight = this.write(batch).finally(() => {
      this.inFlight = null;
      if (this.pending) this.drain();
    });
  }

  private async write(batch: Batch): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const statements = [];
        if (batch.devices.size) statements.push(this.prisma.$executeRawUnsafe(UPSERT_DEVICES, JSON.stringify([...batch.devices.values()])));
        if (batch.attempts.size) statements.push(this.prisma.$executeRawUnsafe(UPSERT_ATTEMPTS, JSON.stringify([...batch.attempts.values()])));
        if (batch.events.length) statements.push(this.prisma.$executeRawUnsafe(INSERT_EVENTS, JSON.stringify(batch.events)));
        if (statements.length === 1) await statements[0];
        else await this.prisma.$transaction(statements);
        this.committed++;
        batch.resolve();
        return;
      } catch (err) {
        if (attempt >= MAX_RETRIES) {
          this.log.error({ err, devices: batch.devices.size, attempts: batch.attempts.size, events: batch.events.length }, 'batched write failed; giving up on this batch');
          batch.reject(err as Error);
          return;
        }
        this.log.warn({ err, attempt }, 'batched write failed; retrying');
        await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
      }
    }
  }
}
