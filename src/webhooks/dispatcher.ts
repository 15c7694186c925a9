// Delivers webhook events: every matching webhook gets a delivery row, then a pump sends what is
// due, signed, and on failure schedules the next try with exponential back-off until it gives up.
// Time comes from an injected clock, so back-off is tested without waiting.
import { Agent, request } from 'undici';
import type { Logger } from '../logger.js';
import { encodeBody, type WebhookEvent, type WebhookFormat } from './events.js';
import { SIGNATURE_HEADER, sign } from './signature.js';
import { newId, type WebhookRecord, type WebhookStore } from './store.js';
import { guardedLookup, type TargetPolicy } from './target-policy.js';

export interface Clock {
  now(): number;
  /** Calls `fn` after `ms` of this clock's time. */
  setTimer(fn: () => void, ms: number): { cancel(): void };
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, Math.min(ms, 2 ** 31 - 1));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

export interface RetryPolicy {
  /** Tries before a delivery is given up (`failed`). */
  maxAttempts: number;
  /** Wait after the first failure; doubles after each, up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 10, baseDelayMs: 30_000, maxDelayMs: 3_600_000 };

/** The wait before try n+1 after n failed tries (n ≥ 1): base · 2^(n−1), capped. */
export function backoffMs(failedTries: number, p: RetryPolicy): number {
  return Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** Math.max(0, failedTries - 1));
}

const REQUEST_TIMEOUT_MS = 10_000;
const CLAIM_BATCH = 20;
const ERROR_MAX = 300;

export class WebhookDispatcher {
  private readonly agent: Agent;
  private webhooks: WebhookRecord[] = [];
  private timer: { cancel(): void } | null = null;
  private pumping: Promise<void> | null = null;
  private again = false;
  private closed = false;
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(private readonly deps: {
    store: WebhookStore; clock: Clock; policy: TargetPolicy; retry: RetryPolicy; logger: Logger; userAgent: string;
  }) {
    this.agent = new Agent({
      connect: { lookup: guardedLookup(deps.policy), timeout: REQUEST_TIMEOUT_MS },
      headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: 1000,
    });
  }

  /** Loads the webhooks and sends what was queued before a restart. */
  async start(): Promise<void> {
    await this.reload();
    this.kick();
  }

  /** After a webhook was created or deleted. */
  async reload(): Promise<void> {
    this.webhooks = await this.deps.store.list();
  }

  /** Queues the event for every webhook that subscribed to it (durably), then sends. */
  publish(events: WebhookEvent[]): void {
    if (this.closed || !events.length || !this.webhooks.length) return;
    const rows = [];
    for (const e of events) {
      for (const w of this.webhooks) {
        if (!w.events.includes(e.event)) continue;
        const id = newId('whd');
        rows.push({ id, webhookId: w.id, event: e.event, body: encodeBody(e, w.format as WebhookFormat, id), at: new Date(this.deps.clock.now()) });
      }
    }
    if (!rows.length) return;
    this.track(this.deps.store.enqueue(rows).then(() => this.kick(), (err) => {
      this.deps.logger.error({ err, events: events.map((e) => e.event) }, 'webhook deliveries not queued');
    }));
  }

  /** Sends whatever is due now; coalesces calls that arrive while it runs. */
  kick(): void {
    if (this.closed) return;
    if (this.pumping) { this.again = true; return; }
    this.pumping = this.pump().catch((err) => this.deps.logger.error({ err }, 'webhook delivery pass failed')).finally(() => {
      this.pumping = null;
      if (this.again) { this.again = false; this.kick(); } else void this.schedule();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.timer?.cancel();
    await this.pumping;
    await Promise.allSettled([...this.inFlight]);
    await this.agent.close();
  }

  private async pump(): Promise<void> {
    for (;;) {
      const now = this.deps.clock.now();
      const due = await this.deps.store.claimDue(new Date(now), new Date(now + 3 * REQUEST_TIMEOUT_MS), CLAIM_BATCH);
      await Promise.all(due.map((d) => this.attempt(d)));
      if (due.length < CLAIM_BATCH || this.closed) return;
    }
  }

  private async schedule(): Promise<void> {
    if (this.closed) return;
    const next = await this.deps.store.nextDue().catch(() => null);
    this.timer?.cancel();
    this.timer = null;
    if (!next || this.closed) return;
    this.timer = this.deps.clock.setTimer(() => { this.timer = null; this.kick(); }, Math.max(0, next.getTime() - this.deps.clock.now()));
  }

  private async attempt(d: { id: string; webhookId: string; event: string; body: string; attempts: number }): Promise<void> {
    const { store, clock, retry, logger } = this.deps;
    const webhook = this.webhooks.find((w) => w.id === d.webhookId) ?? await store.get(d.webhookId);
    if (!webhook) return; // deleted meanwhile: its deliveries went with it
    const tries = d.attempts + 1;
    let status: number | null = null;
    let error: string | null = null;
    try {
      const res = await request(webhook.url, {
        method: 'POST', dispatcher: this.agent, body: d.body,
        headers: {
          'content-type': 'application/json', 'user-agent': this.deps.userAgent,
          'x-mqota-event': d.event, 'x-mqota-delivery': d.id,
          [SIGNATURE_HEADER]: sign(webhook.secret, Math.floor(clock.now() / 1000), d.body),
        },
      });
      status = res.statusCode;
      const text = await res.body.text().catch(() => '');
      if (status < 200 || status > 299) error = `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`;
    } catch (err) {
      error = (err as Error).message || String(err);
    }
    const at = clock.now();
    if (error === null) {
      await store.settle(d.id, { state: 'delivered', attempts: tries, status, error: null, nextAttemptAt: null, at: new Date(at) });
      logger.debug({ webhookId: webhook.id, deliveryId: d.id, event: d.event, tries }, 'webhook delivered');
      return;
    }
    error = error.slice(0, ERROR_MAX);
    if (tries >= retry.maxAttempts) {
      await store.settle(d.id, { state: 'failed', attempts: tries, status, error, nextAttemptAt: null, at: new Date(at) });
      logger.warn({ webhookId: webhook.id, deliveryId: d.id, event: d.event, tries, error }, 'webhook delivery given up');
      return;
    }
    const next = at + backoffMs(tries, retry);
    await store.settle(d.id, { state: 'pending', attempts: tries, status, error, nextAttemptAt: new Date(next), at: new Date(at) });
    logger.info({ webhookId: webhook.id, deliveryId: d.id, event: d.event, tries, error, retryInMs: next - at }, 'webhook delivery failed; will retry');
  }

  private track<T>(p: Promise<T>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }
}
