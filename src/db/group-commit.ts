// Group commit: writes from the per-message path gather in a batch that one transaction commits.
// While a transaction is in flight the next batch gathers, so at low load a write lands at once
// and at high load thousands share one commit. Whoever added to a batch gets a promise for its
// commit: that is what an acknowledgement (a PUBACK, a 2xx) waits for.
//
// Nothing is ever dropped. A failed commit is retried with back-off until the database answers
// again, however long that takes; meanwhile new writes gather in the next batch. Memory stays
// bounded because callers ask for `room()` before they take more work: past `maxBacklogRows` it
// waits until the backlog has landed (the broker then stops reading and acknowledging device
// messages, which devices keep and resend).
//
// Under load, commits start at most once per `minIntervalMs`. Without a floor the benchmark's
// connect storm (1,000 devices, PostgreSQL) committed 1,254 times, 3 devices each; with 25 ms, 152
// times. Each commit costs the event loop per query, not per row (Prisma's ≈0.5 ms of CPU a query,
// PGlite's SQL on the main thread). Since acknowledgements wait for their batch, the floor is a
// latency too: 10 ms (bench/README.md has the figures), and it applies only once a batch shows
// load (at least `floorFromRows` rows), so a device alone is not held at all.
import type { Logger } from '../logger.js';

/** What a batch is and how it is committed; the repository that owns the SQL provides it. */
export interface BatchSink<B> {
  /** A new, empty batch. */
  create(): B;
  /** Rows in a batch, for the backlog bound. */
  rows(batch: B): number;
  /** Commits the whole batch in one transaction, or throws and commits nothing. `attempt` counts from 1. */
  commit(batch: B, attempt: number): Promise<void>;
}

export interface GroupCommitOptions {
  /** Floor between the starts of two commits under load. Default 10 ms. */
  minIntervalMs?: number;
  /** The floor applies only after a batch of at least this many rows (a sign of load). Default 4. */
  floorFromRows?: number;
  /** Past this many queued rows `room()` waits. Default 20,000. */
  maxBacklogRows?: number;
  /** Back-off of retries: from `initial`, doubling, at most `max`. Default 50 ms to 5 s. */
  retryDelayMs?: { initial: number; max: number };
  /** Injectable clock (ms) and timers, for tests. */
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

export interface CommitHealth {
  ok: boolean;
  /** Why not ok, for /healthz. */
  reason: string | null;
  /** Rows waiting for or in a commit. */
  backlogRows: number;
  maxBacklogRows: number;
  /** Since when commits fail (ISO time), or null. */
  failingSince: string | null;
  lastError: string | null;
}

interface Pending<B> {
  batch: B;
  committed: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class GroupCommit<B> {
  private pending: Pending<B> | null = null;
  private inFlight: { rows: number; done: Promise<void> } | null = null;
  private lastStartedAt = -Infinity;
  private lastRows = 0;
  private timer: unknown = null;
  /** Someone waits in flush(): the next batch starts without waiting for the floor. */
  private urgent = false;
  private closed = false;
  private committedCount = 0;
  private failedCount = 0;
  /** Since when commits fail (ISO time), or null while they succeed. */
  private failingSince: string | null = null;
  private lastError: string | null = null;
  private roomWaiters: Array<() => void> = [];
  private heldCount = 0;
  private readonly minIntervalMs: number;
  private readonly floorFromRows: number;
  readonly maxBacklogRows: number;
  private readonly retryDelay: { initial: number; max: number };
  private readonly now: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;

  constructor(private readonly sink: BatchSink<B>, private readonly log: Logger, opts: GroupCommitOptions = {}) {
    this.minIntervalMs = opts.minIntervalMs ?? 10;
    this.floorFromRows = opts.floorFromRows ?? 4;
    this.maxBacklogRows = opts.maxBacklogRows ?? 20_000;
    this.retryDelay = opts.retryDelayMs ?? { initial: 50, max: 5_000 };
    this.now = opts.now ?? (() => performance.now());
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as NodeJS.Timeout));
  }

  /** Batches committed so far. */
  get commits(): number {
    return this.committedCount;
  }

  /** Commit attempts that failed (and were retried) so far. */
  get failures(): number {
    return this.failedCount;
  }

  get backlogRows(): number {
    return (this.inFlight?.rows ?? 0) + (this.pending ? this.sink.rows(this.pending.batch) : 0);
  }

  /** Adds to the gathering batch; resolves when that batch is committed. */
  add(fill: (batch: B) => void): Promise<void> {
    if (this.closed) return Promise.reject(new Error('group commit is closed'));
    const p = this.gathering();
    fill(p.batch);
    return p.committed;
  }

  /** Resolves when everything added so far is committed (at the pace of the floor). */
  durable(): Promise<void> {
    if (this.pending) return this.pending.committed;
    return this.inFlight?.done ?? Promise.resolve();
  }

  /** Like durable(), but what is gathering starts without waiting for the floor. */
  async flush(): Promise<void> {
    if (this.pending) {
      this.urgent = true;
      if (this.timer !== null) {
        this.clearTimer(this.timer);
        this.timer = null;
        this.drain();
      }
    }
    await this.durable();
  }

  /** Resolves at once while the backlog is under its bound, else when it has drained below it. */
  room(): Promise<void> {
    if (this.backlogRows < this.maxBacklogRows) return Promise.resolve();
    this.heldCount++;
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** How many callers of room() had to wait so far. */
  get held(): number {
    return this.heldCount;
  }

  /** Whether new work should wait: the backlog is at its bound or commits are failing. */
  get saturated(): boolean {
    return this.backlogRows >= this.maxBacklogRows || this.failingSince !== null;
  }

  health(): CommitHealth {
    const backlogRows = this.backlogRows;
    let reason: string | null = null;
    if (this.failingSince !== null) {
      reason = `database writes failing since ${this.failingSince}: ${this.lastError}; ${backlogRows} rows waiting, retried until the database answers`;
    } else if (backlogRows >= this.maxBacklogRows) {
      reason = `write backlog full (${backlogRows} of ${this.maxBacklogRows} rows): device messages wait for it to land`;
    }
    return { ok: reason === null, reason, backlogRows, maxBacklogRows: this.maxBacklogRows, failingSince: this.failingSince, lastError: this.lastError };
  }

  /** Waits for everything queued (however long the database takes), then refuses new writes. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }

  private gathering(): Pending<B> {
    if (!this.pending) {
      let resolve!: () => void;
      let reject!: (err: Error) => void;
      const committed = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
      committed.catch(() => undefined); // callers that do not wait must not see unhandled rejections
      this.pending = { batch: this.sink.create(), committed, resolve, reject };
      if (!this.inFlight) setImmediate(() => this.drain());
    }
    return this.pending;
  }

  private drain(): void {
    const next = this.pending;
    if (!next || this.inFlight || this.timer !== null) return;
    const loaded = this.lastRows >= this.floorFromRows;
    const wait = this.urgent || !loaded ? 0 : this.lastStartedAt + this.minIntervalMs - this.now();
    if (wait > 0) {
      this.timer = this.setTimer(() => { this.timer = null; this.drain(); }, wait);
      return;
    }
    this.lastStartedAt = this.now();
    this.urgent = false;
    this.pending = null;
    const rows = this.sink.rows(next.batch);
    this.lastRows = rows;
    const done = this.commitUntilDone(next);
    this.inFlight = { rows, done };
    void done.finally(() => {
      this.inFlight = null;
      this.wakeRoomWaiters();
      if (this.pending) this.drain();
    });
  }

  private async commitUntilDone(p: Pending<B>): Promise<void> {
    let delay = this.retryDelay.initial;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.sink.commit(p.batch, attempt);
        this.committedCount++;
        if (this.failingSince !== null) {
          this.log.warn({ attempts: attempt, rows: this.sink.rows(p.batch) }, 'database writes succeed again; the backlog lands');
          this.failingSince = null;
          this.lastError = null;
        }
        p.resolve();
        return;
      } catch (err) {
        this.failedCount++;
        const message = (err as Error).message?.split('\n')[0] ?? String(err);
        // One line when the trouble starts and then every 20th retry: an outage must not flood the log.
        if (this.failingSince === null || attempt % 20 === 0) {
          this.log.error({ err, attempt, rows: this.sink.rows(p.batch), nextRetryMs: delay }, 'batched write failed; retrying until the database answers');
        }
        this.failingSince ??= new Date().toISOString();
        this.lastError = message;
        await new Promise<void>((resolve) => this.setTimer(resolve, delay));
        delay = Math.min(delay * 2, this.retryDelay.max);
      }
    }
  }

  private wakeRoomWaiters(): void {
    if (!this.roomWaiters.length || this.backlogRows >= this.maxBacklogRows) return;
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const wake of waiters) wake();
  }
}
