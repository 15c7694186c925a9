// Which instance runs the rollout ticks (waves, timeouts, thresholds, schedules, paced sends):
// the one holding a PostgreSQL session-level advisory lock. The lock lives as long as the session,
// so an instance killed with kill -9 loses it as soon as PostgreSQL sees its connection close, and
// the others, trying every `retryMs`, take over within about that time.
//
// Two instances may both believe they lead for a moment (the old leader has not yet noticed its
// connection is gone). That is safe: every rollout transition is guarded in SQL by the state and
// wave it was decided in, and attempt rows only move forward, so the slower decision does not apply.
// Needs a direct connection (not a transaction-pooling PgBouncer, which cannot hold session locks).
import pg from 'pg';
import type { Logger } from '../logger.js';

/** pg_try_advisory_lock key of the rollout ticks (any fixed 64-bit number; no other lock uses it). */
const LEADER_LOCK = '7062402451683717485';

export class Leadership {
  private client: pg.Client | null = null;
  private leading = false;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;

  constructor(private readonly opts: {
    connectionString: string;
    logger: Logger;
    /** Called when this instance starts or stops leading. */
    onChange: (leading: boolean) => Promise<void> | void;
    /** How often a follower tries to take the lock, and the leader checks it still holds its session. Default 1 s. */
    retryMs?: number;
  }) {}

  get isLeader(): boolean {
    return this.leading;
  }

  /** Tries once at once, then keeps trying in the background. */
  async start(): Promise<void> {
    await this.round();
    this.timer = setInterval(() => void this.round(), this.opts.retryMs ?? 1_000);
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    const client = this.client;
    this.client = null;
    // Ending the session releases the lock: another instance takes over without waiting.
    await client?.end().catch(() => undefined);
    if (this.leading) await this.step(false);
  }

  private async round(): Promise<void> {
    if (this.busy || this.closed) return;
    this.busy = true;
    try {
      const client = this.client ?? await this.connect();
      if (this.leading) {
        await client.query('SELECT 1'); // still our session, so still our lock
      } else {
        const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [LEADER_LOCK]);
        if (rows[0]?.locked && !this.closed) await this.step(true);
      }
    } catch (err) {
      this.opts.logger.warn({ err }, 'leader election: database not reachable');
      this.drop();
    } finally {
      this.busy = false;
    }
  }

  private async connect(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: this.opts.connectionString, keepAlive: true, connectionTimeoutMillis: 5_000, query_timeout: 5_000 });
    client.on('error', () => { if (this.client === client) this.drop(); });
    client.on('end', () => { if (this.client === client) this.drop(); });
    await client.connect();
    this.client = client;
    return client;
  }

  /** The session is gone, and the lock with it. */
  private drop(): void {
    const client = this.client;
    this.client = null;
    client?.end().catch(() => undefined);
    if (this.leading) void this.step(false);
  }

  private async step(leading: boolean): Promise<void> {
    this.leading = leading;
    this.opts.logger.info({ leading }, leading ? 'this instance now runs the rollout ticks' : 'this instance no longer runs the rollout ticks');
    try {
      await this.opts.onChange(leading);
    } catch (err) {
      this.opts.logger.error({ err }, 'leadership change not applied');
    }
  }
}
